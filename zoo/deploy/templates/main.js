// onnxruntime-web (WebAssembly, CPU), files from npm (node_modules/onnxruntime-web/dist): no CDN.
// Images are decoded by decode.js (pngjs, libjpeg-turbo in WebAssembly), the same code and rule as node's run.js.
ort.env.wasm.wasmPaths = new URL("node_modules/onnxruntime-web/dist/", location.href).href;
ort.env.wasm.numThreads = 1;
const TYPES = { uint8: Uint8Array, float32: Float32Array, int64: BigInt64Array };
const $ = (id) => document.getElementById(id);
const SHOWN_CLASSES = 5;  // the most probable classes listed per image

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

// The result for people (a table or a grid) and, hidden, as one JSON line for scripts and tests.
function show(value, view) {
  $("result").textContent = "RESULT " + JSON.stringify(value);
  $("view").replaceChildren(view);
  $("status").textContent = "done";
}

function resultsTable(results, sources) {
  const head = element("tr", {}, element("th", {}, "image"), element("th", {}, "class"),
    element("th", {}, `top ${SHOWN_CLASSES} probabilities`));
  const rows = results.map((result, k) => {
    const top = Object.entries(result.probabilities).sort((a, b) => b[1] - a[1]).slice(0, SHOWN_CLASSES);
    const list = element("table", { class: "probabilities" }, ...top.map(([label, p]) =>
      element("tr", {}, element("td", {}, label),
        element("td", { class: "num" }, element("span", { class: "bar", style: `width:${Math.round(p * 100)}px` }),
          p.toFixed(3)))));
    const picture = element("img", { class: "input", src: sources[k], alt: result.image });
    return element("tr", {}, element("td", {}, picture, " ", result.image), element("td", {}, element("b", {}, result.class)),
      element("td", {}, list));
  });
  return element("table", { id: "results" }, head, ...rows);
}

async function classify(session, info, bytes, name) {
  const image = zooDecode.pixels(new Uint8Array(bytes), info.channels);
  const tensor = new ort.Tensor("uint8", image.data, [1, image.height, image.width, image.channels]);
  const probabilities = (await session.run({ image: tensor })).probabilities.data;
  let best = 0;
  probabilities.forEach((p, i) => { if (p > probabilities[best]) best = i; });
  const named = {};
  info.class_labels.forEach((label, i) => { named[label] = probabilities[i]; });
  return { image: name, class: info.class_labels[best], index: best, probabilities: named };
}

async function classifyAll(session, info, items) {  // items: [{name, bytes, source}]
  const results = [];
  for (const item of items) results.push(await classify(session, info, item.bytes, item.name));
  show(results, resultsTable(results, items.map((item) => item.source)));
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
  const rows = Object.entries(result.max_abs_diff).map(([name, worst]) =>
    element("tr", {}, element("td", {}, name), element("td", { class: "num" }, worst.toExponential(2))));
  show(result, element("div", {}, element("p", {}, result.passed ? "test vectors: passed" : "test vectors: FAILED"),
    element("table", {}, element("tr", {}, element("th", {}, "output"), element("th", {}, "max abs diff")), ...rows)));
}

