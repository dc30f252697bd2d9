import crypto from "node:crypto";
import { z } from "zod";
import { AppError } from "../errors";
import { openSecret } from "../security/secret-box";
import { safeFetch } from "../security/outbound";

// The earlier cloud training API, as a target kind: `POST /transactions/start` starts training
// and answers with a transaction id; `GET /transactions/{id}` answers TRAINING, COMPLETED or
// FAILED. The model directory it trains into is on a host reached over SSH, where Gantry puts
// the dataset and from where it brings the checkpoint home.
//
// Completion is judged as for every target: the API saying COMPLETED is believed only when
// checkpoints/last in the model directory is at the final step. A status stuck at TRAINING is
// the one case the folder decides alone: the final checkpoint has been there for a while and
// the API still says TRAINING. A checkpoint folder at any other step is never completion.

export interface ApiTarget {
  name: string;
  apiUrl: string | null;
  apiToken: string | null;
}

export interface StartBody {
  repo_id: string;
  dataset_root: string;
  policy_type: string;
  steps: number;
  save_freq: number;
  log_freq: number;
  output_dir: string;
  job_name: string;
  extra_args: string;
  resume: boolean;
  /** Gantry's name for this attempt, also sent as Idempotency-Key, so a repeated start can be recognised. */
  client_ref: string;
}

const startAnswer = z.union([
  z.object({ transaction_id: z.union([z.string().min(1), z.number()]) }).transform((a) => String(a.transaction_id)),
  z.object({ id: z.union([z.string().min(1), z.number()]) }).transform((a) => String(a.id)),
]);

const statusAnswer = z.object({
  status: z.string().trim().min(1),
  progress: z.number().finite().nullish(),
  message: z.string().nullish(),
  model_path: z.string().nullish(),
});

export interface TransactionState {
  status: string;
  progress: number | null;
  message: string | null;
  modelPath: string | null;
}

/** A refusal to start (a 4xx): starting again would not help. */
export class TransactionRefused extends AppError {
  constructor(message: string) {
    super("BAD_REQUEST", message);
  }
}

const TIMEOUT_MS = 30_000;

function request(target: ApiTarget, pathname: string, init: { method: "GET" | "POST"; body?: unknown; idempotencyKey?: string; signal?: AbortSignal }): Promise<Response> {
  if (!target.apiUrl) throw new AppError("CONFLICT", `${target.name} has no API address; edit the target`);
  const base = target.apiUrl.endsWith("/") ? target.apiUrl : `${target.apiUrl}/`;
  const headers: Record<string, string> = { accept: "application/json" };
  if (target.apiToken) headers.authorization = `Bearer ${openSecret(target.apiToken)}`;
  if (init.body !== undefined) headers["content-type"] = "application/json";
  if (init.idempotencyKey) headers["idempotency-key"] = init.idempotencyKey;
  const signal = init.signal ? AbortSignal.any([init.signal, AbortSignal.timeout(TIMEOUT_MS)]) : AbortSignal.timeout(TIMEOUT_MS);
  return safeFetch(new URL(pathname, base), { purpose: "training-host", method: init.method, headers, body: init.body === undefined ? undefined : JSON.stringify(init.body), signal });
}

async function said(response: Response): Promise<string> {
  const text = (await response.text().catch(() => "")).trim().slice(0, 500);
  return text ? `: ${text}` : "";
}

/** Starts a transaction and returns its id. */
export async function startTransaction(target: ApiTarget, body: StartBody, { signal }: { signal?: AbortSignal } = {}): Promise<string> {
  const response = await request(target, "transactions/start", { method: "POST", body, idempotencyKey: body.client_ref, signal });
  if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) {
    throw new TransactionRefused(`The transactions API of ${target.name} refused to start training (HTTP ${response.status})${await said(response)}`);
  }
  if (!response.ok) throw new AppError("INTERNAL", `The transactions API of ${target.name} failed to start training (HTTP ${response.status})${await said(response)}`);
  const parsed = startAnswer.safeParse(await response.json().catch(() => null));
  if (!parsed.success) throw new AppError("INTERNAL", `The transactions API of ${target.name} started training but named no transaction_id in its answer`);
  return parsed.data;
}

