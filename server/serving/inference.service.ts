import { AppError } from "../errors";
import { EndpointUnavailableError, InferenceTimeoutError, LOADING_RETRY_AFTER_SECONDS, refuseNonFinite } from "./inference.errors";
import type { ServableEndpoint } from "./endpoints.schemas";
import { describeOrtError } from "../models/ort-errors";
import { buildFeeds, type InputTensor } from "./tensors";
import { ServingMetrics, type Outcome } from "./metrics";
import { SessionPool, type RawTensor } from "./session-pool";
import { INLINE_MAX_MODEL_BYTES, InlineSession } from "./inline-session";
import { LoadSlots } from "./load-slots";

// The inference engine of the model server: per endpoint, a pool of up to `concurrency`
// onnxruntime sessions on worker threads (session-worker.mjs says why), plus one on the main
// thread for small requests to quick models (inline-session.ts says when; the workers of such an
// endpoint start only as the overflow needs them), a bounded queue in front, a
// deadline per request, and hot swaps that replace a pool only once its successor has loaded.
// A request past its deadline is answered at once; its run finishes on its worker, which
// stays busy until then (onnxruntime cannot interrupt a run).
//
// Endpoints load independently, a few at a time (load-slots.ts): the engine knows every
// endpoint it is to serve from the moment it is told of them, so one still loading answers
// "loading" (503, Retry-After), one that could not load says why, and only a name that is not
// an endpoint at all is 404.

export interface InferOptions {
  /**
   * The outputs the client receives as raw bytes (the binary tensor extension), which may hold
   * any value; every other output must be finite. Null when the route has no binary form.
   */
  binaryOutputs?: ReadonlySet<string> | null;
}

export interface LoadedEndpoint {
  spec: ServableEndpoint;
  pool: SessionPool;
  /** The same model on the main thread when it is quick enough (inline-session.ts); small requests run there. */
  inline: InlineSession | null;
  /** The model's outputs, in its signature's order (what a request gets when it names none). */
  outputNames: string[];
  active: number;
  queue: Array<() => void>;
  isRetired: boolean;
  isReleased: boolean;
}

export interface EndpointStateChange {
  endpointId: string;
  status: "ready" | "failed";
  error: string | null;
}

/** Where an endpoint the engine is told to serve stands. */
export type EndpointState = { state: "ready"; loaded: LoadedEndpoint } | { state: "loading"; message: string } | { state: "failed"; message: string };

export interface InferenceEngineOptions {
  /** The ONNX file's bytes, by sha256. */
  readModel: (sha256: string) => Promise<Uint8Array>;
  /** MODEL_INFERENCE_TIMEOUT in milliseconds; an endpoint's timeoutMs setting overrides it. */
  defaultTimeoutMs: number;
  /** false: never run a quick model on the main thread (every request goes to a worker). */
  inline?: boolean;
  /** Endpoints loaded at once, per lane (small models, large models); 2 by default. */
  loadConcurrency?: number;
}

/** A failed run, for the client: the model's refusal. */
function runError(error: unknown): AppError {
  return new AppError("BAD_REQUEST", `The model rejected the request: ${describeOrtError(error)}`);
}

const keyOf = (orgId: string, name: string) => `${orgId}/${name}`;
/** What a loaded pool is built from: a change to any of it needs a new load. */
const loadIdentity = (s: ServableEndpoint) => `${s.id}/${s.versionId}/${s.settings.threads}/${s.settings.concurrency}`;
const NOT_AN_ENDPOINT = (name: string) => new AppError("NOT_FOUND", `There is no endpoint named ${name} in this organisation, or it has been undeployed`);

interface LoadAttempt {
  identity: string;
  done: Promise<EndpointStateChange | null>;
}

export class InferenceEngine {
  readonly metrics = new ServingMetrics();
  /** Told of every finished request (the model server counts them for the endpoint page). */
  onRequest: ((endpointId: string, outcome: Outcome, seconds: number) => void) | null = null;
  /** Told as each endpoint finishes loading or fails to, for the caller to record; awaited. */
  onStateChange: ((change: EndpointStateChange) => Promise<void> | void) | null = null;
  private readonly served = new Map<string, LoadedEndpoint>();
  /** key → the load in flight (or waiting for a slot) for what that endpoint should now serve. */
  private readonly loading = new Map<string, LoadAttempt>();
  /** endpointId → the version that failed to load and why, so a poll does not retry it forever. */
  private readonly failedVersions = new Map<string, { versionId: string; reason: string }>();
  private desired = new Map<string, ServableEndpoint>();
  private readonly slots: LoadSlots;
  private isClosed = false;

