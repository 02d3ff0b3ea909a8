// The search state and its address-bar form: /?c=COLLECTION&q=TEXT&in=audio,vision&k=20&offset=0&item=ID

export const DEFAULT_K = 20;

/** Parse a location.search string into a search state. */
export function parseState(search) {
  const p = new URLSearchParams(search);
  const int = (name, fallback, min) => {
    const v = Number.parseInt(p.get(name) ?? "", 10);
    return Number.isFinite(v) && v >= min ? v : fallback;
  };
  const item = int("item", null, 1);
  return {
    c: p.get("c") ?? "",
    q: p.get("q") ?? "",
    in: (p.get("in") ?? "").split(",").map((s) => s.trim()).filter(Boolean),
    k: int("k", DEFAULT_K, 1),
    offset: int("offset", 0, 0),
    item,
    where: p.get("where") ?? "",
  };
}

/** The query string of a state, keys in the documented order (the `in` list keeps its commas). */
export function stateToSearch(state) {
  const parts = [];
  const add = (name, value) => parts.push(`${name}=${value}`);
  const enc = encodeURIComponent;
  add("c", enc(state.c));
  if (state.item == null && state.q) add("q", enc(state.q));
  if (state.in.length) add("in", state.in.map(enc).join(","));
  add("k", String(state.k));
  add("offset", String(state.offset));
  if (state.item != null) add("item", String(state.item));
  if (state.where) add("where", enc(state.where));
  return `?${parts.join("&")}`;
}

const OPS = { ">=": "gte", "<=": "lte", "!=": "ne", ">": "gt", "<": "lt", "=": "eq" };
const CLAUSE = /^\s*([A-Za-z_][\w.]*)\s*(>=|<=|!=|>|<|=)\s*([\s\S]*)$/;

function jsonOrText(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * The CLI's `--where` syntax (cli/common.py parse_where): `key=value`, `size>=100` or a JSON
 * object; several clauses separated by `;` or new lines. Returns null for an empty filter and
 * throws an Error naming the clause it cannot read.
 */
export function parseWhere(text) {
  const raw = (text ?? "").trim();
  if (!raw) return null;
  const clauses = raw.startsWith("{") ? [raw] : raw.split(/[;\n]/).map((s) => s.trim());
  const where = {};
  for (const clause of clauses) {
    if (!clause) continue;
    if (clause.startsWith("{")) {
      let obj;
      try {
        obj = JSON.parse(clause);
      } catch (e) {
        throw new Error(`Filter ${clause} is not valid JSON: ${e.message}`);
      }
      if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
        throw new Error(`Filter ${clause} must be a JSON object`);
      }
      Object.assign(where, obj);
      continue;
    }
    const m = CLAUSE.exec(clause);
    if (!m) throw new Error(`Cannot read filter "${clause}": use key=value, key>=number or a JSON object`);
    const [, key, op, rest] = m;
    const value = jsonOrText(rest.trim());
    if (typeof value === "string" && "<>=!".includes(value.charAt(0)) && value) {
      throw new Error(`Cannot read filter "${clause}": doubled operator`);
    }
    if (OPS[op] === "eq") {
      where[key] = value;
    } else {
      const existing = where[key];
      const cond = existing && typeof existing === "object" && !Array.isArray(existing) ? existing : {};
      cond[OPS[op]] = value;
      where[key] = cond;
    }
  }
  return Object.keys(where).length ? where : null;
}
