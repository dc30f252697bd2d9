import { describe, expect, it } from "vitest";
import { docHref, listDocs, readDoc } from "./docs";

describe("the guides", () => {
  it("lists every guide by its first heading, and reads one by name", async () => {
    const docs = await listDocs();
    expect(docs.map((d) => d.name)).toEqual(expect.arrayContaining(["edge", "hardware", "training"]));
    expect(docs.find((d) => d.name === "edge")?.title).toBe("Edge episodes");
    expect((await readDoc("training")).markdown).toMatch(/^# Training/);
  });

  it("reads no file that is not a guide, whatever the name", async () => {
    for (const name of ["../README", "..%2Fpackage", "examples/oip_client", "EDGE", "nope"]) {
      await expect(readDoc(name)).rejects.toMatchObject({ code: "NOT_FOUND" });
    }
  });

  it("leads a link to another guide to its page, and leaves no path to a file", () => {
    expect(docHref("deploy.md")).toBe("/docs/deploy");
    expect(docHref("storage.md#buckets")).toBe("/docs/storage#buckets");
    expect(docHref("https://github.com/huggingface/lerobot")).toBe("https://github.com/huggingface/lerobot");
    expect(docHref("#resume")).toBe("#resume");
    expect(docHref("examples/oip_client.py")).toBeNull();
    expect(docHref("../README.md")).toBeNull();
  });
});
