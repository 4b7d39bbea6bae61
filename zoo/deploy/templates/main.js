// onnxruntime-web (WebAssembly, CPU), files from npm (node_modules/onnxruntime-web/dist): no CDN.
ort.env.wasm.wasmPaths = new URL("node_modules/onnxruntime-web/dist/", location.href).href;
ort.env.wasm.numThreads = 1;
const TYPES = { uint8: Uint8Array, float32: Float32Array, int64: BigInt64Array };
const show = (value) => { document.getElementById("result").textContent = "RESULT " + JSON.stringify(value); };

async function pixelsOf(bitmap, channels) {  // RGBA from a canvas → uint8 N×H×W×C
  const canvas = document.getElementById("canvas");
  canvas.width = bitmap.width; canvas.height = bitmap.height;
  const context = canvas.getContext("2d", { colorSpace: "srgb", willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const out = new Uint8Array(bitmap.width * bitmap.height * channels);
  for (let i = 0; i < bitmap.width * bitmap.height; i++) {
    const [r, g, b] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]];
    if (channels === 1) out[i] = r === g && g === b ? r : Math.round(0.299 * r + 0.587 * g + 0.114 * b);
    else out.set([r, g, b], 3 * i);
  }
  return new ort.Tensor("uint8", out, [1, bitmap.height, bitmap.width, channels]);
}

async function classify(session, info, blob, name) {
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  const probabilities = (await session.run({ image: await pixelsOf(bitmap, info.channels) })).probabilities.data;
  let best = 0;
  probabilities.forEach((p, i) => { if (p > probabilities[best]) best = i; });
  const named = {};
  info.class_labels.forEach((label, i) => { named[label] = probabilities[i]; });
  return [{ image: name, class: info.class_labels[best], index: best, probabilities: named }];
}

async function vector(entry) {
  const buffer = await (await fetch("vectors/" + entry.file)).arrayBuffer();
  return new ort.Tensor(entry.dtype, new TYPES[entry.dtype](buffer), entry.shape);
}

async function check(session) {
  const vectors = await (await fetch("vectors/vectors.json")).json();
  const feeds = {};
  for (const [name, entry] of Object.entries(vectors.inputs)) feeds[name] = await vector(entry);
  const outputs = await session.run(feeds);
  const result = { passed: true, max_abs_diff: {} };
  for (const [name, entry] of Object.entries(vectors.outputs)) {
    const want = (await vector(entry)).data, got = outputs[name].data;
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(Number(got[i]) - Number(want[i])));
    result.max_abs_diff[name] = worst;
    result.passed = result.passed && worst <= entry.atol;
  }
  return result;
}

async function draw(session, info, count) {
  const noise = info.noise, values = new Float32Array(count * noise.shape[1]);
  for (let i = 0; i < values.length; i++) {  // U(-1, 1), else N(0, 1) by Box–Muller
    values[i] = noise.distribution_id === "uniform" ? 2 * Math.random() - 1
      : Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
  }
  const feeds = { [noise.input]: new ort.Tensor("float32", values, [count, noise.shape[1]]) };
  if (noise.label_input) {
    feeds[noise.label_input] = new ort.Tensor("int64", BigInt64Array.from({ length: count }, (_, k) => BigInt(k % noise.num_classes)), [count]);
  }
  const pixels = (await session.run(feeds)).pixels;
  const [n, h, w, c] = pixels.dims;
  const canvas = document.getElementById("canvas");
  canvas.width = w * n; canvas.height = h;
  const image = canvas.getContext("2d").createImageData(w * n, h);
  for (let k = 0; k < n; k++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const at = 4 * (y * w * n + k * w + x), from = ((k * h + y) * w + x) * c;
    for (let j = 0; j < 3; j++) image.data[at + j] = pixels.data[from + (c === 1 ? 0 : j)];
    image.data[at + 3] = 255;
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
  return { drawn: n, shape: pixels.dims };
}

(async () => {
  try {
    const info = await (await fetch("deploy.json")).json();
    document.getElementById("title").textContent = `${info.model} (${info.kind})`;
    const session = await ort.InferenceSession.create("model.onnx", { executionProviders: ["wasm"] });
    const params = new URLSearchParams(location.search);
    document.getElementById("file").onchange = async (event) => {
      const file = event.target.files[0];
      show(await classify(session, info, file, file.name));
    };
    document.getElementById("draw").onclick = async () => show(await draw(session, info, 16));
    if (params.get("check")) show(await check(session));
    else if (params.get("image")) {  // one or more, comma-separated
      const results = [];
      for (const name of params.get("image").split(",")) {
        results.push(...await classify(session, info, await (await fetch(name)).blob(), name));
      }
      show(results);
    } else if (params.get("samples")) show(await draw(session, info, Number(params.get("samples"))));
    else document.getElementById("result").textContent = "ready";
  } catch (error) {
    document.getElementById("result").textContent = "ERROR " + error;
  }
})();
