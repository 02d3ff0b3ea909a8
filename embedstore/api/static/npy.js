// .npy arrays (depth, thermal, IMU) read in the browser and drawn on a canvas.

const TYPES = {
  "<f4": Float32Array, "<f8": Float64Array, "<u1": Uint8Array, "|u1": Uint8Array, "<u2": Uint16Array,
  "<i2": Int16Array, "<i4": Int32Array, "<u4": Uint32Array, "|i1": Int8Array, "<i1": Int8Array,
};

/** Parse a little-endian, C-order .npy file: `{shape, data}` (data as a typed array). */
export function parseNpy(buffer) {
  const bytes = new Uint8Array(buffer);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (!magic.every((b, i) => bytes[i] === b)) throw new Error("not a .npy file");
  const view = new DataView(buffer);
  const major = bytes[6];
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder("latin1").decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? "";
  const shape = shapeText.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  const Type = TYPES[descr];
  if (!Type || fortran) throw new Error(`unsupported .npy layout ${descr}${fortran ? " (Fortran order)" : ""}`);
  const offset = start + headerLen;
  const count = shape.reduce((a, b) => a * b, 1);
  const data = new Type(buffer.slice(offset, offset + count * Type.BYTES_PER_ELEMENT));
  return { shape, data };
}

/** A ViSP depth file: uint32 LE height and width, then uint16 LE millimetres (0: no reading). */
export function parseVispBin(buffer) {
  const view = new DataView(buffer);
  const [h, w] = [view.getUint32(0, true), view.getUint32(4, true)];
  if (buffer.byteLength !== 8 + 2 * h * w) throw new Error("not a ViSP depth file");
  return { shape: [h, w], data: new Uint16Array(buffer.slice(8)) };
}

// A perceptually ordered colour ramp (dark blue -> teal -> yellow) for depth and thermal maps.
const RAMP = [
  [13, 8, 135], [84, 2, 163], [139, 10, 165], [185, 50, 137], [219, 92, 104],
  [244, 136, 73], [254, 188, 43], [240, 249, 33],
];

function ramp(t) {
  const x = Math.min(Math.max(t, 0), 1) * (RAMP.length - 1);
  const i = Math.min(Math.floor(x), RAMP.length - 2);
  const f = x - i;
  return RAMP[i].map((c, j) => Math.round(c + f * (RAMP[i + 1][j] - c)));
}

function finiteRange(data, skipZero) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of data) {
    if (!Number.isFinite(v) || (skipZero && v === 0)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [0, 1];
}

/** Draw a 2-D map (H, W) or (1, H, W) as a colour image; zero depth (no reading) stays black. */
export function drawMap(canvas, { shape, data }, { zeroIsMissing = true } = {}) {
  const dims = shape.filter((d) => d !== 1);
  if (dims.length !== 2) throw new Error(`expected a 2-D map, got shape (${shape.join(", ")})`);
  const [h, w] = dims;
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(w, h);
  const [lo, hi] = finiteRange(data, zeroIsMissing);
  const span = hi - lo || 1;
  for (let i = 0; i < w * h; i += 1) {
    const v = data[i];
    const missing = !Number.isFinite(v) || (zeroIsMissing && v === 0);
    const [r, g, b] = missing ? [0, 0, 0] : ramp((v - lo) / span);
    image.data.set([r, g, b, 255], i * 4);
  }
  ctx.putImageData(image, 0, 0);
}

const LINE_COLOURS = ["#1f5fbf", "#b3261e", "#1e7a3c", "#7a4eb0", "#a85a00", "#00707a"];

/** Draw IMU series (channels, T) or (T, channels) as one line per channel. */
export function drawSeries(canvas, { shape, data }, width = 320, height = 160) {
  if (shape.length !== 2) throw new Error(`expected (channels, time), got (${shape.join(", ")})`);
  let [channels, steps] = shape;
  let at = (c, t) => data[c * steps + t];
  if (channels > steps) {
    [channels, steps] = [steps, channels];
    at = (c, t) => data[t * channels + c];
  }
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, width, height);
  const [lo, hi] = finiteRange(data, false);
  const span = hi - lo || 1;
  ctx.lineWidth = 1.5;
  for (let c = 0; c < channels; c += 1) {
    ctx.strokeStyle = LINE_COLOURS[c % LINE_COLOURS.length];
    ctx.beginPath();
    for (let t = 0; t < steps; t += 1) {
      const x = (t / Math.max(steps - 1, 1)) * (width - 8) + 4;
      const y = height - 4 - ((at(c, t) - lo) / span) * (height - 8);
      if (t === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    }
    ctx.stroke();
  }
}
