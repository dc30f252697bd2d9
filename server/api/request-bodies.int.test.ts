import { describe, expect, it } from "vitest";
import { GET as trpcGet, POST as trpcPost } from "../../app/api/trpc/[trpc]/route";
import { POST as addDevice } from "../../app/api/compat/deployment/devices/route";
import { POST as compatTrain } from "../../app/api/compat/edge/train/[...repoId]/route";
import { POST as addModelVersion } from "../../app/api/models/[modelId]/versions/route";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { createApiToken } from "../auth/tokens.service";
import { env } from "../env";
import { ANONYMOUS_MAX_BODY_BYTES } from "./trpc-request";

// Request bodies of /api/trpc and the JSON route handlers, called as Next calls them: the size
// is judged from Content-Length (and the caller) before a byte is read, a body without one is
// cut off at the limit, and JSON nested deeper than any input is refused before it is parsed.

const db = testDb();
const MiB = 1024 * 1024;

/** A body of `total` bytes that counts what the handler pulls out of it. */
function countedBody(total: number, chunk = 64 * 1024) {
  const counter = { pulled: 0 };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (counter.pulled >= total) return controller.close();
      counter.pulled += chunk;
      controller.enqueue(new Uint8Array(chunk).fill(0x20));
    },
  });
  return { counter, stream };
}

const trpcUrl = (path: string) => `http://localhost/api/trpc/${path}`;

function post(url: string, body: BodyInit | ReadableStream, headers: Record<string, string>) {
  return new Request(url, { method: "POST", body, headers: { "content-type": "application/json", ...headers }, duplex: "half" } as RequestInit);
}

/** `[[[…]]]`, `depth` deep. */
const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);

async function tokenFor(role: "operator" | "admin" = "admin") {
  const { actor } = await createOrgWithMember(db, role);
  return (await createApiToken(db, { actor, input: { name: "bodies", scopes: ["admin"] } })).token;
}