  constructor(private readonly options: InferenceEngineOptions) {
    this.slots = new LoadSlots(options.loadConcurrency ?? 2);
  }

  /**
   * Brings the served set in line with `specs`. Every endpoint in `specs` is known at once (a
   * request for one still loading gets "loading", not 404); new endpoints and new versions
   * start loading, each on its own; the ones gone are dropped. The promise settles once every
   * endpoint of `specs` has loaded or failed, with the changes of the loads it waited for.
   */
  sync(specs: ServableEndpoint[]): Promise<EndpointStateChange[]> {
    if (this.isClosed) return Promise.resolve([]);
    this.desired = new Map(specs.map((s) => [keyOf(s.orgId, s.name), s]));
    for (const [key, loaded] of this.served) {
      if (this.desired.get(key)?.id !== loaded.spec.id) this.unload(key);
    }
    const waits: Array<Promise<EndpointStateChange | null>> = [];
    for (const [key, spec] of this.desired) {
      const current = this.served.get(key);
      if (current && loadIdentity(current.spec) === loadIdentity(spec)) {
        current.spec = spec; // limits and preprocessing apply from the next request
        continue;
      }
      const inFlight = this.loading.get(key);
      if (inFlight?.identity === loadIdentity(spec)) {
        waits.push(inFlight.done);
        continue;
      }
      if (spec.failure) {
        this.failedVersions.delete(spec.id); // the database has it now; a redeploy clears it there
        continue;
      }
      if (this.failedVersions.get(spec.id)?.versionId === spec.versionId) continue;
      const attempt: LoadAttempt = { identity: loadIdentity(spec), done: Promise.resolve(null) };
      attempt.done = this.loadInTurn(key, spec, attempt);
      this.loading.set(key, attempt);
      waits.push(attempt.done);
    }
    return Promise.all(waits).then((changes) => changes.filter((c): c is EndpointStateChange => c !== null));
  }

  /** Whether the endpoint under `key` is still meant to be served as `spec` describes. */
  private isWanted(key: string, spec: ServableEndpoint): boolean {
    const wanted = this.desired.get(key);
    return !this.isClosed && wanted !== undefined && !wanted.failure && loadIdentity(wanted) === loadIdentity(spec);
  }

  private async loadInTurn(key: string, spec: ServableEndpoint, attempt: LoadAttempt): Promise<EndpointStateChange | null> {
    let change: EndpointStateChange | null = null;
    const release = await this.slots.acquire(spec.bytes);
    try {
      if (!this.isWanted(key, spec)) return null; // undeployed or changed while it waited its turn
      let parts: { pool: SessionPool; inline: InlineSession | null };
      try {
        parts = await this.load(spec);
      } catch (error) {
        if (!this.isWanted(key, spec)) return null;
        const reason = describeOrtError(error);
        this.failedVersions.set(spec.id, { versionId: spec.versionId, reason });
        const current = this.served.get(key);
        change = current
          ? { endpointId: spec.id, status: "ready", error: `Version ${spec.versionNumber} of ${spec.modelName} could not be loaded (${reason}); still serving version ${current.spec.versionNumber}` }
          : { endpointId: spec.id, status: "failed", error: `Version ${spec.versionNumber} of ${spec.modelName} could not be loaded: ${reason}` };
        return change;
      }
      if (!this.isWanted(key, spec)) {
        await Promise.all([parts.pool.release(), parts.inline?.release()]); // undeployed or changed again while loading
        return null;
      }
      const current = this.served.get(key);
      if (current) this.retire(current);
      this.served.set(key, { spec: this.desired.get(key)!, ...parts, outputNames: spec.signature.outputs.map((o) => o.name), active: 0, queue: [], isRetired: false, isReleased: false });
      this.failedVersions.delete(spec.id);
      change = { endpointId: spec.id, status: "ready", error: null };
      return change;
    } finally {
      release();
      if (this.loading.get(key) === attempt) this.loading.delete(key);
      if (change) await this.onStateChange?.(change);
    }
  }

  private async load(spec: ServableEndpoint): Promise<{ pool: SessionPool; inline: InlineSession | null }> {
    const bytes = await this.options.readModel(spec.sha256);
    // A model that may run on the main thread starts one worker first, to time it; any other
    // starts them all at once.
    const mayRunInline = this.options.inline !== false && bytes.byteLength <= INLINE_MAX_MODEL_BYTES;
    const pool = await SessionPool.create(bytes, { size: spec.settings.concurrency, threads: spec.settings.threads, start: mayRunInline ? 1 : spec.settings.concurrency });
    try {
      const inline = !mayRunInline ? null : await InlineSession.createIfQuick(bytes, spec.signature, spec.settings.threads, pool).catch(() => null);
      // Without a main-thread session the workers take every request, so all of them load now;
      // with one, they take only the overflow (a larger batch, a paused session) and start as needed.
      if (!inline) await pool.fill();
      return { pool, inline };
    } catch (error) {
      await pool.release();
      throw error;
    }
  }

