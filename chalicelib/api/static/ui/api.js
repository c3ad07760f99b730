// The REST API: every call carries the signed-in key; errors become ApiError with the API's
// own `detail` (a sentence, or a list of {loc, msg, type} for a 422).

const KEY_STORAGE = "nexus.apiKey";
const ADMIN_STORAGE = "nexus.isAdmin";

/** The API's base URL: the page is served at <base>/ui, the API at <base>/v1. */
export const API_BASE = (() => {
  const path = window.location.pathname.replace(/\/ui\/?$/, "").replace(/\/$/, "");
  return `${window.location.origin}${path}/v1`;
})();

// -- the session (this tab only) ------------------------------------------------------------

export const session = {
  get key() {
    return window.sessionStorage.getItem(KEY_STORAGE);
  },
  get isAdmin() {
    return window.sessionStorage.getItem(ADMIN_STORAGE) === "true";
  },
  start(key, isAdmin) {
    window.sessionStorage.setItem(KEY_STORAGE, key);
    window.sessionStorage.setItem(ADMIN_STORAGE, String(Boolean(isAdmin)));
  },
  end() {
    window.sessionStorage.removeItem(KEY_STORAGE);
    window.sessionStorage.removeItem(ADMIN_STORAGE);
  },
};

// -- errors ----------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, detail, { retryAfter = null } = {}) {
    super(describeDetail(detail));
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }

  /** The 422 problems, as [{field, msg, loc}] (field: the body field or query parameter). */
  get problems() {
    if (!Array.isArray(this.detail)) return [];
    return this.detail.map((problem) => {
      const loc = Array.isArray(problem.loc) ? problem.loc : [];
      const inner = loc[0] === "body" || loc[0] === "query" || loc[0] === "path" ? loc.slice(1) : loc;
      return { field: inner.length ? String(inner[0]) : null, path: inner, msg: problem.msg, loc };
    });
  }

  /** A heading for the error, by status. */
  get title() {
    switch (this.status) {
      case 0:
        return "The API could not be reached";
      case 401:
        return "Not signed in";
      case 403:
        return "Not allowed with this key";
      case 404:
        return "Not found";
      case 409:
        return "Changed meanwhile";
      case 422:
        return "Some values are not accepted";
      case 429:
        return "Too many requests";
      case 503:
        return "Temporarily unavailable";
      default:
        return this.status >= 500 ? "The server failed" : `Request refused (HTTP ${this.status})`;
    }
  }
}

function locText(loc) {
  if (!Array.isArray(loc)) return "";
  const inner = loc[0] === "body" || loc[0] === "query" || loc[0] === "path" ? loc.slice(1) : loc;
  return inner.map((part) => (typeof part === "number" ? `[${part}]` : part)).join(".").replace(/\.\[/g, "[");
}

/** The API's `detail` as text: a list of problems becomes "field: message; ...". */
export function describeDetail(detail) {
  if (detail === null || detail === undefined) return "No details were given.";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((p) => {
        const where = locText(p.loc);
        return where ? `${where}: ${p.msg}` : String(p.msg);
      })
      .join("; ");
  }
  return JSON.stringify(detail);
}

/** Lines for a notice: one per problem of a 422, else the detail. */
export function detailLines(error) {
  if (!(error instanceof ApiError)) return [String(error && error.message ? error.message : error)];
  if (Array.isArray(error.detail)) {
    return error.detail.map((p) => {
      const where = locText(p.loc);
      return where ? `${where}: ${p.msg}` : String(p.msg);
    });
  }
  const lines = [describeDetail(error.detail)];
  if (error.retryAfter) lines.push(`Try again in ${error.retryAfter} s.`);
  return lines;
}

// -- calls -------------------------------------------------------------------------------------

/**
 * One call. `path` is relative to the API base ("/jobs"); `query` an object (null/"" left
 * out). Resolves {data, headers, status}; rejects with ApiError (status 0: no answer).
 * A 401 also fires `nexus:unauthorized` on window, unless `key` was given explicitly (sign-in).
 */
export async function call(method, path, { query, body, signal, key } = {}) {
  const url = new URL(`${API_BASE}${path}`);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, String(value));
  }
  const usedKey = key ?? session.key;
  const headers = { Accept: "application/json" };
  if (usedKey) headers.Authorization = `Bearer ${usedKey}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
      credentials: "omit",
    });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, `No answer from ${API_BASE}: ${err && err.message ? err.message : err}. Is the server running?`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const detail = data && typeof data === "object" && "detail" in data
      ? data.detail
      : `HTTP ${response.status} ${response.statusText}`.trim();
    const error = new ApiError(response.status, detail, { retryAfter: response.headers.get("Retry-After") });
    if (response.status === 401 && key === undefined) {
      window.dispatchEvent(new CustomEvent("nexus:unauthorized", { detail: describeDetail(detail) }));
    }
    throw error;
  }
  return { data, headers: response.headers, status: response.status };
}

export const get = (path, options) => call("GET", path, options).then((r) => r.data);
export const post = (path, body, options) => call("POST", path, { ...options, body }).then((r) => r.data);
export const put = (path, body, options) => call("PUT", path, { ...options, body }).then((r) => r.data);
export const del = (path, options) => call("DELETE", path, options).then((r) => r.data);

/** A page of a list: {items, next} where `next` is the X-Next-Cursor header (or null). */
export async function page(path, query, options) {
  const result = await call("GET", path, { ...options, query });
  return { items: Array.isArray(result.data) ? result.data : [], next: result.headers.get("X-Next-Cursor") };
}
