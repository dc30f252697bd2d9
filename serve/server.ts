import crypto from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import type { Db } from "../server/db";
import { AppError, toHttpError } from "../server/errors";
import { checkRole, type OrgActor } from "../server/auth/roles";
import { authenticateApiToken } from "../server/auth/tokens.service";
import { isInstanceAdmin } from "../server/auth/instance-admins.service";
import { onAccessChange } from "../server/auth/access-changes";
import type { RealtimeHub } from "../server/jobs/realtime";
import { listServableEndpoints, recordEndpointState } from "../server/serving/endpoints.service";
import type { EndpointStateChange, InferenceEngine, LoadedEndpoint } from "../server/serving/inference.service";
import { EndpointUnavailableError, LOADING_RETRY_AFTER_SECONDS } from "../server/serving/inference.errors";
import { fromNested, toJsonTensor, toNested, toOipDatatype, toOipShape } from "../server/serving/tensors";
import { BINARY_HEADER, binaryOutputNames, buildInferResponse, parseInferRequest } from "../server/serving/oip";
import { RequestStatsRecorder } from "../server/serving/request-stats.recorder";
import { INTERNAL_TOKEN_PREFIX, verifyInternalToken } from "../server/serving/internal-token";
import { DatabaseUnavailableError, isDatabaseUnavailable, OutageLog } from "../server/db/availability";

// The model server's HTTP face: the Open Inference Protocol v2 with JSON tensors, the older
// `/predict/{name}`, health and Prometheus metrics. Thin: parse, authenticate, hand the
// tensors to the engine.
//
// It learns which endpoints to serve by polling the Endpoint table (one indexed query every
// `pollMs`, 2 s by default) rather than LISTEN: endpoint changes are rare and a few seconds
// of delay is fine for a deploy, a poll needs no dedicated connection nor reconnect logic,
// and it heals by itself after the database restarts or a notification is missed. A poll only
// reads the list and starts loads: the engine loads each endpoint on its own, so the polls go
// on while a large model loads, and every endpoint of the list is known (answering "loading")
// from the first poll. Until that first poll has read the list, a model route answers 503
// (it cannot yet tell a name that is loading from one that is not an endpoint).

export interface ModelServerOptions {
  db: Db;
  engine: InferenceEngine;
  pollMs?: number;
  /** AUTH_SECRET: lets the portal's short-lived `gti_` tokens in (the endpoint page's "try it" form). */
  internalSecret?: string;
  /** How often the per-minute request statistics are written to the database. */
  statsFlushMs?: number;
  /** Largest request body accepted; larger ones get 413. */
  maxBodyBytes?: number;
  /** SERVE_METRICS_TOKEN: a scraper sending it reads every organisation's series on /metrics. */
  metricsToken?: string;
  /** INSTANCE_ADMINS: their API tokens read every organisation's series on /metrics too. */
  instanceAdmins?: string[];
  /**
   * The database's access announcements (a LISTEN connection): API tokens are cached only while
   * it is listening, and forgotten the moment one is revoked or its owner removed.
   */
  accessEvents?: RealtimeHub;
  /** How long a token lookup is reused at most, in case an announcement is lost unnoticed. */
  tokenCacheMs?: number;
  log?: (message: string) => void;
}

const predictBody = z.object({ inputs: z.record(z.string(), z.unknown()) });

// A token is looked up once per few seconds, not on every request, so a busy client pays no
// database round trip per call. A revoked token is forgotten at once: the database announces
// it (accessEvents); the time limit only covers an announcement lost without a disconnect.
const TOKEN_CACHE_MS = 5_000;
const TOKEN_CACHE_MAX = 1_000;
// While the database cannot be reached, a token it accepted this recently still gets in (a
// revocation needs the database too), so loaded models keep answering through a restart.
const OUTAGE_GRACE_MS = 5 * 60_000;