  /**
   * Where the endpoint of this name stands: ready (with what serves it), loading or failed (with
   * a sentence for the client); NOT_FOUND when it is not an endpoint here or does not serve
   * `version`. While a new version loads, the old one is still ready.
   */
  state(orgId: string, name: string, version?: string): EndpointState {
    const key = keyOf(orgId, name);
    const loaded = this.served.get(key);
    const spec = loaded?.spec ?? this.desired.get(key);
    if (!spec) throw NOT_AN_ENDPOINT(name);
    if (version !== undefined && version !== String(spec.versionNumber)) throw new AppError("NOT_FOUND", `Endpoint ${name} serves version ${spec.versionNumber}, not version ${version}`);
    if (loaded) return { state: "ready", loaded };
    const failed = this.failedVersions.get(spec.id);
    if (failed?.versionId === spec.versionId) {
      return { state: "failed", message: `Endpoint ${name} is not serving: version ${spec.versionNumber} of ${spec.modelName} could not be loaded (${failed.reason}); deploy a version that loads` };
    }
    if (spec.failure) return { state: "failed", message: `Endpoint ${name} is not serving: ${spec.failure}; deploy a version that loads` };
    return { state: "loading", message: `Endpoint ${name} is loading version ${spec.versionNumber} of ${spec.modelName}; retry in a few seconds` };
  }

  /** The endpoint served under this name in this organisation; 503 while it loads or when it failed to, NOT_FOUND when there is none. */
  find(orgId: string, name: string, version?: string): LoadedEndpoint {
    // Every inference request asks: a served endpoint is answered without building its state.
    const served = this.served.get(keyOf(orgId, name));
    if (served !== undefined && (version === undefined || version === String(served.spec.versionNumber))) return served;
    const found = this.state(orgId, name, version);
    if (found.state === "ready") return found.loaded;
    throw new EndpointUnavailableError(found.message, found.state === "loading" ? LOADING_RETRY_AFTER_SECONDS : null);
  }

  /**
   * Runs one request: validates the tensors, waits for a slot, runs within the deadline.
   * Written with `then` rather than as an async function: it is on every request's path, and
   * each await would add a turn of promises.
   */
  infer(loaded: LoadedEndpoint, inputs: InputTensor[], outputNames?: string[], { binaryOutputs = null }: InferOptions = {}): Promise<Array<{ name: string; tensor: RawTensor }>> {
    const started = performance.now();
    const { spec } = loaded;
    // Replaced (a new version) or undeployed between finding it and reading the request's body.
    if (loaded.isReleased) return Promise.reject(new EndpointUnavailableError(`Endpoint ${spec.name} changed while this request arrived; send it again`, 0));
    let wanted: string[];
    let feeds: Record<string, RawTensor>;
    try {
      feeds = buildFeeds(spec.name, spec.signature, spec.settings, inputs);
      wanted = outputNames?.length ? outputNames : loaded.outputNames;
      for (const n of wanted) {
        if (!loaded.outputNames.includes(n)) throw new AppError("BAD_REQUEST", `Output "${n}" is not an output of endpoint ${spec.name}; it gives ${loaded.outputNames.join(", ")}`);
      }
    } catch (error) {
      this.count(spec, started, error);
      return Promise.reject(error);
    }
    if (loaded.active < spec.settings.concurrency && loaded.inline?.takes(feeds)) {
      // The main-thread session runs in one turn of the event loop, shortly after this: no
      // deadline could fire before it ends, so none is set (a timer per request costs), and
      // the answer is checked in the same step that ends the run.
      loaded.active++;
      let running: Promise<Record<string, RawTensor>>;
      try {
        running = loaded.inline.run(feeds, wanted);
      } catch (error) {
        running = Promise.reject(error); // answered below, as a run that failed
      }
      return running.then(
        (result) => {
          this.finishRun(loaded);
          return this.settle(spec, started, wanted, result, binaryOutputs);
        },
        (error: unknown) => {
          this.finishRun(loaded);
          const refused = runError(error);
          this.count(spec, started, refused);
          throw refused;
        },
      );
    }
    return this.runQueued(loaded, feeds, wanted, spec.settings.timeoutMs ?? this.options.defaultTimeoutMs).then(
      (result) => this.settle(spec, started, wanted, result, binaryOutputs),
      (error: unknown) => {
        this.count(spec, started, error);
        throw error;
      },
    );
  }

