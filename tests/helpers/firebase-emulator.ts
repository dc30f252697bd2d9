import crypto from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

// A real HTTP peer on 127.0.0.1 speaking the part of the Firebase Auth emulator's protocol that
// firebase-admin (verifyIdToken with checkRevoked) and the Firebase JS SDK (email sign-in,
// getIdToken, token refresh) use. It follows the emulator in firebase-tools: URLs are the
// production ones with the host folded into the path, ID tokens are unsigned JWTs (alg "none")
// with the production claim set, errors are Google API errors whose message is the
// Identity Toolkit code, any non-empty ?key= is accepted, and "Bearer owner" is the admin.

const TOKEN_LIFETIME_S = 3600;
const PROJECT_NUMBER = "12345"; // what the emulator answers in project_id on a token refresh
const MAX_BODY_BYTES = 1024 * 1024;

interface EmulatorUser {
  uid: string;
  email: string;
  password: string;
  emailVerified: boolean;
  disabled: boolean;
  displayName?: string;
  createdAtMs: number;
  lastLoginAtMs?: number;
  validSinceS: number; // tokens issued before this second are revoked
}

export interface FirebaseEmulator {
  /** host:port, the value for FIREBASE_AUTH_EMULATOR_HOST. */
  host: string;
  addUser(input: { email: string; password: string; emailVerified?: boolean; disabled?: boolean; displayName?: string }): { uid: string };
  /** An ID token as the emulator would issue it; `overrides` replace claims (undefined removes one). */
  mintIdToken(uid: string, overrides?: Record<string, unknown>): string;
  disableUser(uid: string): void;
  stop(): Promise<void>;
}

class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly statusText?: string) {
    super(message);
  }
}

