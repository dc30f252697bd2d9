import { AppError } from "../errors";
import type { ServableEndpoint } from "./endpoints.schemas";
import { describeOrtError } from "../models/ort-errors";
import { buildFeeds, findNonFinite, type InputTensor } from "./tensors";
import { ServingMetrics, type Outcome } from "./metrics";
import { SessionPool, type RawTensor } from "./session-pool";
import { InlineSession } from "./inline-session";

// The inference engine of the model server: per endpoint, a pool of `concurrency` onnxruntime
// sessions on worker threads (session-worker.mjs says why), plus one on the main thread for
// small requests to quick models (inline-session.ts says when), a bounded queue in front, a
// deadline per request, and hot swaps that replace a pool only once its successor has loaded.
// A request past its deadline is answered at once; its run finishes on its worker, which
// stays busy until then (onnxruntime cannot interrupt a run).

/** The endpoint exists but cannot answer yet (still loading, or its model failed to load): 503. */
export class EndpointUnavailableError extends AppError {
  constructor(message: string) {
    super("INTERNAL", message);
  }
  override get status() {
    return 503;
  }
}

/** The request ran past its deadline: 504. */
export class InferenceTimeoutError extends AppError {
  constructor(message: string) {
    super("INTERNAL", message);
  }
  override get status() {
    return 504;
  }
}

/**
 * The model answered NaN or ±Infinity where the client takes JSON, which cannot carry them
 * (JSON.stringify would write null, read as 0: a diverged policy would send zero actions): 422.
 */
export class NonFiniteOutputError extends AppError {
  constructor(message: string) {
    super("INTERNAL", message);
  }
  override get status() {
    return 422;
  }
}

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

export interface InferenceEngineOptions {
  /** The ONNX file's bytes, by sha256. */
  readModel: (sha256: string) => Promise<Uint8Array>;
  /** MODEL_INFERENCE_TIMEOUT in milliseconds; an endpoint's timeoutMs setting overrides it. */
  defaultTimeoutMs: number;
  /** false: never run a quick model on the main thread (every request goes to a worker). */
  inline?: boolean;
}

const keyOf = (orgId: string, name: string) => `${orgId}/${name}`;

export class InferenceEngine {
  readonly metrics = new ServingMetrics();
  /** Told of every finished request (the model server counts them for the endpoint page). */
  onRequest: ((endpointId: string, outcome: Outcome, seconds: number) => void) | null = null;
  private readonly served = new Map<string, LoadedEndpoint>();
  /** endpointId → the version that failed to load, so a poll does not retry it forever. */
  private readonly failedVersions = new Map<string, string>();
  private readonly desired = new Map<string, ServableEndpoint>();

  constructor(private readonly options: InferenceEngineOptions) {}

  /**
   * Brings the served set in line with `specs`: loads new endpoints and new versions, drops
   * the ones gone. Returns the endpoints whose state changed, for the caller to record.
   */
  async sync(specs: ServableEndpoint[]): Promise<EndpointStateChange[]> {
    const changes: EndpointStateChange[] = [];
    const wanted = new Map(specs.map((s) => [keyOf(s.orgId, s.name), s]));
    this.desired.clear();
    for (const [key, spec] of wanted) this.desired.set(key, spec);
    for (const [key, loaded] of this.served) {
      if (wanted.get(key)?.id !== loaded.spec.id) this.unload(key);
    }
    for (const [key, spec] of wanted) {
      const current = this.served.get(key);
      if (current && current.spec.versionId === spec.versionId && current.spec.settings.threads === spec.settings.threads && current.spec.settings.concurrency === spec.settings.concurrency) {
        current.spec = spec; // limits and preprocessing apply from the next request
        continue;
      }
      if (this.failedVersions.get(spec.id) === spec.versionId) continue;
      try {
        const { pool, inline } = await this.load(spec);
        if (this.desired.get(key)?.versionId !== spec.versionId) {
          await Promise.all([pool.release(), inline?.release()]); // undeployed or changed again while loading
          continue;
        }
        if (current) this.retire(current);
        this.served.set(key, { spec, pool, inline, active: 0, queue: [], isRetired: false, isReleased: false });
        this.failedVersions.delete(spec.id);
        changes.push({ endpointId: spec.id, status: "ready", error: null });
      } catch (error) {
        this.failedVersions.set(spec.id, spec.versionId);
        const reason = describeOrtError(error);
        changes.push(
          current
            ? { endpointId: spec.id, status: "ready", error: `Version ${spec.versionNumber} of ${spec.modelName} could not be loaded (${reason}); still serving version ${current.spec.versionNumber}` }
            : { endpointId: spec.id, status: "failed", error: `Version ${spec.versionNumber} of ${spec.modelName} could not be loaded: ${reason}` },
        );
      }
    }
    return changes;
  }

  private async load(spec: ServableEndpoint): Promise<{ pool: SessionPool; inline: InlineSession | null }> {
    const bytes = await this.options.readModel(spec.sha256);
    const pool = await SessionPool.create(bytes, { size: spec.settings.concurrency, threads: spec.settings.threads });
    if (this.options.inline === false) return { pool, inline: null };
    const inline = await InlineSession.createIfQuick(bytes, spec.signature, spec.settings.threads, pool).catch(() => null);
    return { pool, inline };
  }

