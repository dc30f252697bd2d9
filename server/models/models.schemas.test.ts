import { describe, expect, it } from "vitest";
import { parseQuery } from "../api/http";
import { AppError } from "../errors";
import { uploadQuerySchema } from "./models.schemas";

const refusal = (query: string) => {
  try {
    parseQuery(new Request(`http://localhost/api/models/x/uploads?${query}`), uploadQuerySchema, "upload");
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return (error as AppError).message;
  }
  throw new Error("the query was accepted");
};

describe("the upload query's dims", () => {
  it("takes an object of names to whole numbers", () => {
    const query = parseQuery(new Request(`http://localhost/u?dims=${encodeURIComponent('{"batch":8}')}`), uploadQuerySchema, "upload");
    expect(query.dims).toEqual({ batch: 8 });
  });

  it("names the dimension and the limit when a value is too large, not the JSON form", () => {
    const message = refusal(`dims=${encodeURIComponent('{"batch":100000}')}`);
    expect(message).toBe('The upload\'s query is not valid: dims "batch" must be at most 65536, the largest value a dimension may be given');
    expect(message).not.toMatch(/dims dims/);
  });

  it("says what to send when dims is not a JSON object, or a value not a whole number", () => {
    expect(refusal("dims=batch%3D8")).toBe('The upload\'s query is not valid: dims must be a JSON object of dimension names to whole numbers, e.g. {"batch":1}');
    expect(refusal(`dims=${encodeURIComponent("[1]")}`)).toMatch(/dims must be a JSON object/);
    expect(refusal(`dims=${encodeURIComponent('{"n":1.5}')}`)).toBe('The upload\'s query is not valid: dims "n" must be a whole number');
    expect(refusal(`dims=${encodeURIComponent('{"n":0}')}`)).toBe('The upload\'s query is not valid: dims "n" must be at least 1');
  });
});