const nowS = () => Math.floor(Date.now() / 1000);
const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const randomId = (length: number) => Array.from(crypto.randomBytes(length), (b) => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"[b % 62]).join("");
const isEmail = (v: unknown): v is string => typeof v === "string" && /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(v);
const check: (condition: unknown, code: string) => asserts condition = (condition, code) => {
  if (!condition) throw new ApiError(400, code);
};

export async function startFirebaseEmulator({ projectId, port = 0 }: { projectId: string; port?: number }): Promise<FirebaseEmulator> {
  const users = new Map<string, EmulatorUser>();
  const refreshTokens = new Map<string, { uid: string; provider: string }>();

  function idTokenClaims(user: EmulatorUser, provider: string): Record<string, unknown> {
    const iat = nowS();
    return {
      name: user.displayName,
      email: user.email,
      email_verified: user.emailVerified,
      auth_time: Math.floor((user.lastLoginAtMs ?? Date.now()) / 1000),
      user_id: user.uid,
      firebase: { identities: { email: [user.email] }, sign_in_provider: provider },
      iat,
      exp: iat + TOKEN_LIFETIME_S,
      aud: projectId,
      iss: `https://securetoken.google.com/${projectId}`,
      sub: user.uid,
    };
  }

  const unsignedJwt = (claims: Record<string, unknown>) => `${base64url({ alg: "none", typ: "JWT" })}.${base64url(claims)}.`;

  function issueTokens(user: EmulatorUser, provider: string) {
    const refreshToken = randomId(64);
    refreshTokens.set(refreshToken, { uid: user.uid, provider });
    return { idToken: unsignedJwt(idTokenClaims(user, provider)), refreshToken, expiresIn: String(TOKEN_LIFETIME_S) };
  }

  // The emulator reads ID tokens without checking them (exp included), but honours revocation and disabling.
  function userFromIdToken(idToken: unknown): EmulatorUser {
    check(typeof idToken === "string" && idToken.length > 0, "MISSING_ID_TOKEN");
    let claims: { user_id?: unknown; iat?: unknown };
    try {
      claims = JSON.parse(Buffer.from(idToken.split(".")[1] ?? "", "base64url").toString("utf8"));
    } catch {
      throw new ApiError(400, "INVALID_ID_TOKEN");
    }
    const user = typeof claims.user_id === "string" ? users.get(claims.user_id) : undefined;
    check(user, "USER_NOT_FOUND");
    check(Number(claims.iat) >= user.validSinceS, "TOKEN_EXPIRED");
    check(!user.disabled, "USER_DISABLED");
    return user;
  }

  // The account record as accounts:lookup returns it (production redacts the hash the same way).
  const accountInfo = (u: EmulatorUser) => ({
    localId: u.uid,
    email: u.email,
    emailVerified: u.emailVerified,
    displayName: u.displayName,
    passwordHash: "UkVEQUNURUQ=",
    providerUserInfo: [{ providerId: "password", email: u.email, federatedId: u.email, rawId: u.email, displayName: u.displayName }],
    validSince: String(u.validSinceS),
    disabled: u.disabled,
    createdAt: String(u.createdAtMs),
    lastLoginAt: u.lastLoginAtMs === undefined ? undefined : String(u.lastLoginAtMs),
  });
  const lookupResponse = (found: EmulatorUser[]) => ({ kind: "identitytoolkit#GetAccountInfoResponse", users: found.length ? found.map(accountInfo) : undefined });

  function signInWithPassword(body: Record<string, unknown>) {
    check(body.email !== undefined, "MISSING_EMAIL");
    check(isEmail(body.email), "INVALID_EMAIL");
    check(typeof body.password === "string" && body.password, "MISSING_PASSWORD");
    const email = body.email.toLowerCase();
    const user = [...users.values()].find((u) => u.email === email);
    check(user, "EMAIL_NOT_FOUND");
    check(!user.disabled, "USER_DISABLED");
    check(user.password === body.password, "INVALID_PASSWORD");
    user.lastLoginAtMs = Date.now();
    return { kind: "identitytoolkit#VerifyPasswordResponse", registered: true, localId: user.uid, email, ...issueTokens(user, "password") };
  }

  function refreshIdToken(body: Record<string, unknown>) {
    const grantType = body.grant_type ?? body.grantType;
    const refreshToken = body.refresh_token ?? body.refreshToken;
    check(grantType, "MISSING_GRANT_TYPE");
    check(grantType === "refresh_token", "INVALID_GRANT_TYPE");
    check(typeof refreshToken === "string" && refreshToken, "MISSING_REFRESH_TOKEN");
    const record = refreshTokens.get(refreshToken);
    const user = record && users.get(record.uid);
    check(record && user, "INVALID_REFRESH_TOKEN");
    check(!user.disabled, "USER_DISABLED");
    const tokens = issueTokens(user, record.provider);
    return { id_token: tokens.idToken, access_token: tokens.idToken, expires_in: tokens.expiresIn, refresh_token: tokens.refreshToken, token_type: "Bearer", user_id: user.uid, project_id: PROJECT_NUMBER };
  }

  // Client calls carry ?key=<API key>; the admin SDK calls the project path with "Bearer owner".
  const clientCalls: Record<string, (body: Record<string, unknown>) => unknown> = {
    "/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword": signInWithPassword,
    "/identitytoolkit.googleapis.com/v1/accounts:lookup": (body) => lookupResponse([userFromIdToken(body.idToken)]),
    "/securetoken.googleapis.com/v1/token": refreshIdToken,
  };

  function adminLookup(pathProjectId: string, body: Record<string, unknown>) {
    if (pathProjectId !== projectId) return lookupResponse([]); // the emulator holds no users for another project
    const list = (v: unknown) => (Array.isArray(v) ? v.map(String) : []);
    const uids = list(body.localId);
    const emails = list(body.email).map((e) => e.toLowerCase());
    return lookupResponse([...users.values()].filter((u) => uids.includes(u.uid) || emails.includes(u.email)));
  }

  function route(req: http.IncomingMessage, url: URL, body: Record<string, unknown>): unknown {
    if (req.method === "GET" && url.pathname === "/") return { authEmulator: { ready: true } };
    if (req.method !== "POST") throw new ApiError(404, "Not Found", "NOT_FOUND");
    const adminPath = /^\/identitytoolkit\.googleapis\.com\/v1\/projects\/([^/]+)\/accounts:lookup$/.exec(url.pathname);
    if (adminPath && /^bearer (owner|ya29\.)/i.test(req.headers.authorization ?? "")) return adminLookup(adminPath[1], body);
    const call = adminPath ? clientCalls["/identitytoolkit.googleapis.com/v1/accounts:lookup"] : clientCalls[url.pathname];
    if (!call) throw new ApiError(404, "Not Found", "NOT_FOUND");
    if (!url.searchParams.get("key")) throw new ApiError(403, "The request is missing a valid API key.", "PERMISSION_DENIED");
    return call(body);
  }

  async function readBody(req: http.IncomingMessage): Promise<Record<string, unknown>> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) throw new ApiError(413, "Request body is too large.", "INVALID_ARGUMENT");
      chunks.push(chunk);
    }
    const text = Buffer.concat(chunks).toString("utf8");
    if (!text) return {};
    if ((req.headers["content-type"] ?? "").includes("application/x-www-form-urlencoded")) return Object.fromEntries(new URLSearchParams(text));
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
    } catch {
      // answered below
    }
    throw new ApiError(400, `Invalid JSON payload received. ${text.slice(0, 80)}`, "INVALID_ARGUMENT");
  }

  // CORS as the emulator does it: every origin and every requested header reflected.
  function setCors(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.headers.origin) {
      res.setHeader("Access-Control-Allow-Origin", req.headers.origin);
      res.setHeader("Vary", "Origin");
    }
    if (req.headers["access-control-request-private-network"]) res.setHeader("Access-Control-Allow-Private-Network", "true");
  }

  const server = http.createServer((req, res) => {
    setCors(req, res);
    if (req.method === "OPTIONS") {
      res.setHeader("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE");
      const requested = req.headers["access-control-request-headers"];
      if (requested) res.setHeader("Access-Control-Allow-Headers", requested);
      res.writeHead(204, { "Content-Length": "0" }).end();
      return;
    }
    const url = new URL(req.url ?? "/", "http://emulator");
    readBody(req)
      .then((body) => ({ status: 200, payload: route(req, url, body) }))
      .catch((error: unknown) => {
        const e = error instanceof ApiError ? error : new ApiError(500, String(error), "INTERNAL");
        return { status: e.status, payload: { error: { code: e.status, message: e.message, errors: [{ message: e.message, reason: "invalid", domain: "global" }], status: e.statusText } } };
      })
      .then(({ status, payload }) => res.writeHead(status, { "Content-Type": "application/json; charset=utf-8" }).end(JSON.stringify(payload)));
  });
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(port, "127.0.0.1", resolve));

  const userOrThrow = (uid: string) => {
    const user = users.get(uid);
    if (!user) throw new Error(`The Firebase emulator has no user ${uid}; create it with addUser first`);
    return user;
  };

  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    addUser({ email, password, emailVerified = false, disabled = false, displayName }) {
      if (!isEmail(email)) throw new Error(`Not an email address: ${email}`);
      const lower = email.toLowerCase();
      if ([...users.values()].some((u) => u.email === lower)) throw new Error(`The Firebase emulator already has a user ${lower}`);
      const uid = randomId(28);
      users.set(uid, { uid, email: lower, password, emailVerified, disabled, displayName, createdAtMs: Date.now(), validSinceS: nowS() });
      return { uid };
    },
    mintIdToken: (uid, overrides = {}) => unsignedJwt({ ...idTokenClaims(userOrThrow(uid), "password"), ...overrides }),
    disableUser(uid) {
      userOrThrow(uid).disabled = true;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
