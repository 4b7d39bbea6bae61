// The web page: a WAV file from the file input -> wav.js's readClip -> model.onnx (onnxruntime-web).
// ?check=1 runs the test vectors instead; the result goes to <pre id="result"> and document.body.dataset.
"use strict";
ort.env.wasm.wasmPaths = "node_modules/onnxruntime-web/dist/";
const show = (value) => {
  document.getElementById("result").textContent = JSON.stringify(value, null, 1);
  document.body.dataset.result = JSON.stringify(value);
};

async function fetchJson(url) { return (await fetch(url)).json(); }
async function fetchFloats(url) { return new Float32Array(await (await fetch(url)).arrayBuffer()); }

async function classify(session, info, bytes) {
  const clip = readClip(bytes, info.sample_rate, info.samples);
  const out = await session.run({ [info.input]: new ort.Tensor("float32", clip, [1, info.samples]) });
  const p = Array.from(out[info.output].data), best = p.indexOf(Math.max(...p));
  return { class: info.class_labels[best], probabilities: Object.fromEntries(info.class_labels.map((l, j) => [l, p[j]])) };
}

async function main() {
  const info = await fetchJson("deploy.json");
  const session = await ort.InferenceSession.create("model.onnx");
  if (new URLSearchParams(location.search).get("check")) {
    const vectors = await fetchJson("vectors/vectors.json");
    const input = vectors.inputs[info.input], want = vectors.outputs.probabilities;
    const out = await session.run({ [info.input]: new ort.Tensor("float32", await fetchFloats("vectors/" + input.file), input.shape) });
    const expected = await fetchFloats("vectors/" + want.file), got = out[info.output].data;
    let diff = 0;
    for (let i = 0; i < expected.length; i++) diff = Math.max(diff, Math.abs(got[i] - expected[i]));
    show({ passed: diff <= want.atol, max_abs_diff: diff });
    return;
  }
  document.getElementById("file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    try {
      show({ file: file.name, ...(await classify(session, info, new Uint8Array(await file.arrayBuffer()))) });
    } catch (error) {
      show({ file: file.name, error: error.message });
    }
  });
  document.body.dataset.ready = "1";
}

main().catch((error) => show({ error: error.message }));
