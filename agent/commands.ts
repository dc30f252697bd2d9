import { setTimeout as sleep } from "node:timers/promises";
import type { z } from "zod";
import { commandInputSchemas, type JointSample } from "../server/hardware/hardware.schemas";
import { registerHardwareCommands } from "./hardware/commands";
import { collectHostFacts } from "./host-facts";
import { RECIPES, type Recipe } from "../server/hardware/recipes";
import { runRecipe } from "./recipes";

// The commands this agent answers. A handler is registered with the zod schema of its input;
// the connection validates each command's input with it before running the handler, so a
// handler only ever sees input of its own shape. The motor-bus commands are in
// hardware/commands.ts.

export interface CommandContext {
  /** Reports how far along the command is (0..1, or null when unknown) and what it is doing. */
  progress(progress: number | null, step: string | null): void;
  /** Streams one joint reading to the portal while the command runs: live data, never blocks, may be dropped. */
  emit(sample: JointSample): void;
  /** Lines of a recipe step's output, in order. */
  log(step: string, lines: string[]): void;
  /** Aborted at the command's deadline (reason: a TimeoutError), or when the agent stops. */
  signal: AbortSignal;
}

export interface CommandHandler<S extends z.ZodType = z.ZodType> {
  input: S;
  run(input: z.output<S>, ctx: CommandContext): Promise<unknown>;
}

export class CommandRegistry {
  private readonly handlers = new Map<string, CommandHandler>();

  register<S extends z.ZodType>(kind: string, handler: CommandHandler<S>): this {
    if (this.handlers.has(kind)) throw new Error(`A handler for ${kind} is already registered`);
    this.handlers.set(kind, handler as unknown as CommandHandler);
    return this;
  }

  get kinds(): string[] {
    return [...this.handlers.keys()];
  }

  /** Runs a command; throws with a message for the portal when it is unknown, its input is wrong, or it fails. */
  async run(kind: string, input: unknown, ctx: CommandContext): Promise<unknown> {
    const handler = this.handlers.get(kind);
    if (!handler) throw new Error(`This agent does not know the command ${kind} (it knows ${this.kinds.join(", ")}); update gantry-agent`);
    const parsed = handler.input.safeParse(input);
    if (!parsed.success) throw new Error(`The ${kind} command's input is not valid: ${parsed.error.issues.map((i) => `${i.path.join(".") || "input"} ${i.message}`).join("; ")}`);
    return handler.run(parsed.data, ctx);
  }
}

export interface BuiltInOptions {
  /** Where ports.list looks for serial ports (default /dev); tests point it at a folder of pty links. */
  portsDir?: string;
}

/** The commands every agent has. */
export function builtInCommands(agentVersion: string, { portsDir }: BuiltInOptions = {}): CommandRegistry {
  const registry = new CommandRegistry()
    .register("host.facts", { input: commandInputSchemas["host.facts"], run: () => collectHostFacts(agentVersion) })
    .register("ping", {
      input: commandInputSchemas.ping,
      run: async ({ holdMs }, { progress, signal }) => {
        if (holdMs > 0) {
          progress(null, `holding ${holdMs} ms`);
          await sleep(holdMs, undefined, { signal });
        }
        return { agentTime: new Date().toISOString(), heldMs: holdMs };
      },
    });
  registry.register("recipe.run", {
    input: commandInputSchemas["recipe.run"],
    run: async ({ recipe: id, version, params, fromStep }, ctx) => {
      const recipe = RECIPES[id] as Recipe;
      if (recipe.version !== version) throw new Error(`This agent has "${recipe.title}" version ${recipe.version} and the portal asked for version ${version}: update gantry-agent (or the portal) so both have the same`);
      const parsed = recipe.params.safeParse(params);
      if (!parsed.success) throw new Error(`${recipe.title}: ${parsed.error.issues.map((i) => `${i.path.join(".") || "params"} ${i.message}`).join("; ")}`);
      return runRecipe(recipe, parsed.data as Record<string, unknown>, { fromStep }, ctx);
    },
  });
  return registerHardwareCommands(registry, { portsDir });
}
