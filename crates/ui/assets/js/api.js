// The API client: the session's credentials live in this module's memory
// only (never in localStorage or a cookie), so a reload asks to sign in again
// and no other page or script can read them.

import { parseExact, plain } from "./canonical.js";

let session = null;
let refreshing = null;
const listeners = new Set();

/** An error the API answered with: status, code, message and where. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code ? body.code : "http_error";
    this.where = body && body.where ? body.where : null;
  }
}

/** Called with the new session (or null) whenever it changes. */
export function onSessionChange(listener) {
  listeners.add(listener);
}

function setSession(next) {
  session = next;
  for (const listener of listeners) listener(session);
}

/** The current session: {kind, me} or null. */
export function current() {
  return session;
}

/** Signs in with a username and password. */
export async function login(username, password) {
  const tokens = await send("POST", "/v1/auth/login", { body: { username, password }, auth: false });
  const next = fromTokens(tokens);
  next.me = await send("GET", "/v1/auth/me", { token: next.token });
  setSession(next);
  return next;
}

/** Uses a pasted API key for this tab's life. */
export async function useKey(key) {
  const me = await send("GET", "/v1/auth/me", { token: key });
  setSession({ kind: "key", token: key, me });
}

/** Ends the session (on the server too, for a user's session). */
export async function logout() {
  let bearer = null;
  if (session && session.kind === "user") {
    try {
      // A fresh access token, so an expired one does not leave the server's session open.
      bearer = await token();
    } catch {
      bearer = null;
    }
  }
  setSession(null);
  if (bearer) {
    try {
      await send("POST", "/v1/auth/logout", { token: bearer });
    } catch {
      // The session ends here whatever the server says.
    }
  }
}

function fromTokens(tokens) {
  return {
    kind: "user",
    token: tokens.access_token,
    refreshToken: tokens.refresh_token,
    expiresAt: Date.now() + tokens.expires_in * 1000,
  };
}

/** Whether the caller holds a permission (`audit:read`, `tenant:manage`…). */
export function can(permission) {
  return Boolean(session && session.me.permissions.includes(permission));
}

async function refresh() {
  if (!session || session.kind !== "user") return;
  if (!refreshing) {
    const was = session;
    refreshing = send("POST", "/v1/auth/refresh", { body: { refresh_token: was.refreshToken }, auth: false })
      .then((tokens) => {
        if (session === was) Object.assign(session, fromTokens(tokens));
      })
      .catch((error) => {
        // A refused refresh token ends the session; a network error or a busy server does not.
        if (session === was && (error.status === 401 || error.status === 400)) setSession(null);
        throw error;
      })
      .finally(() => {
        refreshing = null;
      });
  }
  await refreshing;
}

/** The access token to send now, refreshed a minute before it expires. */
export async function token() {
  if (session && session.kind === "user" && session.expiresAt - Date.now() < 60000) await refresh();
  if (!session) throw new ApiError(401, { code: "signed_out", message: "signed out" });
  return session.token;
}

/**
 * Calls the API as the signed-in caller and returns the JSON answer
 * (`{raw: true}`: the Response; `{exact: true}`: numbers kept exact). Throws
 * ApiError for an error answer.
 */
export async function api(method, path, options = {}) {
  const first = await token();
  try {
    return await send(method, path, { ...options, token: first });
  } catch (error) {
    // An access token that expired early (a suspended laptop): refresh once.
    if (error.status === 401 && error.code === "token_expired" && session && session.kind === "user") {
      await refresh();
      return send(method, path, { ...options, token: session.token });
    }
    if (error.status === 401 && session) setSession(null);
    throw error;
  }
}

/** `path` with its query parameters, leaving out empty ones. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(name, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

async function send(method, path, { body, token: bearer, raw, exact, signal, query } = {}) {
  const headers = {};
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(withQuery(path, query), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    credentials: "omit",
    cache: "no-store",
  });
  if (!response.ok) {
    let answer = null;
    try {
      answer = await response.json();
    } catch {
      answer = null;
    }
    throw new ApiError(response.status, answer);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  // Events keep integers past 2^53 exactly (JSON.parse would round them).
  if (exact) return plain(parseExact(await response.text()));
  return response.json();
}
