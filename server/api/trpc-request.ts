import { env } from "../env";
import { AppError, isAppError } from "../errors";
import { formatBytes } from "../storage/blob-store";
import { checkCrossSite, mediaType } from "./cross-site";
import { bodyTooLarge, declaredLength, parseJsonText, readBodyText } from "./json-body";
import { toTRPCError, type Context } from "./trpc";

/** Signing up, reading the sign-in methods or an invite: what anyone may send needs far less. */
export const ANONYMOUS_MAX_BODY_BYTES = 64 * 1024;

const asTrpcError = (error: unknown) => (isAppError(error) ? toTRPCError(error) : error);

/**
 * A request to the tRPC endpoint, checked before tRPC reads its body: tRPC would also take
 * forms and raw bytes, which no procedure here uses, so a POST must be JSON; a POST signed in
 * by the session cookie must come from the portal's own pages; the body is refused by its
 * declared length before anything is read (anonymous callers get ANONYMOUS_MAX_BODY_BYTES,
 * signed-in ones API_MAX_BODY_BYTES), cut off past it while reading, and refused when nested
 * too deep to parse safely. tRPC reads the body with `json()`, after the context is made.
 */
export class CheckedTrpcRequest extends Request {
  private maxBytes = env().API_MAX_BODY_BYTES;

  constructor(source: Request) {
    const hasBody = source.method !== "GET" && source.method !== "HEAD";
    super(source.url, { method: source.method, headers: source.headers, signal: source.signal, ...(hasBody ? { body: source.body, duplex: "half" } : {}) } as RequestInit);
  }

  /** Checks what can be checked without reading the body; call it from createContext with the caller's identity. */
  admit(context: Context): Context {
    try {
      if (this.method === "POST" && mediaType(this.headers) !== "application/json") {
        throw new AppError("UNSUPPORTED_MEDIA_TYPE", "The tRPC endpoint takes JSON only (Content-Type: application/json)");
      }
      checkCrossSite(this);
      if (!context.actor) this.maxBytes = Math.min(this.maxBytes, ANONYMOUS_MAX_BODY_BYTES);
      if ((declaredLength(this.headers) ?? 0) > this.maxBytes) {
        throw context.actor ? bodyTooLarge(this.maxBytes) : new AppError("PAYLOAD_TOO_LARGE", `Without a session or an API token a request may send at most ${formatBytes(ANONYMOUS_MAX_BODY_BYTES)}; sign in first`);
      }
      // A query's input rides in the URL, which tRPC parses later.
      const input = new URL(this.url).searchParams.get("input");
      if (input) parseJsonText(input, "The input in the URL");
    } catch (error) {
      throw asTrpcError(error);
    }
    return context;
  }

  override async json(): Promise<unknown> {
    try {
      return parseJsonText(await readBodyText(this, this.maxBytes));
    } catch (error) {
      throw asTrpcError(error);
    }
  }
}
