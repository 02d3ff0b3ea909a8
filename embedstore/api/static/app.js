// The search page: form and address bar <-> search state, queries by text, item, file or microphone.

import * as api from "./api.js";
import { el, fillDetail, hitCard, hitName, holdMedia, releaseMedia, startMedia } from "./render.js";
import { DEFAULT_K, parseState, parseWhere, stateToSearch } from "./state.js";

const MODALITIES = ["vision", "video", "audio", "text", "depth", "thermal", "imu"];
const COLLECTION_STORAGE = "embedstore.collection";
const RECORD_SECONDS = 4;
const SUPPORTED =
  "Supported files: images (PNG, JPEG, GIF, BMP, WebP, TIFF), audio (WAV, FLAC, Ogg/Opus, MP3, M4A, WebM), " +
  "video (MP4, MOV, WebM, MKV, AVI), .npy arrays (depth, thermal or IMU; choose which) and UTF-8 text.";

const $ = (id) => document.getElementById(id);
const ui = {
  form: $("search-form"), collection: $("collection"), q: $("q"), chips: $("chips"), k: $("k"),
  where: $("where"), advanced: $("advanced"), file: $("file"), pickFile: $("pick-file"),
  fileModality: $("file-modality"), record: $("record"), status: $("status"), error: $("error"),
  results: $("results"), pager: $("pager"), prev: $("prev"), next: $("next"), pageInfo: $("page-info"),
  keyPanel: $("key-panel"), keyForm: $("key-form"), keyInput: $("api-key"), keyMessage: $("key-message"),
  detail: $("detail"), overlay: $("drop-overlay"),
};

let state = parseState(location.search);
const itemNames = new Map(); // id -> name, for "items like NAME"
let lastStatus = null;
let inFlight = null;
let searches = 0;
let detailHit = null;
// Files cannot live in the address bar: file searches are kept here, keyed from history.state.
const fileQueries = new Map();
let fileCounter = 0;

function setBusy(value) {
  document.body.dataset.searchState = value;
  ui.results.setAttribute("aria-busy", value === "loading" ? "true" : "false");
}

function showError(message, extra) {
  ui.error.replaceChildren(el("p", { text: message }), extra ? el("p", { class: "hint", text: extra }) : null);
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.error.replaceChildren();
}

function say(text) {
  ui.status.textContent = text;
}

// -- collections and modality chips -------------------------------------------------------------
function rememberedCollection() {
  try {
    return localStorage.getItem(COLLECTION_STORAGE) ?? "";
  } catch {
    return "";
  }
}

async function loadCollections() {
  const collections = await api.listCollections();
  ui.collection.replaceChildren(
    ...collections.map((c) => el("option", { value: c.name, text: `${c.name} (${c.items})` })),
  );
  const wanted = state.c || rememberedCollection();
  if (wanted && !collections.some((c) => c.name === wanted)) {
    ui.collection.append(el("option", { value: wanted, text: `${wanted} (missing)` }));
  }
  ui.collection.value = wanted || collections[0]?.name || "";
  state.c = ui.collection.value;
  return collections;
}

async function loadChips() {
  let present = [];
  try {
    const info = await api.getCollection(state.c);
    present = Object.entries(info.by_modality ?? {})
      .filter(([, n]) => n > 0)
      .map(([m]) => m);
  } catch (e) {
    if (!(e instanceof api.ApiError) || e.status !== 404) throw e;
  }
  const shown = MODALITIES.filter((m) => present.includes(m) || state.in.includes(m));
  for (const m of present) if (!shown.includes(m)) shown.push(m);
  ui.chips.replaceChildren(el("legend", { text: "Show" }));
  for (const m of shown) {
    const id = `chip-${m}`;
    const box = el("input", { type: "checkbox", id, value: m, checked: state.in.includes(m) });
    box.addEventListener("change", () => rerun({ in: checkedModalities(), offset: 0 }));
    ui.chips.append(el("span", { class: "chip" }, box, el("label", { for: id, text: m })));
  }
  ui.chips.hidden = shown.length === 0;
}

function checkedModalities() {
  return [...ui.chips.querySelectorAll("input:checked")].map((b) => b.value);
}

// -- state <-> form and address bar ----------------------------------------------------------------
function readForm() {
  const k = Number.parseInt(ui.k.value, 10);
  return {
    c: ui.collection.value,
    q: ui.q.value.trim(),
    in: checkedModalities(),
    k: Number.isFinite(k) && k >= 1 ? k : DEFAULT_K,
    offset: 0,
    item: null,
    where: ui.where.value.trim(),
  };
}