/** The transaction's state, or null when the API does not know it (404). */
export async function readTransaction(target: ApiTarget, transactionId: string, { signal }: { signal?: AbortSignal } = {}): Promise<TransactionState | null> {
  const response = await request(target, `transactions/${encodeURIComponent(transactionId)}`, { method: "GET", signal });
  if (response.status === 404) return null;
  if (!response.ok) throw new AppError("INTERNAL", `The transactions API of ${target.name} did not answer for transaction ${transactionId} (HTTP ${response.status})${await said(response)}`);
  const parsed = statusAnswer.safeParse(await response.json().catch(() => null));
  if (!parsed.success) throw new AppError("INTERNAL", `The transactions API of ${target.name} answered for transaction ${transactionId} without a status`);
  const a = parsed.data;
  return { status: a.status.toUpperCase(), progress: a.progress ?? null, message: a.message?.trim() || null, modelPath: a.model_path?.trim() || null };
}

export type TransactionJudgement =
  | { kind: "follow"; finalCheckpointSeenAt: Date | null }
  | { kind: "succeeded"; via: "api" | "folder"; note: string | null }
  | { kind: "failed"; reason: string };

/**
 * What to do after one look at the API and the model directory. `checkpointStep` is the step
 * of checkpoints/last in the model directory (null when there is none).
 */
export function judgeTransaction({ transactionId, state, checkpointStep, steps, modelDir, finalCheckpointSeenAt, now, stuckAfterMs }: { transactionId: string; state: TransactionState; checkpointStep: number | null; steps: number; modelDir: string; finalCheckpointSeenAt: Date | null; now: Date; stuckAfterMs: number }): TransactionJudgement {
  const isFinal = checkpointStep === steps;
  const folder = checkpointStep === null ? `${modelDir} has no checkpoints/last` : `checkpoints/last in ${modelDir} is at step ${checkpointStep} of ${steps}`;
  switch (state.status) {
    case "COMPLETED":
      if (isFinal) return { kind: "succeeded", via: "api", note: null };
      return { kind: "failed", reason: `The transactions API says transaction ${transactionId} COMPLETED, but ${folder}; it is not called complete` };
    case "FAILED":
      return { kind: "failed", reason: `The transactions API says transaction ${transactionId} FAILED${state.message ? `: ${state.message}` : ""}; ${folder}` };
    case "TRAINING": {
      if (!isFinal) return { kind: "follow", finalCheckpointSeenAt: null };
      const seen = finalCheckpointSeenAt ?? now;
      const waited = now.getTime() - seen.getTime();
      if (waited < stuckAfterMs) return { kind: "follow", finalCheckpointSeenAt: seen };
      return { kind: "succeeded", via: "folder", note: `The transactions API still says TRAINING ${Math.round(waited / 1000)} s after the final checkpoint (step ${steps}) appeared in ${modelDir}; completion is taken from the folder` };
    }
    default:
      // Any other status is shown as the API names it and never taken for an end.
      return { kind: "follow", finalCheckpointSeenAt };
  }
}

/**
 * What "Test target" says of the API: null when it answers (asking for a transaction that does
 * not exist, which any service can answer), else what is wrong in words.
 */
export async function probeTransactionsApi(target: ApiTarget): Promise<string | null> {
  try {
    const response = await request(target, `transactions/${crypto.randomUUID()}`, { method: "GET", signal: AbortSignal.timeout(10_000) });
    await response.body?.cancel().catch(() => {});
    if (response.status === 401 || response.status === 403) return `The transactions API at ${target.apiUrl} refused the token (HTTP ${response.status}); check the target's API token`;
    if (response.status >= 500) return `The transactions API at ${target.apiUrl} answers HTTP ${response.status}; it may be down`;
    return null;
  } catch (error) {
    return `The transactions API at ${target.apiUrl} does not answer: ${(error as Error).message}`;
  }
}