  /** A run's outputs, in the order asked, once every one the client takes as JSON is finite; the request is counted. */
  private settle(spec: ServableEndpoint, started: number, wanted: string[], result: Record<string, RawTensor>, binaryOutputs: ReadonlySet<string> | null): Array<{ name: string; tensor: RawTensor }> {
    try {
      for (const n of wanted) if (!binaryOutputs?.has(n)) refuseNonFinite(spec.name, n, result[n], binaryOutputs !== null);
    } catch (error) {
      this.count(spec, started, error);
      throw error;
    }
    this.count(spec, started, null);
    return wanted.map((n) => ({ name: n, tensor: result[n] }));
  }

  /** Counts a finished request (metrics and the endpoint page's statistics): a success when `error` is null. */
  private count(spec: ServableEndpoint, started: number, error: unknown): void {
    const outcome: Outcome =
      error === null ? "success" : error instanceof InferenceTimeoutError ? "timeout" : error instanceof AppError && error.code === "RATE_LIMITED" ? "rate_limited" : error instanceof AppError && error.code === "BAD_REQUEST" ? "bad_request" : "error";
    const seconds = (performance.now() - started) / 1000;
    this.metrics.observe(spec, outcome, seconds);
    this.onRequest?.(spec.id, outcome, seconds);
  }

  /** A run on a worker (or on the main thread once a slot frees), waiting in the queue for a slot, within the deadline. */
  private runQueued(loaded: LoadedEndpoint, feeds: Record<string, RawTensor>, outputs: string[], timeoutMs: number): Promise<Record<string, RawTensor>> {
    const { concurrency, maxQueue } = loaded.spec.settings;
    const name = loaded.spec.name;
    if (loaded.active >= concurrency && loaded.queue.length >= maxQueue) {
      return Promise.reject(new AppError("RATE_LIMITED", `Endpoint ${name} is busy: ${loaded.active} requests are running and ${loaded.queue.length} waiting (its concurrency and maxQueue settings); retry shortly`));
    }
    return new Promise((resolve, reject) => {
      let isSettled = false;
      let waiter: (() => void) | null = null;
      const timer = setTimeout(() => {
        isSettled = true;
        if (waiter) loaded.queue.splice(loaded.queue.indexOf(waiter), 1);
        reject(new InferenceTimeoutError(`Inference on endpoint ${name} took longer than ${timeoutMs} ms; raise MODEL_INFERENCE_TIMEOUT (or the endpoint's timeoutMs setting) or send smaller batches`));
      }, timeoutMs);
      const run = () => {
        loaded.active++;
        const runner = loaded.inline?.takes(feeds) ? loaded.inline : loaded.pool;
        runner
          .run(feeds, outputs)
          .then((r) => !isSettled && resolve(r), (e: unknown) => !isSettled && reject(runError(e)))
          .finally(() => {
            isSettled = true;
            clearTimeout(timer);
            this.finishRun(loaded);
          });
      };
      if (loaded.active < concurrency) run();
      else {
        waiter = () => {
          waiter = null;
          run();
        };
        loaded.queue.push(waiter);
      }
    });
  }

  /** A run ended: the next waiting request starts, or a retired endpoint's sessions go once idle. */
  private finishRun(loaded: LoadedEndpoint): void {
    loaded.active--;
    const next = loaded.queue.shift();
    if (next) next();
    else if (loaded.isRetired && loaded.active === 0) void this.release(loaded);
  }

  /** Stops serving an endpoint; its session is released once the requests on it finish. */
  unload(key: string): void {
    const loaded = this.served.get(key);
    if (!loaded) return;
    this.served.delete(key);
    this.retire(loaded);
  }

  private retire(loaded: LoadedEndpoint) {
    loaded.isRetired = true;
    if (loaded.active === 0 && loaded.queue.length === 0) void this.release(loaded);
  }

  private async release(loaded: LoadedEndpoint) {
    if (loaded.isReleased) return;
    loaded.isReleased = true;
    await Promise.all([loaded.pool.release().catch(() => {}), loaded.inline?.release().catch(() => {})]);
  }

  /** Endpoints currently served, for metrics and the readiness check. */
  servedEndpoints(): LoadedEndpoint[] {
    return [...this.served.values()];
  }

  /** Stops serving everything; loads in flight finish and release what they loaded. */
  async close(): Promise<void> {
    this.isClosed = true;
    this.desired.clear();
    for (const key of [...this.served.keys()]) this.unload(key);
    await Promise.all([...this.loading.values()].map((a) => a.done.catch(() => null)));
  }
}