function writeForm(s) {
  if (s.c && ui.collection.value !== s.c) ui.collection.value = s.c;
  ui.q.value = s.item == null ? s.q : "";
  ui.k.value = String(s.k);
  ui.where.value = s.where;
  if (s.where) ui.advanced.open = true;
  for (const box of ui.chips.querySelectorAll("input")) box.checked = s.in.includes(box.value);
}

function hasQuery(s, fileKey) {
  return Boolean(s.q) || s.item != null || (fileKey != null && fileQueries.has(fileKey));
}

// -- running a search ------------------------------------------------------------------------------
function currentFileKey() {
  return history.state?.file ?? null;
}

/** Go to a new state: record it in the history (unless replaying one), then search. */
async function go(next, { push = true, fileKey = null } = {}) {
  state = next;
  writeForm(state);
  const url = `${location.pathname}${stateToSearch(state)}`;
  const entry = fileKey != null ? { file: fileKey } : {};
  if (push) history.pushState(entry, "", url);
  else history.replaceState(entry, "", url);
  await run(fileKey);
}

function rerun(changes) {
  const fileKey = currentFileKey();
  const next = { ...state, ...changes };
  if (!hasQuery(next, fileKey)) {
    state = next;
    history.replaceState(history.state, "", `${location.pathname}${stateToSearch(state)}`);
    return;
  }
  go(next, { fileKey });
}

async function run(fileKey) {
  clearError();
  ui.keyPanel.hidden = true;
  if (!state.c) {
    say("No collection yet.");
    setBusy("done");
    return;
  }
  let where;
  try {
    where = parseWhere(state.where);
  } catch (e) {
    ui.advanced.open = true;
    showError(e.message);
    ui.where.focus();
    setBusy("error");
    return;
  }
  const fileQuery = fileKey != null ? fileQueries.get(fileKey) : null;
  if (!state.q && state.item == null && !fileQuery) {
    if (fileKey != null) say("That search used a file, which is not kept across page loads: choose it again.");
    setBusy("done");
    return;
  }
  if (state.item != null && !itemNames.has(state.item)) {
    const item = state.item; // opened from an address: look its name up alongside the search
    api.getItem(state.c, item).then(
      (info) => {
        itemNames.set(item, hitName(info));
        if (lastStatus) say(lastStatus()); // the name came after the results
      },
      () => {},
    );
  }
  const options = { k: state.k, offset: state.offset };
  if (state.in.length) options.modalities = state.in;
  if (inFlight) inFlight.abort();
  const controller = new AbortController();
  inFlight = controller;
  setBusy("loading");
  lastStatus = null;
  say("Searching…");
  performance.clearMarks();
  performance.clearMeasures();
  performance.mark("embedstore:submit");
  let answer;
  try {
    if (fileQuery) {
      answer = await api.searchFile(
        state.c,
        fileQuery.file,
        {
          modality: fileQuery.modality,
          k: state.k,
          offset: state.offset,
          modalities: state.in.join(","),
          where: where ? JSON.stringify(where) : "",
        },
        controller.signal,
      );
    } else {
      const body = state.item != null ? { item_id: state.item } : { text: state.q };
      if (where) options.where = where;
      answer = await api.search(state.c, { ...body, ...options }, controller.signal);
    }
  } catch (e) {
    if (e.name === "AbortError") return;
    setBusy("error");
    renderFailure(e, fileQuery);
    return;
  } finally {
    if (inFlight === controller) inFlight = null;
  }
  performance.mark("embedstore:response");
  render(answer, fileQuery);
}

function describeQuery(fileQuery) {
  if (fileQuery) return `the file ${fileQuery.file.name}`;
  if (state.item != null) return `items like ${itemNames.get(state.item) ?? `item ${state.item}`}`;
  return `“${state.q}”`;
}

