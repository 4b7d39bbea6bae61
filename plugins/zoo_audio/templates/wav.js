// WAV file -> float32 mono samples at the model's rate: the same arithmetic as zoo's Python decoder
// (scipy.io.wavfile + mean over channels + scipy.signal.resample_poly with its default Kaiser window, beta 5,
// then the first `length` samples kept or zeros appended). Works in node and in the browser (no imports).
"use strict";

function readWav(bytes) {
  // bytes: Uint8Array of a RIFF/WAVE file -> {rate, channels, samples: Float32Array (mono, channel mean)}
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (at) => String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
  if (bytes.length < 12 || tag(0) !== "RIFF" || tag(8) !== "WAVE") throw new Error("not a RIFF/WAVE file");
  let fmt = null, data = null;
  for (let at = 12; at + 8 <= bytes.length;) {
    const id = tag(at), size = view.getUint32(at + 4, true), body = at + 8;
    if (id === "fmt ") {
      let format = view.getUint16(body, true);
      if (format === 0xfffe && size >= 26) format = view.getUint16(body + 24, true);  // WAVE_FORMAT_EXTENSIBLE
      fmt = {format, channels: view.getUint16(body + 2, true), rate: view.getUint32(body + 4, true),
             bits: view.getUint16(body + 14, true)};
    } else if (id === "data") {
      data = {start: body, size: Math.min(size, bytes.length - body)};
    }
    at = body + size + (size % 2);
  }
  if (!fmt || !data) throw new Error("no fmt or data chunk");
  const width = fmt.bits / 8, frames = Math.floor(data.size / (width * fmt.channels));
  if (frames === 0) throw new Error("the WAV file holds no samples");
  const read = {
    "1:8": (o) => (bytes[o] - 128) / 128,
    "1:16": (o) => view.getInt16(o, true) / 32768,
    "1:24": (o) => ((bytes[o] << 8 | bytes[o + 1] << 16 | bytes[o + 2] << 24) >> 8) / 8388608,
    "1:32": (o) => view.getInt32(o, true) / 2147483648,
    "3:32": (o) => view.getFloat32(o, true),
    "3:64": (o) => view.getFloat64(o, true),
  }[`${fmt.format}:${fmt.bits}`];
  if (!read) throw new Error(`unsupported WAV encoding (format ${fmt.format}, ${fmt.bits} bits)`);
  const samples = new Float32Array(frames);
  for (let i = 0; i < frames; i++) {
    let sum = 0;
    for (let c = 0; c < fmt.channels; c++) sum = Math.fround(sum + Math.fround(read(data.start + (i * fmt.channels + c) * width)));
    samples[i] = Math.fround(sum / fmt.channels);
  }
  return {rate: fmt.rate, channels: fmt.channels, samples};
}

function gcd(a, b) { while (b) [a, b] = [b, a % b]; return a; }

function besselI0(x) {
  let sum = 1, term = 1;
  for (let k = 1; k < 500; k++) {
    term *= (x / (2 * k)) * (x / (2 * k));
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

function lowpass(numtaps, cutoff, beta) {
  // scipy.signal.firwin(numtaps, cutoff, window=("kaiser", beta)): windowed sinc, unit gain at 0 Hz
  const h = new Float64Array(numtaps), alpha = (numtaps - 1) / 2, i0beta = besselI0(beta);
  let sum = 0;
  for (let n = 0; n < numtaps; n++) {
    const m = n - alpha, x = cutoff * m;
    const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
    const r = 2 * n / (numtaps - 1) - 1;
    h[n] = cutoff * sinc * besselI0(beta * Math.sqrt(Math.max(0, 1 - r * r))) / i0beta;
    sum += h[n];
  }
  for (let n = 0; n < numtaps; n++) h[n] /= sum;
  return h;
}

function resamplePoly(x, rate, target) {
  // scipy.signal.resample_poly(x, up, down) with its defaults (Kaiser beta 5, zero padding), in float64
  const g = gcd(rate, target), up = target / g, down = rate / g;
  if (up === 1 && down === 1) return Float32Array.from(x);
  const nIn = x.length, nOut = Math.ceil(nIn * up / down);
  const maxRate = Math.max(up, down), halfLen = 10 * maxRate;
  const taps = lowpass(2 * halfLen + 1, 1 / maxRate, 5.0);
  const prePad = down - (halfLen % down);
  const outputLen = (lenH) => Math.floor(((nIn - 1) * up + lenH - 1) / down) + 1;
  let postPad = 0;
  const preRemove = Math.floor((halfLen + prePad) / down);
  while (outputLen(taps.length + prePad + postPad) < nOut + preRemove) postPad++;
  const h = new Float64Array(prePad + taps.length + postPad);
  for (let k = 0; k < taps.length; k++) h[prePad + k] = taps[k] * up;
  const out = new Float32Array(nOut);
  for (let j = 0; j < nOut; j++) {
    const n = (j + preRemove) * down;  // index into the upsampled-and-filtered signal
    let acc = 0;
    const first = Math.max(0, Math.ceil((n - (h.length - 1)) / up)), last = Math.min(nIn - 1, Math.floor(n / up));
    for (let i = first; i <= last; i++) acc += h[n - i * up] * x[i];
    out[j] = acc;
  }
  return out;
}

function fixLength(samples, length) {
  const out = new Float32Array(length);
  out.set(samples.length > length ? samples.subarray(0, length) : samples);
  return out;
}

function readClip(bytes, rate, length) {
  // a WAV file as the model sees it: decoded, mixed to mono, resampled to `rate`, exactly `length` samples
  const wav = readWav(bytes);
  return fixLength(resamplePoly(wav.samples, wav.rate, rate), length);
}

if (typeof module !== "undefined") module.exports = {readWav, resamplePoly, fixLength, readClip};
