// Calls to the collector's JSON API with the bearer token this tab was given, if any.

const KEY = "coldaisle.token";

// Raised when the API wants a token (401) or refuses this one (403).
export class NeedsToken extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The token kept for this tab (sessionStorage: gone when the tab closes), or null.
export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

// GET `path` (under /api/v1/) with `params`; resolves to the parsed JSON, or `fallback` when
// the route is absent (404) and a fallback was given. Other errors reject with the API's
// own message.
export async function get(path, params = {}, fallback = undefined) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") query.set(k, v);
  const url = "/api/v1/" + path + (query.toString() ? "?" + query : "");
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  const response = await fetch(url, { headers, cache: "no-store" });
  if (response.status === 401 || response.status === 403) {
    throw new NeedsToken(response.status, await message(response));
  }
  if (response.status === 404 && fallback !== undefined) return fallback;
  if (!response.ok) throw new Error(`${url}: ${response.status} ${await message(response)}`);
  return response.json();
}

async function message(response) {
  try {
    const body = await response.json();
    return body.error || response.statusText;
  } catch {
    return response.statusText;
  }
}

// An RFC 3339 time without milliseconds, as the API's period parameters take it.
export function rfc3339(ms) {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}