function render(answer, fileQuery) {
  releaseMedia();
  const hits = answer.results;
  const handlers = { open: openDetail, similar: moreLikeThis };
  holdMedia(); // cards first: thumbnails and snippets are requested once they are painted
  ui.results.replaceChildren(...hits.map((hit, i) => hitCard(state.c, hit, state.offset + i, handlers)));
  for (const hit of hits) itemNames.set(hit.id, hitName(hit));
  performance.mark("embedstore:built");
  ui.results.dataset.tookMs = String(answer.took_ms);
  const first = state.offset + 1;
  const last = state.offset + hits.length;
  const page = Math.floor(state.offset / state.k) + 1;
  ui.pager.hidden = hits.length === 0 && state.offset === 0;
  ui.prev.disabled = state.offset === 0;
  ui.next.disabled = hits.length < state.k;
  ui.pageInfo.textContent = hits.length ? `Page ${page} · results ${first}–${last}` : `Page ${page}`;
  requestAnimationFrame(() => {
    setTimeout(() => {
      // Runs right after the frame that shows the results has been painted.
      performance.mark("embedstore:painted");
      startMedia();
      const total = performance.measure("embedstore:search", "embedstore:submit", "embedstore:painted");
      performance.measure("embedstore:request", "embedstore:submit", "embedstore:response");
      performance.measure("embedstore:render", "embedstore:response", "embedstore:painted");
      performance.measure("embedstore:build", "embedstore:response", "embedstore:built");
      const status = () => {
        const what = describeQuery(fileQuery);
        if (hits.length) {
          const ms = Math.round(total.duration);
          return `${hits.length} results for ${what} in ${ms} ms (server ${answer.took_ms.toFixed(1)} ms).`;
        }
        if (state.offset > 0) return `No more results for ${what}.`;
        return `No results for ${what}. Try other words, another file, or fewer filters.`;
      };
      lastStatus = status;
      say(status());
      searches += 1;
      ui.results.dataset.searches = String(searches);
      setBusy("done");
    }, 0);
  });
}

function renderFailure(e, fileQuery) {
  releaseMedia();
  ui.results.replaceChildren();
  ui.pager.hidden = true;
  say("");
  if (!(e instanceof api.ApiError)) {
    showError(`Cannot reach the embedstore server (${e.message}). Is \`embedstore serve\` running?`);
    return;
  }
  if (e.status === 401) {
    askForKey(e.message);
  } else if (e.status === 404 && e.type === "CollectionNotFound") {
    showError(
      `Collection “${state.c}” does not exist.`,
      `Create it from the command line by indexing a folder: embedstore index ~/Pictures -c ${state.c}`,
    );
  } else if (e.status === 415) {
    showError(e.message, SUPPORTED);
  } else if (fileQuery && e.field === "modality") {
    showError(e.message);
    ui.fileModality.focus();
  } else {
    showError(e.message);
    if (e.field === "where") {
      ui.advanced.open = true;
      ui.where.focus();
    }
  }
}

function askForKey(message) {
  const hadKey = Boolean(api.getKey());
  ui.keyMessage.textContent = hadKey
    ? `The saved API key was refused (${message}). Enter a valid key.`
    : `This server asks for an API key (${message}).`;
  ui.keyPanel.hidden = false;
  ui.keyInput.value = "";
  ui.keyInput.focus();
}

// -- queries ----------------------------------------------------------------------------------------
function submitText(event) {
  event.preventDefault();
  const next = readForm();
  if (!next.q) {
    say("Type something to search for, or search by a file.");
    ui.q.focus();
    return;
  }
  go(next);
}

function moreLikeThis(hit) {
  if (ui.detail.open) ui.detail.close();
  go({ ...readForm(), q: "", item: hit.id, offset: 0 });
}

function guessModality(file) {
  const chosen = ui.fileModality.value;
  if (chosen) return chosen;
  const name = file.name.toLowerCase();
  if (file.type.startsWith("audio/") || /\.(opus|ogg|oga|wav|flac|mp3|m4a)$/.test(name)) return "audio";
  return "";
}

function searchByFile(file, modality) {
  const chosen = modality ?? guessModality(file);
  if (!chosen && file.name.toLowerCase().endsWith(".npy")) {
    clearError();
    showError(`${file.name} is a .npy array: choose what it holds (depth map, thermal map or IMU) under “read as”.`);
    ui.fileModality.focus();
    return;
  }
  fileCounter += 1;
  const key = `f${fileCounter}`;
  fileQueries.set(key, { file, modality: chosen });
  go({ ...readForm(), q: "", item: null, offset: 0 }, { fileKey: key });
}

async function toggleRecording() {
  if (toggleRecording.recorder) {
    toggleRecording.recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    showError(`The microphone is not available (${e.message}).`);
    return;
  }
  const types = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm"];
  const mimeType = types.find((t) => MediaRecorder.isTypeSupported(t));
  const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : {});
  const chunks = [];
  recorder.addEventListener("dataavailable", (e) => {
    if (e.data.size) chunks.push(e.data);
  });
  recorder.addEventListener("stop", () => {
    for (const track of stream.getTracks()) track.stop();
    clearTimeout(toggleRecording.timer);
    toggleRecording.recorder = null;
    ui.record.setAttribute("aria-pressed", "false");
    ui.record.textContent = `Record ${RECORD_SECONDS} s from the microphone`;
    const type = recorder.mimeType || "audio/webm";
    const ext = type.includes("ogg") ? "ogg" : "webm";
    searchByFile(new File(chunks, `recording.${ext}`, { type }), "audio");
  });
  recorder.start();
  toggleRecording.recorder = recorder;
  toggleRecording.timer = setTimeout(() => recorder.state !== "inactive" && recorder.stop(), RECORD_SECONDS * 1000);
  ui.record.setAttribute("aria-pressed", "true");
  ui.record.textContent = "Stop recording";
  say(`Recording ${RECORD_SECONDS} s…`);
}

