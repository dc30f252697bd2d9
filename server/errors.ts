export const errorCodes = ["NOT_FOUND", "FORBIDDEN", "UNAUTHORIZED", "CONFLICT", "BAD_REQUEST", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE", "RATE_LIMITED", "INTERNAL"] as const;
export type ErrorCode = (typeof errorCodes)[number];

export const httpStatus: Record<ErrorCode, number> = {
  NOT_FOUND: 404,
  FORBIDDEN: 403,
  UNAUTHORIZED: 401,
  CONFLICT: 409,
  BAD_REQUEST: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  INTERNAL: 500,
};

/** The one error type services throw; transports map it to tRPC codes and HTTP statuses. */
export class AppError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AppError";
    this.code = code;
  }
  get status(): number {
    return httpStatus[this.code];
  }
}

export function isAppError(error: unknown): error is AppError {
  return error instanceof AppError;
}

/** Maps any error to an HTTP status and a message safe to show. */
export function toHttpError(error: unknown): { status: number; code: ErrorCode; message: string } {
  if (isAppError(error)) return { status: error.status, code: error.code, message: error.message };
  return { status: 500, code: "INTERNAL", message: "Something went wrong on the server; the details are in its log." };
}

export function errorResponse(error: unknown): Response {
  const { status, code, message } = toHttpError(error);
  if (status >= 500) console.error(error);
  return Response.json({ error: { code, message } }, { status });
}