export function createModelServer({ db, engine, internalSecret, pollMs = 2_000, statsFlushMs = 5_000, maxBodyBytes = 16 * 1024 * 1024, metricsToken, instanceAdmins = [], accessEvents, tokenCacheMs = TOKEN_CACHE_MS, log = () => {} }: ModelServerOptions) {
  /** The endpoints were read from the database at least once: a name not among them is 404. */
  let hasListed = false;
  /** Every endpoint of the first list has loaded or failed to: the server as a whole is ready. */
  let hasLoadedFirstList = false;
  const stats = new RequestStatsRecorder(db, log);
  engine.onRequest = (endpointId, outcome, seconds) => stats.record(endpointId, outcome, seconds);
  const statsTimer = setInterval(() => {
    if (!stats.isFlushing) void stats.flush(); // a slow database gets no pile of flushes
  }, statsFlushMs);
  statsTimer.unref();
  // State changes a database outage kept from being written, by endpoint, written on the next poll.
  const unrecorded = new Map<string, EndpointStateChange>();
  const recordState = async (change: EndpointStateChange) => {
    try {
      await recordEndpointState(db, change);
      unrecorded.delete(change.endpointId);
    } catch (error) {
      unrecorded.set(change.endpointId, change);
      if (isDatabaseUnavailable(error)) outage.failed(error);
      else log(`Could not record the state of endpoint ${change.endpointId}: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  engine.onStateChange = async (change) => {
    log(change.error ? `Endpoint ${change.endpointId}: ${change.error}` : `Endpoint ${change.endpointId} ready`);
    await recordState(change);
  };
  let listing: Promise<{ loads: Promise<unknown> } | null> | null = null;
  /** API tokens looked up lately, by the Authorization header that carried them. */
  const tokens = new Map<string, { actor: OrgActor; until: number }>();
  // The last time the database accepted each token, for OUTAGE_GRACE_MS; and one log line per outage.
  const accepted = new Map<string, { actor: OrgActor; at: number }>();
  const outage = new OutageLog("Model server", log);
  // Counts announcements, so a lookup that raced one is not cached.
  let accessChanges = 0;
  const stopWatchingAccess = accessEvents
    ? onAccessChange(accessEvents, (change) => {
        accessChanges++;
        if (!change) {
          accepted.clear();
          return tokens.clear(); // reconnected: changes may have been missed
        }
        for (const [bearer, { actor }] of tokens) if (actor.userId === change.userId) tokens.delete(bearer);
        for (const [bearer, { actor }] of accepted) if (actor.userId === change.userId) accepted.delete(bearer);
      })
    : null;

  /** Reads the endpoint list and hands it to the engine, which starts the loads it needs (one read at a time). */
  const readList = () => {
    listing ??= (async () => {
      try {
        const specs = await listServableEndpoints(db);
        const loads = engine.sync(specs);
        if (!hasListed) void loads.then(() => (hasLoadedFirstList = true));
        hasListed = true;
        outage.recovered();
        for (const change of [...unrecorded.values()]) await recordState(change);
        return { loads };
      } catch (error) {
        // The endpoints already loaded keep serving; an outage is said once, not every poll.
        if (isDatabaseUnavailable(error)) outage.failed(error);
        else log(`Could not refresh the endpoints: ${error instanceof Error ? error.message : String(error)}`);
        return null;
      } finally {
        listing = null;
      }
    })();
    return listing;
  };
  /** Reads the endpoint list now and settles once every endpoint on it has loaded or failed to. */
  const syncNow = async (): Promise<void> => {
    const read = await readList();
    await read?.loads;
  };
  const timer = setInterval(() => void readList(), pollMs);
  timer.unref();

  /** Before the first list, no name can be told apart: every model route is "not yet". */
  function requireList() {
    if (hasListed) return;
    throw new EndpointUnavailableError(
      outage.isDown
        ? "The model server cannot reach its database to read which endpoints it serves; retry in a few seconds"
        : "The model server is starting and has not read which endpoints it serves yet; retry in a few seconds",
      LOADING_RETRY_AFTER_SECONDS,
    );
  }

  /** The token of `Authorization: Bearer <token>`; 401 without one. */
  function bearerToken(req: http.IncomingMessage): string {
    const header = req.headers.authorization;
    const match = header ? BEARER.exec(header) : null;
    if (!match) throw new AppError("UNAUTHORIZED", "Send an API token as `Authorization: Bearer <token>`; make one under Settings → API tokens");
    return match[1];
  }

  /**
   * Who sent the request. A portal token, or an API token looked up moments ago, is answered
   * at once (no promise: this is on every inference request's path); otherwise the database
   * is asked.
   */
  function authenticate(req: http.IncomingMessage): OrgActor | Promise<OrgActor> {
    // Without news of revocations arriving, every request asks the database. An API token looked
    // up moments ago is found by the header that carried it, unparsed.
    const header = req.headers.authorization;
    if (header !== undefined && accessEvents?.isListening === true) {
      const cached = tokens.get(header);
      if (cached !== undefined && cached.until > Date.now()) return cached.actor;
    }
    const token = bearerToken(req);
    if (token.startsWith(INTERNAL_TOKEN_PREFIX)) {
      const actor = internalSecret ? verifyInternalToken(internalSecret, token) : null;
      if (!actor) throw new AppError("UNAUTHORIZED", "This portal token is invalid or has expired; send the request again from the endpoint page, or use an API token");
      return actor;
    }
    return lookUpToken(token, header!);
  }

  /** Asks the database who an API token is; cached under the Authorization header that carried it. */
  async function lookUpToken(token: string, header: string): Promise<OrgActor> {
    const canCache = accessEvents?.isListening === true;
    const changesBefore = accessChanges;
    let actor: OrgActor;
    try {
      // Once more on a connection the database dropped (a pooled one, stale after a restart).
      actor = await authenticateApiToken(db, token).catch((error: unknown) => {
        if (isDatabaseUnavailable(error)) return authenticateApiToken(db, token);
        throw error;
      });
    } catch (error) {
      if (!isDatabaseUnavailable(error)) throw error;
      outage.failed(error);
      const known = accepted.get(token);
      if (known && Date.now() - known.at < OUTAGE_GRACE_MS) return known.actor;
      throw new DatabaseUnavailableError("The model server cannot reach its database to check this API token; try again in a moment");
    }
    if (accepted.size >= TOKEN_CACHE_MAX) accepted.clear();
    accepted.set(token, { actor, at: Date.now() });
    // Not cached when the connection dropped, or access changed, while the database was asked.
    if (!canCache || !accessEvents.isListening || accessChanges !== changesBefore) return actor;
    if (tokens.size >= TOKEN_CACHE_MAX) tokens.clear();
    tokens.set(header, { actor, until: Date.now() + tokenCacheMs });
    return actor;
  }

  /**
   * Whose series /metrics may show: every organisation's to the metrics token and to an instance
   * admin's token, only its own organisation's to any other API token (endpoint names and
   * traffic are the organisation's business).
   */
  async function metricsScope(req: http.IncomingMessage): Promise<{ orgId?: string }> {
    const match = BEARER.exec(req.headers.authorization ?? "");
    if (!match) throw new AppError("UNAUTHORIZED", "Send the metrics token (SERVE_METRICS_TOKEN) or an API token as `Authorization: Bearer <token>`; an API token shows its own organisation's endpoints only");
    if (metricsToken && isSameSecret(match[1], metricsToken)) return {};
    const actor = await authenticate(req);
    checkRole(actor, "viewer");
    if (await isInstanceAdmin(db, { userId: actor.userId, instanceAdmins })) return {};
    return { orgId: actor.orgId };
  }

  const bodyLimit = maxBodyBytes >= 1024 * 1024 ? `${Math.round(maxBodyBytes / 1024 / 1024)} MB` : `${Math.round(maxBodyBytes / 1024)} KB`;
  /** The whole body, within `maxBodyBytes`; events rather than an async iterator, which costs more per request. */
  function readBody(req: http.IncomingMessage): Promise<Buffer> {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > maxBodyBytes) return Promise.reject(new AppError("PAYLOAD_TOO_LARGE", `The request body is ${declared} bytes, over the ${bodyLimit} limit; send smaller batches`));
    // Inline callbacks, not named ones: this runs on every request.
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (chunk: Buffer) => {
        if (size < 0) return; // refused already
        size += chunk.length;
        if (size > maxBodyBytes) {
          size = -1;
          reject(new AppError("PAYLOAD_TOO_LARGE", `The request body is over the ${bodyLimit} limit; send smaller batches`));
          return;
        }
        chunks.push(chunk);
      });
      req.on("end", () => {
        if (size >= 0) resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
      });
      req.on("error", reject);
    });
  }

  async function readJson(req: http.IncomingMessage): Promise<unknown> {
    const body = await readBody(req);
    try {
      return JSON.parse(body.toString("utf8"));
    } catch {
      throw new AppError("BAD_REQUEST", "The request body is not valid JSON");
    }
  }

  function parse<T>(schema: z.ZodType<T>, value: unknown, example: string): T {
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    const where = issue.path.length ? issue.path.join(".") : "the body";
    throw new AppError("BAD_REQUEST", `The request body is not what this route takes: ${where}: ${issue.message} (expected ${example})`);
  }

  /** The endpoint a request names, for its sender; at once when the sender's token is known (see authenticate). */
  function resolve(req: http.IncomingMessage, name: string, version: string | undefined): LoadedEndpoint | Promise<LoadedEndpoint> {
    const actor = authenticate(req);
    return actor instanceof Promise ? actor.then((a) => endpointFor(a, name, version)) : endpointFor(actor, name, version);
  }

  function endpointFor(actor: OrgActor, name: string, version: string | undefined): LoadedEndpoint {
    checkRole(actor, "viewer");
    requireList();
    return engine.find(actor.orgId, name, version);
  }

  /**
   * POST /v2/models/{name}[/versions/{version}]/infer: the route every inference request
   * takes, so it is kept short — no promise until the body is read when the token is known.
   */
  function infer(req: http.IncomingMessage, res: http.ServerResponse, name: string, version: string | undefined): Promise<void> {
    const resolved = resolve(req, name, version);
    return resolved instanceof Promise ? resolved.then((loaded) => answerInfer(req, res, loaded)) : answerInfer(req, res, resolved);
  }

  async function answerInfer(req: http.IncomingMessage, res: http.ServerResponse, loaded: LoadedEndpoint): Promise<void> {
    const request = parseInferRequest(await readBody(req), req.headers[BINARY_HEADER]);
    const binaryOutputs = binaryOutputNames(request, loaded.spec.signature.outputs);
    const outputs = await engine.infer(loaded, request.inputs, request.outputs?.map((o) => o.name), { binaryOutputs });
    const { headers, body } = buildInferResponse(request, { name: loaded.spec.name, version: String(loaded.spec.versionNumber) }, outputs, binaryOutputs);
    res.writeHead(200, headers);
    res.end(body);
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const target = req.url ?? "/";
    const query = target.indexOf("?");
    const url = { pathname: query === -1 ? target : target.slice(0, query) };
    const parts = url.pathname.split("/").filter(Boolean).map(decodeSegment);
    const method = req.method ?? "GET";
    const send = (status: number, body: unknown, type = "application/json", headers: Record<string, string> = {}) => {
      const text = type === "application/json" ? JSON.stringify(body) : String(body);
      res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(text), ...headers });
      res.end(text);
    };

    if (method === "GET" && url.pathname === "/metrics") {
      const { orgId } = await metricsScope(req);
      const gauges = engine.servedEndpoints().map((l) => ({ orgId: l.spec.orgId, name: l.spec.name, active: l.active, queued: l.queue.length }));
      return send(200, engine.metrics.render(gauges, orgId), "text/plain; version=0.0.4");
    }
    if (method === "GET" && url.pathname === "/v2/health/live") return send(200, { live: true });
    if (method === "GET" && url.pathname === "/v2/health/ready") {
      if (hasLoadedFirstList) return send(200, { ready: true });
      const error = hasListed ? "The model server is loading its endpoints" : "The model server has not read its endpoints from the database yet";
      return send(503, { ready: false, error }, "application/json", { "retry-after": String(LOADING_RETRY_AFTER_SECONDS) });
    }
    if (method === "GET" && url.pathname === "/v2") return send(200, { name: "gantry", version: "2", extensions: ["binary_tensor_data"] });

    if (parts[0] === "v2" && parts[1] === "models" && parts[2]) {
      const name = parts[2];
      let rest = parts.slice(3);
      let version: string | undefined;
      if (rest[0] === "versions") {
        if (!rest[1]) throw new AppError("NOT_FOUND", "Name a version: /v2/models/{name}/versions/{version}");
        version = rest[1];
        rest = rest.slice(2);
      }
      const action = rest.join("/");
      if (action === "" && method === "GET") {
        const { spec } = await resolve(req, name, version);
        const io = (t: { name: string; type: string; shape: Array<number | string> }) => ({ name: t.name, datatype: toOipDatatype(t.type), shape: toOipShape(t.shape) });
        return send(200, { name: spec.name, versions: [String(spec.versionNumber)], platform: "onnxruntime", inputs: spec.signature.inputs.map(io), outputs: spec.signature.outputs.map(io) });
      }
      if (action === "ready" && method === "GET") {
        const actor = await authenticate(req);
        requireList();
        const { state } = engine.state(actor.orgId, name, version);
        if (state === "ready") return send(200, { name, ready: true });
        // The protocol's model-ready answer, with what a person or a retrying client needs beside it.
        return send(503, { name, ready: false, state }, "application/json", state === "loading" ? { "retry-after": String(LOADING_RETRY_AFTER_SECONDS) } : {});
      }
      if (action === "infer" && method === "POST") return infer(req, res, name, version);
    }
    if (parts[0] === "predict" && parts.length === 2 && method === "POST") {
      const loaded = await resolve(req, parts[1], undefined);
      let outputs: Awaited<ReturnType<InferenceEngine["infer"]>>;
      try {
        const body = parse(predictBody, await readJson(req), '{ "inputs": { "<name>": nested arrays } }');
        const types = new Map(loaded.spec.signature.inputs.map((s) => [s.name, s.type]));
        const inputs = Object.entries(body.inputs).map(([n, value]) => ({ name: n, datatype: toOipDatatype(types.get(n) ?? "float32"), ...fromNested(n, value) }));
        outputs = await engine.infer(loaded, inputs);
      } finally {
        // The endpoint page's Try it: its count is written before it is answered, so the
        // statistics the page reads again as the answer arrives already hold it.
        if (isPortalCall(req)) await stats.flush();
      }
      return send(200, { outputs: Object.fromEntries(outputs.map((o) => [o.name, toNested(o.tensor.dims.map(Number), toJsonTensor(o.name, o.tensor).data)])) });
    }
    throw new AppError("NOT_FOUND", `There is no route ${method} ${url.pathname}; see /v2/models/{name}/infer and /predict/{name}`);
  }

  /** Answers a request that failed: its status, a sentence, and Retry-After or WWW-Authenticate when they apply. */
  const fail = (req: http.IncomingMessage, res: http.ServerResponse, caught: unknown) => {
    let error = caught;
    if (!(error instanceof AppError) && isDatabaseUnavailable(error)) {
      outage.failed(error);
      error = new DatabaseUnavailableError();
    }
    const { status, message } = toHttpError(error);
    const code = error instanceof AppError ? error.status : status;
    if (code >= 500 && code !== 503 && code !== 504) console.error(error);
    if (res.headersSent) return res.destroy();
    const text = JSON.stringify({ error: message });
    const retryAfter = error instanceof EndpointUnavailableError ? error.retryAfterSeconds : null;
    res.writeHead(code, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(text),
      ...(code === 401 ? { "www-authenticate": "Bearer" } : {}),
      ...(retryAfter !== null ? { "retry-after": String(retryAfter) } : {}),
    });
    res.end(text);
    // A body we refused may still be arriving: drop the rest instead of reading it.
    if (!req.complete) req.resume();
  };

  const server = http.createServer((req, res) => {
    let answered: Promise<void>;
    try {
      // The inference route is matched first, without taking the whole path apart.
      const route = req.method === "POST" ? INFER_ROUTE.exec(req.url ?? "") : null;
      answered = route ? infer(req, res, decodeSegment(route[1]), route[2] === undefined ? undefined : decodeSegment(route[2])) : handle(req, res);
    } catch (error) {
      return fail(req, res, error);
    }
    answered.catch((error: unknown) => fail(req, res, error));
  });
  server.keepAliveTimeout = 65_000;

  return {
    server,
    syncNow,
    /** Writes the request statistics counted so far (the timer does it every `statsFlushMs`). */
    flushStats: () => stats.flush(),
    async listen(port: number, host = "127.0.0.1"): Promise<AddressInfo> {
      await new Promise<void>((done, fail) => {
        server.once("error", fail);
        server.listen(port, host, () => done());
      });
      // Knows every endpoint before it loads any; the loads go on after this returns.
      await readList();
      return server.address() as AddressInfo;
    },
    async close(): Promise<void> {
      clearInterval(timer);
      clearInterval(statsTimer);
      stopWatchingAccess?.();
      await listing;
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
      await engine.close();
      await stats.flush();
    },
  };
}

const BEARER = /^Bearer\s+(\S+)$/i;
/** POST /v2/models/{name}[/versions/{version}]/infer, with an optional query; other shapes go through the general router. */
const INFER_ROUTE = /^\/v2\/models\/([^/?]+)(?:\/versions\/([^/?]+))?\/infer(?:\?.*)?$/;

/** A percent-encoded path segment, decoded; 400 when it is not valid. */
function decodeSegment(segment: string): string {
  if (!segment.includes("%")) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new AppError("BAD_REQUEST", `The path segment ${segment} is not validly percent-encoded`);
  }
}

/** Whether the request comes from the portal (a short-lived `gti_` token: the endpoint page's Try it). */
function isPortalCall(req: http.IncomingMessage): boolean {
  return BEARER.exec(req.headers.authorization ?? "")?.[1].startsWith(INTERNAL_TOKEN_PREFIX) === true;
}

/** Compares two secrets in time that does not depend on where they differ. */
function isSameSecret(given: string, expected: string): boolean {
  const digest = (s: string) => crypto.createHash("sha256").update(s).digest();
  return crypto.timingSafeEqual(digest(given), digest(expected));
}