// -- detail view --------------------------------------------------------------------------------------
function openDetail(hit) {
  detailHit = hit;
  fillDetail(ui.detail, state.c, hit);
  $("copy-status").textContent = "";
  ui.detail.showModal();
  $("detail-close").focus();
}

async function copy(what, text) {
  try {
    await navigator.clipboard.writeText(text);
    $("copy-status").textContent = `Copied the ${what}.`;
  } catch (e) {
    $("copy-status").textContent = `Could not copy the ${what} (${e.message}).`;
  }
}

// -- wiring -------------------------------------------------------------------------------------------
function isTyping(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

function wire() {
  ui.form.addEventListener("submit", submitText);
  ui.collection.addEventListener("change", async () => {
    localStorage.setItem(COLLECTION_STORAGE, ui.collection.value);
    state = { ...state, c: ui.collection.value, in: [], offset: 0 };
    await loadChips();
    rerun({});
  });
  ui.k.addEventListener("change", () => rerun({ k: readForm().k, offset: 0 }));
  ui.prev.addEventListener("click", () => rerun({ offset: Math.max(0, state.offset - state.k) }));
  ui.next.addEventListener("click", () => rerun({ offset: state.offset + state.k }));
  ui.pickFile.addEventListener("click", () => ui.file.click());
  ui.file.addEventListener("change", () => {
    const [file] = ui.file.files;
    if (file) searchByFile(file);
    ui.file.value = "";
  });
  ui.record.addEventListener("click", toggleRecording);
  ui.keyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    api.setKey(ui.keyInput.value.trim());
    ui.keyPanel.hidden = true;
    await start();
  });
  $("detail-close").addEventListener("click", () => ui.detail.close());
  $("copy-id").addEventListener("click", () => copy("id", String(detailHit.id)));
  $("copy-uri").addEventListener("click", () => copy("URI", detailHit.uri));
  $("detail-similar").addEventListener("click", () => moreLikeThis(detailHit));
  ui.detail.addEventListener("close", () => releaseDetailMedia());
  document.addEventListener("keydown", (event) => {
    if (event.key === "/" && !event.ctrlKey && !event.metaKey && !event.altKey && !isTyping(event.target)) {
      event.preventDefault();
      ui.q.focus();
      ui.q.select();
    }
  });
  document.addEventListener("paste", (event) => {
    const image = [...(event.clipboardData?.files ?? [])].find((f) => f.type.startsWith("image/"));
    if (image) {
      event.preventDefault();
      searchByFile(image, "vision");
    }
  });
  const hasFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");
  window.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    ui.overlay.hidden = false;
  });
  window.addEventListener("dragleave", (event) => {
    if (event.relatedTarget === null) ui.overlay.hidden = true;
  });
  window.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    ui.overlay.hidden = true;
    const [file] = event.dataTransfer.files;
    if (file) searchByFile(file);
  });
  window.addEventListener("popstate", async () => {
    const next = parseState(location.search);
    const changed = next.c !== state.c;
    state = next;
    if (changed) await loadChips();
    writeForm(state);
    await run(currentFileKey());
  });
}

function releaseDetailMedia() {
  for (const media of ui.detail.querySelectorAll("audio, video")) media.pause();
}

/** Load collections (asking for a key if needed), then run the search in the address bar. */
async function start() {
  clearError();
  setBusy("loading");
  let collections;
  try {
    collections = await loadCollections();
    await loadChips();
  } catch (e) {
    setBusy("error");
    renderFailure(e, null);
    return;
  }
  writeForm(state);
  if (!collections.length && !state.c) {
    setBusy("done");
    showError(
      "This server has no collections yet.",
      "Create one from the command line by indexing a folder: embedstore index ~/Pictures -c photos, then reload this page.",
    );
    return;
  }
  const fileKey = currentFileKey();
  history.replaceState(history.state, "", `${location.pathname}${stateToSearch(state)}`);
  if (hasQuery(state, fileKey)) {
    await run(fileKey);
  } else {
    setBusy("done");
    say(`Type to search ${state.c}, or search by a file. Press / to jump to the search box.`);
  }
}

wire();
start();
