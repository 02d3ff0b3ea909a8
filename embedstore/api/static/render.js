// Result cards and the detail view. User and catalog text only ever goes in as textContent.

import * as api from "./api.js";
import { drawMap, drawSeries, parseNpy, parseVispBin } from "./npy.js";

const MAP_MODALITIES = new Set(["depth", "thermal"]);
const THUMBNAIL_MODALITIES = new Set(["vision", "depth", "thermal", "video"]);
const SNIPPET_CHARS = 240;
let liveUrls = [];
let playing = null;
// Media requests of a new page of results wait until its cards have been painted.
let pending = null;

function later(start) {
  if (pending) pending.push(start);
  else start();
}

/** Hold media requests until ``startMedia`` (called once the cards are on screen). */
export function holdMedia() {
  pending = [];
}

export function startMedia() {
  const queued = pending ?? [];
  pending = null;
  for (const start of queued) start();
}

/** Create an element with attributes and children (strings become text nodes). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

export function hitName(hit) {
  const named = hit.metadata?.name;
  if (typeof named === "string" && named) return named;
  const parts = String(hit.uri).split(/[\\/]/);
  return parts[parts.length - 1] || String(hit.uri);
}

const VIDEO_FILE = /\.(mp4|m4v|mov|webm|mkv|avi)$/;

/** How to show a hit: its modality, except that frames of a video file show as that video. */
export function displayKind(hit) {
  if (hit.modality === "vision" && VIDEO_FILE.test(String(hit.uri).toLowerCase())) return "video";
  return hit.modality;
}

// Arrays the thumbnail route cannot draw: the page draws them from the item's media.
const isArray = (hit) => /\.(npy|bin)$/.test(String(hit.uri).toLowerCase());

export function clipText(hit) {
  if (hit.start == null) return "";
  return `${hit.start.toFixed(1)}–${(hit.end ?? hit.start).toFixed(1)} s`;
}

async function track(promise) {
  const url = await promise;
  liveUrls.push(url);
  return url;
}

/** Forget the previous page's blob: URLs and stop its sound. */
export function releaseMedia() {
  for (const url of liveUrls) URL.revokeObjectURL(url);
  liveUrls = [];
  if (playing) playing.pause();
  playing = null;
}

function placeholder(text) {
  return el("span", { class: "placeholder", text });
}

function thumbnailImage(collection, hit, alt) {
  const img = el("img", { alt, decoding: "async", width: 256, height: 256 });
  later(() =>
    track(api.blobUrl(collection, hit.id, "thumbnail"))
      .then((url) => {
        img.src = url;
      })
      .catch(() => img.replaceWith(placeholder("no preview"))),
  );
  return img;
}

function npyCanvas(collection, hit, label) {
  const canvas = el("canvas", { role: "img", "aria-label": label, width: 256, height: 192 });
  later(() => api
    .mediaBytes(collection, hit.id)
    .then((buffer) => {
      const array = String(hit.uri).toLowerCase().endsWith(".bin") ? parseVispBin(buffer) : parseNpy(buffer);
      if (hit.modality === "imu") drawSeries(canvas, array);
      else drawMap(canvas, array, { zeroIsMissing: hit.modality === "depth" });
    })
    .catch(() => canvas.replaceWith(placeholder("no preview"))));
  return canvas;
}

function textSnippet(collection, hit, limit) {
  const p = el("p", { class: "snippet", text: "…" });
  later(() => api
    .mediaBytes(collection, hit.id)
    .then((buffer) => {
      const text = new TextDecoder("utf-8").decode(buffer.slice(0, limit * 4)).trim();
      p.textContent = text.length > limit ? `${text.slice(0, limit)}…` : text;
    })
    .catch(() => {
      p.textContent = "(text not available)";
    }));
  return p;
}

function playButton(collection, hit, name) {
  const button = el("button", {
    type: "button",
    class: "play",
    "aria-label": `Play ${name}`,
    "aria-pressed": "false",
    text: "▶ Play",
  });
  let audio = null;
  button.addEventListener("click", async () => {
    if (audio && !audio.paused) {
      audio.pause();
      return;
    }
    if (!audio) {
      audio = new Audio(await track(api.blobUrl(collection, hit.id, "media")));
      audio.addEventListener("play", () => {
        button.setAttribute("aria-pressed", "true");
        button.textContent = "❚❚ Pause";
      });
      audio.addEventListener("pause", () => {
        button.setAttribute("aria-pressed", "false");
        button.textContent = "▶ Play";
      });
    }
    if (playing && playing !== audio) playing.pause();
    playing = audio;
    if (hit.start != null) audio.currentTime = hit.start;
    await audio.play();
  });
  return button;
}