  /** The endpoint served under this name in this organisation, or NOT_FOUND (503 while it loads or failed). */
  find(orgId: string, name: string): LoadedEndpoint {
    const loaded = this.served.get(keyOf(orgId, name));
    if (loaded) return loaded;
    if (this.desired.has(keyOf(orgId, name))) {
      const spec = this.desired.get(keyOf(orgId, name))!;
      const hasFailed = this.failedVersions.get(spec.id) === spec.versionId;
      throw new EndpointUnavailableError(hasFailed ? `Endpoint ${name} failed to load its model; see the endpoint's error in the portal` : `Endpoint ${name} is still loading; retry in a few seconds`);
    }
    throw new AppError("NOT_FOUND", `There is no endpoint named ${name} in this organisation, or it has been undeployed`);
  }

  /**
   * Whether the endpoint answers now (a loading or failed one does not); NOT_FOUND, as for its
   * metadata and infer, when there is no such endpoint or it does not serve `version`.
   */
  readiness(orgId: string, name: string, version?: string): boolean {
    const served = this.served.get(keyOf(orgId, name));
    const spec = served?.spec ?? this.desired.get(keyOf(orgId, name));
    if (!spec) throw new AppError("NOT_FOUND", `There is no endpoint named ${name} in this organisation, or it has been undeployed`);
    if (version !== undefined && version !== String(spec.versionNumber)) throw new AppError("NOT_FOUND", `Endpoint ${name} serves version ${spec.versionNumber}, not version ${version}`);
    return served !== undefined;
  }

  /** Runs one request: validates the tensors, waits for a slot, runs within the deadline. */
  async infer(loaded: LoadedEndpoint, inputs: InputTensor[], outputNames?: string[], { binaryOutputs = null }: InferOptions = {}): Promise<Array<{ name: string; tensor: RawTensor }>> {
    const started = performance.now();
    const { spec } = loaded;
    let outcome: Outcome = "error";
    try {
      const feeds = buildFeeds(spec.name, spec.signature, spec.settings, inputs);
      const known = spec.signature.outputs.map((o) => o.name);
      const wanted = outputNames?.length ? outputNames : known;
      const unknown = wanted.find((n) => !known.includes(n));
      if (unknown) throw new AppError("BAD_REQUEST", `Output "${unknown}" is not an output of endpoint ${spec.name}; it gives ${known.join(", ")}`);
      const timeoutMs = spec.settings.timeoutMs ?? this.options.defaultTimeoutMs;
      const result = await this.runWithinLimits(loaded, feeds, wanted, timeoutMs);
      for (const n of wanted) if (!binaryOutputs?.has(n)) refuseNonFinite(spec.name, n, result[n], binaryOutputs !== null);
      outcome = "success";
      return wanted.map((n) => ({ name: n, tensor: result[n] }));
    } catch (error) {
      outcome = error instanceof InferenceTimeoutError ? "timeout" : error instanceof AppError && error.code === "RATE_LIMITED" ? "rate_limited" : error instanceof AppError && error.code === "BAD_REQUEST" ? "bad_request" : "error";
      throw error;
    } finally {
      const seconds = (performance.now() - started) / 1000;
      this.metrics.observe(spec.orgId, spec.name, outcome, seconds);
      this.onRequest?.(spec.id, outcome, seconds);
    }
  }

  private runWithinLimits(loaded: LoadedEndpoint, feeds: Record<string, RawTensor>, outputs: string[], timeoutMs: number): Promise<Record<string, RawTensor>> {
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
          .then((r) => !isSettled && resolve(r), (e: unknown) => !isSettled && reject(new AppError("BAD_REQUEST", `The model rejected the request: ${describeOrtError(e)}`)))
          .finally(() => {
            isSettled = true;
            clearTimeout(timer);
            loaded.active--;
            const next = loaded.queue.shift();
            if (next) next();
            else if (loaded.isRetired && loaded.active === 0) void this.release(loaded);
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

  async close(): Promise<void> {
    for (const key of [...this.served.keys()]) this.unload(key);
  }
}

function refuseNonFinite(endpointName: string, output: string, tensor: RawTensor, canAskBinary: boolean) {
  const found = findNonFinite(tensor);
  if (!found) return;
  const values = found.count === 1 ? "a value" : `${found.count} values`;
  const remedy = canAskBinary
    ? ` Ask for it in binary to receive the values as they are: "outputs": [{ "name": "${output}", "parameters": { "binary_data": true } }].`
    : " Use the Open Inference Protocol route (/v2/models/{name}/infer) with binary outputs to receive the values as they are.";
  throw new NonFiniteOutputError(
    `Output "${output}" of endpoint ${endpointName} holds ${values} that ${found.count === 1 ? "is" : "are"} not a finite number (NaN or ±Infinity, first at position ${found.first}), which JSON cannot carry — the model overflowed or diverged on this input.${remedy}`,
  );
}
