// The convo API over fetch: JSON in and out, the session key as a header, and two errors the
// page reacts to everywhere: Unauthorized (ask for the key) and Unreachable (say so, retry).

const KEY_NAME = "convo.sessionKey";

export class Unauthorized extends Error {
  constructor() {
    super("The server refused the session key");
  }
}

export class Unreachable extends Error {
  constructor(cause) {
    super("The convo server cannot be reached");
    this.cause = cause;
  }
}

export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.body = body;
  }
}

function describe(status, body) {
  if (body && typeof body === "object") {
    if (typeof body.message === "string" && body.message) return body.message;
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) {
      return body.detail.map((d) => d && d.msg).filter(Boolean).join("; ") || `HTTP ${status}`;
    }
  }
  return `The server answered HTTP ${status}`;
}

export function sessionKey() {
  try {
    return window.localStorage.getItem(KEY_NAME);
  } catch {
    return null; // storage disabled: the key lives as long as the page
  }
}

export function setSessionKey(value) {
  try {
    if (value) window.localStorage.setItem(KEY_NAME, value);
    else window.localStorage.removeItem(KEY_NAME);
  } catch {
    // storage disabled
  }
}

// Headers for a request: the key goes in X-Session-API-Key, never in a URL (URLs get logged).
export function requestHeaders(extra = {}) {
  const headers = { ...extra };
  const key = sessionKey();
  if (key) headers["X-Session-API-Key"] = key;
  return headers;
}

const reachability = new Set();

// fn(true | false) is called whenever a request reaches the server or fails to.
export function onReachability(fn) {
  reachability.add(fn);
}

export function reportReachable(reachable) {
  for (const fn of reachability) fn(reachable);
}

export async function api(method, path, body) {
  const init = { method, headers: requestHeaders(), cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    reportReachable(false);
    throw new Unreachable(err);
  }
  reportReachable(true);
  if (response.status === 401) throw new Unauthorized();
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// What the page needs to know before its first /api call: whether a key is required.
export async function serverInfo() {
  return api("GET", "/web/server.json");
}
