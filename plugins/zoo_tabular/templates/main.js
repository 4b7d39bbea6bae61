// onnxruntime-web (WebAssembly, CPU), files from npm (node_modules/onnxruntime-web/dist): no CDN.
ort.env.wasm.wasmPaths = new URL("node_modules/onnxruntime-web/dist/", location.href).href;
ort.env.wasm.numThreads = 1;
const show = (value) => { document.getElementById("result").textContent = "RESULT " + JSON.stringify(value); };

function rowsOf(info, text) {  // a plain CSV of numbers: header first, no quoted commas
  const lines = text.split(/\r?\n/).filter((line) => line.trim());
  const header = lines[0].replace(/^\uFEFF/, "").split(",").map((name) => name.trim());
  const index = info.feature_names.map((name) => header.indexOf(name));
  if (index.includes(-1)) throw new Error("missing feature columns; the model takes " + info.feature_names.join(", "));
  const rows = lines.slice(1).map((line) => line.split(","));
  return new ort.Tensor("float32", Float32Array.from(rows.flatMap((row) => index.map((i) => Number(row[i])))),
                        [rows.length, index.length]);
}

async function predict(session, info, text, name) {
  const rows = rowsOf(info, text);
  const values = (await session.run({ [info.input]: rows }))[info.output].data;
  const width = info.target_names.length, result = [];
  for (let r = 0; r < rows.dims[0]; r++) {
    const named = { input: name + ":" + (r + 1) };
    info.target_names.forEach((target, k) => { named[target] = values[r * width + k]; });
    result.push(named);
  }
  return result;
}

async function vector(entry) {
  const buffer = await (await fetch("vectors/" + entry.file)).arrayBuffer();
  return new ort.Tensor(entry.dtype, new Float32Array(buffer), entry.shape);
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
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    result.max_abs_diff[name] = worst;
    result.passed = result.passed && worst <= entry.atol;
  }
  return result;
}

async function main() {
  const info = await (await fetch("deploy.json")).json();
  const session = await ort.InferenceSession.create("model.onnx");
  const params = new URLSearchParams(location.search);
  document.getElementById("file").onchange = async (event) => {
    const file = event.target.files[0];
    show(await predict(session, info, await file.text(), file.name));
  };
  if (params.get("check")) show(await check(session));
  else if (params.get("rows")) {
    const name = params.get("rows");
    show(await predict(session, info, await (await fetch(name)).text(), name));
  } else document.getElementById("result").textContent = "ready";
}

main().catch((error) => show({ error: String(error) }));
