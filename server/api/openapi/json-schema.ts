import { z } from "zod";

export type JsonSchema = Record<string, unknown>;

/**
 * A zod schema as JSON Schema 2020-12 (OpenAPI 3.1's dialect). Requests are described as a
 * client sends them (`io: "input"`: before defaults and transforms), answers as the handler
 * writes them; a Date goes out as its ISO string. Definitions the converter hoists (`$defs`,
 * recursive schemas) come back apart, named, for components/schemas.
 */
export function toJsonSchema(schema: z.ZodType, io: "input" | "output", name: string): { schema: JsonSchema; defs: Record<string, JsonSchema> } {
  const raw = z.toJSONSchema(schema, {
    target: "draft-2020-12",
    io,
    unrepresentable: "any",
    cycles: "ref",
    reused: "inline",
    override: (ctx) => {
      if (ctx.zodSchema._zod.def.type === "date") {
        ctx.jsonSchema.type = "string";
        ctx.jsonSchema.format = "date-time";
      }
    },
  }) as JsonSchema;
  const { $schema: _dialect, $defs, ...rest } = raw;
  const refOf = (key: string) => `#/components/schemas/${name}_${key}`;
  const rewrite = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(rewrite);
    if (value === null || typeof value !== "object") return value;
    const out: JsonSchema = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === "$ref" && typeof v === "string") out[k] = v === "#" ? `#/components/schemas/${name}` : v.startsWith("#/$defs/") ? refOf(v.slice("#/$defs/".length)) : v;
      else out[k] = rewrite(v);
    }
    return out;
  };
  const defs: Record<string, JsonSchema> = {};
  for (const [key, def] of Object.entries(($defs ?? {}) as Record<string, JsonSchema>)) defs[`${name}_${key}`] = rewrite(def) as JsonSchema;
  return { schema: rewrite(rest) as JsonSchema, defs };
}

/** A query, header or path object's fields as OpenAPI parameters. */
export function toParameters(schema: z.ZodType, location: "path" | "query" | "header"): JsonSchema[] {
  const { schema: json } = toJsonSchema(schema, "input", "param");
  const properties = (json.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((json.required ?? []) as string[]);
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property;
    return {
      name,
      in: location,
      required: location === "path" || required.has(name),
      ...(typeof description === "string" ? { description } : {}),
      schema: rest,
    };
  });
}
