// Reaching the server: the catalog (voices, formats), a WebSocket token when an API key is given,
// and the stream's WebSocket URL. The page is served by the server itself, so every URL is
// relative to the page's own origin.

export class ConnectionError extends Error {}

async function getJson(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: "application/json" } });
  } catch {
    throw new ConnectionError(`Cannot reach the server (${path}).`);
  }
  if (!response.ok) throw new ConnectionError(`${path} answered HTTP ${response.status}.`);
  return response.json();
}

export const fetchVoices = () => getJson("/v1/voices");
export const fetchFormats = () => getJson("/v1/formats");

// Browsers cannot set headers on a WebSocket handshake, so the key is traded for a short-lived,
// single-use token (POST /v1/tokens) that goes into the URL. The key itself never leaves memory
// except in this request's Authorization header.
export async function mintToken(apiKey) {
  let response;
  try {
    response = await fetch("/v1/tokens", {
      method: "POST",
      headers: { Authorization: `Bearer ${apiKey}`, Accept: "application/json" },
    });
  } catch {
    throw new ConnectionError("Cannot reach the server to get a stream token.");
  }
  if (response.status === 401 || response.status === 403) {
    throw new ConnectionError(`The API key was refused (HTTP ${response.status}).`);
  }
  if (response.status === 404 || response.status === 405) {
    throw new ConnectionError(
      "This server issues no stream tokens (it has no API keys configured): clear the API key field.",
    );
  }
  if (!response.ok) throw new ConnectionError(`Getting a stream token failed (HTTP ${response.status}).`);
  const body = await response.json();
  if (typeof body.token !== "string") throw new ConnectionError("The token answer has no token.");
  return body.token;
}

export function streamUrl(params, token) {
  const url = new URL("/v1/tts/stream", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, String(value));
  }
  if (token) url.searchParams.set("token", token);
  return url.toString();
}
