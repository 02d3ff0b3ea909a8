// The public HTTP API (docs/api.md), with the API key from local storage as a bearer token.

const KEY_STORAGE = "embedstore.apiKey";

export class ApiError extends Error {
  constructor(status, body) {
    const detail = typeof body?.detail === "string" ? body.detail : JSON.stringify(body?.detail ?? body);
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.type = body?.type ?? "";
    this.field = body?.field ?? "";
  }
}

export function getKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) ?? "";
  } catch {
    return "";
  }
}

export function setKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

function headers(extra = {}) {
  const key = getKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function fail(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = { detail: response.statusText || `HTTP ${response.status}` };
  }
  return new ApiError(response.status, body);
}

async function call(path, init = {}) {
  const response = await fetch(path, { ...init, headers: headers(init.headers) });
  if (!response.ok) throw await fail(response);
  return response;
}

const collectionPath = (name) => `/v1/collections/${encodeURIComponent(name)}`;
const itemPath = (name, id) => `${collectionPath(name)}/items/${encodeURIComponent(id)}`;

export async function listCollections() {
  return (await call("/v1/collections")).json();
}

export async function getCollection(name) {
  return (await call(collectionPath(name))).json();
}

export async function getItem(name, id) {
  return (await call(itemPath(name, id))).json();
}

/** JSON search: `{text}` or `{item_id}` plus k, offset, modalities, where. */
export async function search(name, body, signal) {
  const response = await call(`${collectionPath(name)}/search`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  return response.json();
}

/** Multipart search with a file of any modality. */
export async function searchFile(name, file, fields, signal) {
  const form = new FormData();
  form.append("file", file, file.name || "upload");
  for (const [key, value] of Object.entries(fields)) {
    if (value !== null && value !== undefined && value !== "") form.append(key, String(value));
  }
  const response = await call(`${collectionPath(name)}/search`, { method: "POST", body: form, signal });
  return response.json();
}

/** An item's thumbnail or media as a blob: URL (fetched with the key, so keys work for media too). */
export async function blobUrl(name, id, what) {
  const response = await call(`${itemPath(name, id)}/${what}`);
  return URL.createObjectURL(await response.blob());
}

/** An item's media as bytes (text snippets, .npy maps). */
export async function mediaBytes(name, id) {
  const response = await call(`${itemPath(name, id)}/media`);
  return response.arrayBuffer();
}