describe("request bodies", () => {
  it("refuses an anonymous 100 MB body by its Content-Length without reading it", async () => {
    const { counter, stream } = countedBody(100 * MiB);
    const res = await trpcPost(post(trpcUrl("auth.signUp"), stream, { "content-length": String(100 * MiB) }));
    expect(res.status).toBe(413);
    expect(JSON.stringify(await res.json())).toMatch(/Without a session or an API token a request may send at most 64 KiB/);
    // At most what the stream buffers ahead on its own: nothing was read.
    expect(counter.pulled).toBeLessThanOrEqual(128 * 1024);

    const compat = countedBody(100 * MiB);
    const refused = await addDevice(post("http://localhost/deployment/devices", compat.stream, { "content-length": String(100 * MiB) }));
    expect(refused.status).toBe(401);
    expect(compat.counter.pulled).toBeLessThanOrEqual(128 * 1024);
  });

  it("refuses a signed-in body over API_MAX_BODY_BYTES by its Content-Length, and cuts off one without a length", async () => {
    const token = await tokenFor();
    const declared = countedBody(100 * MiB);
    const res = await trpcPost(post(trpcUrl("models.create"), declared.stream, { authorization: `Bearer ${token}`, "content-length": String(100 * MiB) }));
    expect(res.status).toBe(413);
    expect(JSON.stringify(await res.json())).toMatch(/API_MAX_BODY_BYTES/);
    expect(declared.counter.pulled).toBeLessThanOrEqual(128 * 1024);

    const max = env().API_MAX_BODY_BYTES;
    const undeclared = countedBody(max * 4);
    const cut = await trpcPost(post(trpcUrl("models.create"), undeclared.stream, { authorization: `Bearer ${token}` }));
    expect(cut.status).toBe(413);
    expect(undeclared.counter.pulled).toBeLessThanOrEqual(max + 2 * 64 * 1024);

    const anonymous = countedBody(10 * MiB);
    expect((await trpcPost(post(trpcUrl("auth.signUp"), anonymous.stream, {}))).status).toBe(413);
    expect(anonymous.counter.pulled).toBeLessThanOrEqual(ANONYMOUS_MAX_BODY_BYTES + 2 * 64 * 1024);

    const compat = countedBody(max * 4);
    expect((await addDevice(post("http://localhost/deployment/devices", compat.stream, { authorization: `Bearer ${token}` }))).status).toBe(413);
    expect(compat.counter.pulled).toBeLessThanOrEqual(max + 2 * 64 * 1024);
  });

  it("refuses JSON nested 200,000 deep with 400, before parsing it", async () => {
    const token = await tokenFor();
    const deep = `{"json":{"name":${nested(200_000)}}}`;
    const res = await trpcPost(post(trpcUrl("models.create"), deep, { authorization: `Bearer ${token}` }));
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toMatch(/nests arrays or objects more than 64 deep/);

    const compat = await addDevice(post("http://localhost/deployment/devices", `{"name":${nested(200_000)}}`, { authorization: `Bearer ${token}` }));
    expect(compat.status).toBe(400);
    expect((await compat.json()).error.message).toMatch(/^Send \{"name", .*: the request body nests arrays or objects more than 64 deep/);

    // A query's input rides in the URL.
    const query = new URL(trpcUrl("models.list"));
    query.searchParams.set("input", JSON.stringify({ json: JSON.parse(nested(100)) }));
    const get = await trpcGet(new Request(query, { headers: { authorization: `Bearer ${token}` } }));
    expect(get.status).toBe(400);

    // Strings are not nesting: brackets inside them do not count.
    const fine = await trpcPost(post(trpcUrl("models.create"), JSON.stringify({ json: { name: `brackets ${Date.now()}`, description: `${"[{".repeat(500)} \" ]` } }), { authorization: `Bearer ${token}` }));
    expect(fine.status).toBe(200);
  });

  it("says what is wrong with a tRPC input in a sentence naming each field, with the fields apart for forms", async () => {
    const token = await tokenFor();
    const res = await trpcPost(post(trpcUrl("models.create"), JSON.stringify({ json: { name: "a".repeat(81), description: "x".repeat(3000) } }), { authorization: `Bearer ${token}` }));
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as { error: { json: { message: string; data: { fieldErrors: { path: string; message: string }[] } } } };
    expect(error.json.message).toMatch(/^The input is not valid: name: .+; description: .+$/);
    expect(error.json.message).not.toContain("[");
    expect(error.json.data.fieldErrors.map((f) => f.path)).toEqual(["name", "description"]);
  });

  it("refuses text holding a NUL character, which Postgres cannot keep, naming where it is", async () => {
    const token = await tokenFor();
    const auth = { authorization: `Bearer ${token}` };
    const trpc = await trpcPost(post(trpcUrl("models.create"), JSON.stringify({ json: { name: "nul", description: "a\u0000b" } }), auth));
    expect(trpc.status).toBe(400);
    expect(JSON.stringify(await trpc.json())).toMatch(/The input holds a NUL character \(\\\\u0000\) in description; the portal keeps text without them/);
    const device = await addDevice(post("http://localhost/deployment/devices", JSON.stringify({ name: "arm\u0000" }), auth));
    expect(device.status).toBe(400);
    expect((await device.json()).error.message).toMatch(/holds a NUL character \(\\u0000\) in name/);
    const modelId = crypto.randomUUID();
    const upload = await addModelVersion(new Request(`http://localhost/api/models/${modelId}/versions?filename=policy%00.onnx`, { method: "POST", body: new Uint8Array(16), headers: auth }), { params: Promise.resolve({ modelId }) });
    expect(upload.status).toBe(400);
    expect((await upload.json()).error.message).toMatch(/^The upload's query holds a NUL character \(\\u0000\) in filename/);
  });

  it("answers bodies of ordinary size as before", async () => {
    const token = await tokenFor();
    const res = await trpcPost(post(trpcUrl("models.create"), JSON.stringify({ json: { name: `ordinary ${Date.now()}`, description: "" } }), { authorization: `Bearer ${token}` }));
    expect(res.status).toBe(200);
  });

  it("reads an earlier client's training settings whatever Content-Type it sent, and takes the defaults only for no body", async () => {
    const token = await tokenFor();
    const train = (body: string | undefined, type?: string) =>
      compatTrain(new Request("http://localhost/edge/train/lab/none-such", { method: "POST", body, headers: { authorization: `Bearer ${token}`, ...(type ? { "content-type": type } : {}) } }), { params: Promise.resolve({ repoId: ["lab", "none-such"] }) });
    // curl -d sends its JSON as a form: still the settings, checked as such.
    const form = await train('{"policy_type": "act", "steps": -5}', "application/x-www-form-urlencoded");
    expect(form.status).toBe(400);
    expect((await form.json()).error.message).toMatch(/^Send \{"policy_type": "act", "steps": 100000\} or no body: steps /);
    const notJson = await train("steps=1000", "application/x-www-form-urlencoded");
    expect(notJson.status).toBe(400);
    expect((await notJson.json()).error.message).toMatch(/not valid JSON/);
    // Settings that are fine, and no body at all, go on to the dataset, which this organisation does not have.
    for (const [body, type] of [['{"steps": 1000}', "text/plain"], [undefined, undefined], ["  ", "application/json"]] as const) {
      const res = await train(body, type);
      expect(res.status, String(body)).toBe(404);
    }
  });
});
