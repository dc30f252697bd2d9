import { AppError } from "../errors";
import { findNonFinite } from "./tensors";
import type { RawTensor } from "./session-pool";

// What the inference engine answers when it cannot give a model's outputs, beyond the plain
// AppError codes: an endpoint not ready (503), a deadline passed (504), outputs JSON cannot carry (422).

/** Seconds a client is told to wait before asking again for an endpoint that is loading. */
export const LOADING_RETRY_AFTER_SECONDS = 2;

/**
 * The endpoint exists but cannot answer yet (still loading, or its model failed to load): 503,
 * with Retry-After when waiting will help.
 */
export class EndpointUnavailableError extends AppError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number | null = null,
  ) {
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

export function refuseNonFinite(endpointName: string, output: string, tensor: RawTensor, canAskBinary: boolean) {
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
