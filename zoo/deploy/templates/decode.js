// One image file -> the uint8 H×W×C pixels model.onnx takes, by zoo's one decoding rule (README.md):
//   16-bit samples keep their high byte (value >> 8); 1/2/4-bit grey is scaled to 0–255; a palette is looked up
//   (its transparency too); alpha is composited over black, c·a/255 rounded; CMYK becomes RGB as
//   (255 − C)(255 − K)/255 rounded; then 1 channel = grey (a colour pixel by ITU-R 601-2 luma,
//   (19595 R + 38470 G + 7471 B + 32768) >> 16), 3 channels = RGB (grey repeated).
// The same file runs under node (run.js) and in the browser (main.js): PNG by pngjs, JPEG by libjpeg-turbo
// (the WebAssembly build in @cwasm/jpeg-turbo, called through its TurboJPEG API): the decoder Pillow and
// Chromium use, so JPEG pixels are the same as in training to the last bit (pure-JavaScript decoders are not:
// jpeg-js differs by up to 187 levels on 4:2:0 colour and 1 on grey).
// In the browser call `await zooDecode.load(WASM_URL)` once before `pixels`.
(function (root, factory) {
  if (typeof module === "object" && module.exports) {
    const wasm = require("fs").readFileSync(require.resolve("@cwasm/jpeg-turbo/jpeg-turbo.wasm"));
    module.exports = factory(require("pngjs").PNG, new WebAssembly.Module(wasm));
  } else {
    root.zooDecode = factory(root.png.PNG, null);
  }
})(this, function (PNG, jpegModule) {
  "use strict";

  // --- JPEG: libjpeg-turbo's TurboJPEG API in WebAssembly -----------------------------------------------
  const TJPF = { RGB: 0, GRAY: 6, CMYK: 11 };  // pixel formats
  const TJCS = { GRAY: 2, CMYK: 3, YCCK: 4 };  // JPEG colour spaces
  let wasmModule = jpegModule, turbo = null;

  async function load(url) {
    if (!wasmModule) wasmModule = await WebAssembly.compile(await (await fetch(url)).arrayBuffer());
  }

  function jpegLibrary() {  // libjpeg reports errors by longjmp: thrown here, and the instance is made anew
    if (!turbo) {
      if (!wasmModule) throw new Error("the JPEG decoder is not loaded (zooDecode.load)");
      const fail = () => { throw new Error("corrupt or unsupported JPEG data"); };
      const stubs = { environ_sizes_get: () => 0, environ_get: fail, proc_exit: fail, fd_close: fail, fd_seek: fail,
        fd_write: fail };
      turbo = new WebAssembly.Instance(wasmModule, { env: { setjmp: () => 0, longjmp: fail },
        wasi_snapshot_preview1: stubs }).exports;
    }
    return turbo;
  }

  function jpegRgba(bytes) {
    const tj = jpegLibrary();
    let input = 0, header = 0, output = 0, handle = 0;
    try {
      input = tj.malloc(bytes.length);
      new Uint8Array(tj.memory.buffer, input, bytes.length).set(bytes);
      handle = tj.tjInitDecompress();
      header = tj.malloc(16);
      if (!handle || tj.tjDecompressHeader3(handle, input, bytes.length, header, header + 4, header + 8, header + 12)) {
        throw new Error("not a readable JPEG header");
      }
      const [width, height, , space] = new Int32Array(tj.memory.buffer, header, 4);
      const cmyk = space === TJCS.CMYK || space === TJCS.YCCK, grey = space === TJCS.GRAY;
      const per = cmyk ? 4 : grey ? 1 : 3;
      output = tj.malloc(width * height * per);
      if (tj.tjDecompress2(handle, input, bytes.length, output, width, width * per, height,
        cmyk ? TJPF.CMYK : grey ? TJPF.GRAY : TJPF.RGB, 0)) throw new Error("corrupt JPEG data");
      const raw = new Uint8Array(tj.memory.buffer, output, width * height * per);
      const rgba = new Uint8Array(4 * width * height);
      for (let i = 0; i < width * height; i++) {
        if (cmyk) {  // Adobe's inverted CMYK as stored: (255 − C)(255 − K)/255 = c·k/255, rounded
          const k = raw[4 * i + 3];
          for (let j = 0; j < 3; j++) rgba[4 * i + j] = Math.floor((raw[4 * i + j] * k + 127) / 255);
        } else {
          for (let j = 0; j < 3; j++) rgba[4 * i + j] = raw[per * i + (grey ? 0 : j)];
        }
        rgba[4 * i + 3] = 255;
      }
      return { width, height, rgba };
    } catch (error) {
      turbo = null;  // after a longjmp the instance's state is unknown
      throw error;
    } finally {
      if (turbo) {
        if (handle) tj.tjDestroy(handle);
        for (const pointer of [input, header, output]) if (pointer) tj.free(pointer);
      }
    }
  }

  // --- PNG: pngjs -------------------------------------------------------------------------------------
  // pngjs reads through Buffer's big-endian readers; in the browser a Uint8Array with them is enough.
  class Bytes extends Uint8Array {
    readUInt32BE(i) { return ((this[i] << 24) >>> 0) + (this[i + 1] << 16) + (this[i + 2] << 8) + this[i + 3]; }
    readInt32BE(i) { return this.readUInt32BE(i) | 0; }
    readUInt16BE(i) { return (this[i] << 8) + this[i + 1]; }
  }

  const isPng = (b) => b.length > 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47;
  const isJpeg = (b) => b.length > 3 && b[0] === 0xff && b[1] === 0xd8;

  // RGBA, 8 bits a sample, alpha not yet applied.
  function pngRgba(bytes) {
    const png = PNG.sync.read(typeof Buffer === "undefined" ? new Bytes(bytes) : Buffer.from(bytes),
      { skipRescale: true });
    const n = png.width * png.height, rgba = new Uint8Array(4 * n), src = png.data;
    const depth = png.depth, palette = png.colorType === 3;  // a palette is looked up to 8-bit RGBA
    for (let i = 0; i < 4 * n; i++) {
      const v = src[i];
      if (depth === 16) rgba[i] = v >> 8;
      else if (depth < 8 && !palette) rgba[i] = (v * 255) / ((1 << depth) - 1);  // alpha too: 0 or 2^depth − 1
      else rgba[i] = v;
    }
    return { width: png.width, height: png.height, rgba };
  }

  function rgbaOf(bytes) {
    const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    if (isPng(b)) return pngRgba(b);
    if (isJpeg(b)) return jpegRgba(b);
    throw new Error("not a PNG or JPEG file");
  }

  // The pixels the graph takes: {width, height, channels, data: Uint8Array H×W×C}.
  function pixels(bytes, channels) {
    const { width, height, rgba } = rgbaOf(bytes);
    if (!width || !height) throw new Error(`an empty (${width}×${height}) image`);
    const n = width * height, data = new Uint8Array(n * channels);
    for (let i = 0; i < n; i++) {
      const a = rgba[4 * i + 3];
      const over = (c) => Math.floor((c * a + 127) / 255);  // over black, rounded (255 is odd: no ties)
      const r = over(rgba[4 * i]), g = over(rgba[4 * i + 1]), b = over(rgba[4 * i + 2]);
      if (channels === 1) data[i] = (19595 * r + 38470 * g + 7471 * b + 32768) >> 16;
      else { data[3 * i] = r; data[3 * i + 1] = g; data[3 * i + 2] = b; }
    }
    return { width, height, channels, data };
  }

  return { load, pixels };
});