/** A <video> of the item that starts at the matching clip. */
export function videoPlayer(collection, hit, autoplay) {
  const video = el("video", { controls: true, preload: "metadata", playsinline: true });
  track(api.blobUrl(collection, hit.id, "media")).then((url) => {
    video.addEventListener(
      "loadedmetadata",
      () => {
        if (hit.start != null) video.currentTime = hit.start;
        if (autoplay) video.play().catch(() => {});
      },
      { once: true },
    );
    video.src = url;
  });
  return video;
}

function preview(collection, hit, name) {
  const kind = displayKind(hit);
  const box = el("div", { class: `preview preview-${kind}` });
  if (kind === "audio") {
    box.append(el("span", { class: "glyph", "aria-hidden": "true", text: "♪" }), playButton(collection, hit, name));
  } else if (hit.modality === "text") {
    box.append(textSnippet(collection, hit, SNIPPET_CHARS));
  } else if (hit.modality === "imu" || (MAP_MODALITIES.has(hit.modality) && isArray(hit))) {
    box.append(npyCanvas(collection, hit, `${hit.modality} of ${name}`));
  } else if (THUMBNAIL_MODALITIES.has(kind)) {
    box.append(thumbnailImage(collection, hit, name));
    if (kind === "video") {
      const play = el("button", {
        type: "button",
        class: "play overlay",
        "aria-label": `Play ${name} from ${clipText(hit) || "the start"}`,
        text: "▶",
      });
      play.addEventListener("click", () => {
        box.replaceChildren(videoPlayer(collection, hit, true));
      });
      box.append(play);
    }
  } else {
    box.append(placeholder(hit.modality));
  }
  return box;
}

/** One result card: preview, name (opens the detail view), score, "more like this". */
export function hitCard(collection, hit, rank, handlers) {
  const name = hitName(hit);
  const titleId = `hit-${rank}-title`;
  const open = el("button", { type: "button", class: "open", text: name, title: hit.uri });
  open.addEventListener("click", () => handlers.open(hit));
  const similar = el("button", {
    type: "button",
    class: "similar",
    text: "More like this",
    "aria-label": `More like ${name}`,
  });
  similar.addEventListener("click", () => handlers.similar(hit));
  const facts = el(
    "p",
    { class: "facts-line" },
    el("span", { class: "badge", text: displayKind(hit) }),
    el("span", { class: "score", title: "cosine similarity", text: hit.score.toFixed(3) }),
    clipText(hit) ? el("span", { class: "clip", text: clipText(hit) }) : null,
  );
  return el(
    "li",
    { class: "hit", "data-id": hit.id, "data-modality": hit.modality },
    el(
      "article",
      { "aria-labelledby": titleId },
      preview(collection, hit, name),
      el("div", { class: "card-body" }, el("h3", { id: titleId }, open), facts, similar),
    ),
  );
}

function fact(list, term, value) {
  list.append(el("dt", { text: term }), el("dd", { text: value }));
}

/** Fill the detail dialog for one hit (full media, facts, metadata). */
export function fillDetail(dialog, collection, hit) {
  const name = hitName(hit);
  dialog.querySelector("#detail-title").textContent = name;
  const media = dialog.querySelector("#detail-media");
  media.replaceChildren();
  const kind = displayKind(hit);
  if (kind === "vision") {
    const img = el("img", { alt: name });
    track(api.blobUrl(collection, hit.id, "media"))
      .then((url) => {
        img.src = url;
      })
      .catch(() => img.replaceWith(placeholder("media not available")));
    media.append(img);
  } else if (kind === "video") {
    media.append(videoPlayer(collection, hit, false));
  } else if (kind === "audio") {
    const audio = el("audio", { controls: true, preload: "metadata" });
    track(api.blobUrl(collection, hit.id, "media")).then((url) => {
      audio.src = url;
    });
    media.append(audio);
  } else if (hit.modality === "text") {
    media.append(textSnippet(collection, hit, 5000));
  } else {
    media.append(preview(collection, hit, name).firstChild);
  }
  const facts = dialog.querySelector("#detail-facts");
  facts.replaceChildren();
  fact(facts, "id", String(hit.id));
  fact(facts, "modality", hit.modality);
  if (hit.score != null) fact(facts, "score", hit.score.toFixed(4));
  if (clipText(hit)) fact(facts, "matching clip", clipText(hit));
  fact(facts, "path", hit.uri);
  const meta = dialog.querySelector("#detail-metadata");
  meta.replaceChildren();
  const entries = Object.entries(hit.metadata ?? {});
  if (!entries.length) fact(meta, "(none)", "");
  for (const [key, value] of entries) fact(meta, key, typeof value === "string" ? value : JSON.stringify(value));
}