// n samples as a grid of ceil(sqrt(n)) columns, each tile scaled up to at least 64 px.
async function draw(session, info, count, seed) {
  const noise = info.noise;
  const values = zooNoise.noise(count * noise.shape[1], noise.distribution_id, seed);
  const feeds = { [noise.input]: new ort.Tensor("float32", values, [count, noise.shape[1]]) };
  if (noise.label_input) {
    feeds[noise.label_input] = new ort.Tensor("int64", BigInt64Array.from({ length: count }, (_, k) => BigInt(k % noise.num_classes)), [count]);
  }
  const pixels = (await session.run(feeds)).pixels;
  const [n, h, w, c] = pixels.dims;
  const columns = Math.ceil(Math.sqrt(n)), rows = Math.ceil(n / columns), gap = 1;
  const canvas = element("canvas", { id: "samples" });
  canvas.width = columns * (w + gap) - gap; canvas.height = rows * (h + gap) - gap;
  const context = canvas.getContext("2d");
  const image = context.createImageData(canvas.width, canvas.height);
  for (let k = 0; k < n; k++) {
    const left = (k % columns) * (w + gap), top = Math.floor(k / columns) * (h + gap);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const at = 4 * ((top + y) * canvas.width + left + x), from = ((k * h + y) * w + x) * c;
      for (let j = 0; j < 3; j++) image.data[at + j] = pixels.data[from + (c === 1 ? 0 : j)];
      image.data[at + 3] = 255;
    }
  }
  context.putImageData(image, 0, 0);
  const scale = Math.max(1, Math.ceil(64 / Math.max(h, w)));
  canvas.style.width = `${canvas.width * scale}px`; canvas.style.height = `${canvas.height * scale}px`;
  show({ drawn: n, shape: pixels.dims, seed, grid: [rows, columns] },
    element("div", {}, element("p", {}, `${n} samples, seed ${seed}`), canvas));
}

const seedOf = (text) => Math.min(0xffffffff, Math.max(0, Math.floor(Number(text)) || 0));  // as run.js --seed

function fail(error) {
  const message = String(error && error.message ? error.message : error).split("\n")[0];
  $("result").textContent = "ERROR " + message;
  $("status").textContent = "error: " + message;
}

(async () => {
  try {
    const info = await (await fetch("deploy.json")).json();
    const classifier = info.kind === "classifier";
    $("title").textContent = `${info.model} (${info.kind})`;
    // only the controls this model can use: a classifier has no sampler button, a sampler no file picker
    (classifier ? $("draw-controls") : $("file")).remove();
    (classifier ? $("help-sampler") : $("help-classifier")).remove();
    (classifier ? $("file") : $("draw-controls")).hidden = false;
    $(classifier ? "help-classifier" : "help-sampler").hidden = false;
    await zooDecode.load("node_modules/@cwasm/jpeg-turbo/jpeg-turbo.wasm");
    const session = await ort.InferenceSession.create("model.onnx", { executionProviders: ["wasm"] });
    const params = new URLSearchParams(location.search);
    const run = (work) => work.catch(fail);
    if (classifier) {
      const picked = (files) => Promise.all([...files].map(async (file) =>
        ({ name: file.name, bytes: await file.arrayBuffer(), source: URL.createObjectURL(file) })));
      $("file").onchange = (event) => run(picked(event.target.files).then((items) => classifyAll(session, info, items)));
    } else {
      $("draw").onclick = () => run(draw(session, info, Math.max(1, Number($("count").value) | 0),
        seedOf($("seed").value)));
    }
    $("status").textContent = "ready";
    $("result").textContent = "ready";
    if (params.get("check")) await check(session);
    else if (params.get("image") && classifier) {  // one or more, comma-separated
      const items = [];
      for (const name of params.get("image").split(",")) {
        const response = await fetch(name);
        if (!response.ok) throw new Error(`${name}: ${response.status} ${response.statusText}`);
        items.push({ name, bytes: await response.arrayBuffer(), source: name });
      }
      await classifyAll(session, info, items);
    } else if (params.get("pixels")) {  // the uint8 pixels the graph receives, for one or more images
      const results = [];
      for (const name of params.get("pixels").split(",")) {
        const image = zooDecode.pixels(new Uint8Array(await (await fetch(name)).arrayBuffer()), info.channels);
        results.push({ image: name, shape: [image.height, image.width, image.channels], data: Array.from(image.data) });
      }
      show(results, element("ul", {}, ...results.map((r) => element("li", {}, `${r.image}: ${r.shape.join("×")}`))));
    } else if (params.get("samples") && !classifier) {
      await draw(session, info, Math.min(1024, Math.max(1, Number(params.get("samples")) | 0)),
        seedOf(params.get("seed")));
    }
  } catch (error) {
    fail(error);
  }
})();
