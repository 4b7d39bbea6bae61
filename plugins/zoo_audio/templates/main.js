// The web page: WAV files -> wav.js's readClip -> model.onnx (onnxruntime-web), in the browser.
//   the file input     classify the chosen WAV file
//   ?wav=a.wav,b.wav   classify those files (fetched from beside the page)
//   ?check=1           the clips in vectors/ must give the stored probabilities
// The result is written to <pre id="result"> as "RESULT <json>" (it says "loading" until then).
"use strict";
ort.env.wasm.wasmPaths = new URL("node_modules/onnxruntime-web/dist/", location.href).href;
const show = (value) => { document.getElementById("result").textContent = "RESULT " + JSON.stringify(value); };

async function fetchJson(url) { return (await fetch(url)).json(); }
async function fetchBytes(url) { return new Uint8Array(await (await fetch(url)).arrayBuffer()); }

async function classify(session, info, files) {
  const batch = new Float32Array(files.length * info.samples);
  files.forEach((bytes, i) => batch.set(readClip(bytes, info.sample_rate, info.samples), i * info.samples));
  const out = await session.run({ [info.input]: new ort.Tensor("float32", batch, [files.length, info.samples]) });
  const p = out[info.output].data, k = info.class_labels.length;
  return files.map((_, i) => {
    const row = Array.from(p.subarray(i * k, (i + 1) * k)), best = row.indexOf(Math.max(...row));
    return { class: info.class_labels[best], probabilities: Object.fromEntries(info.class_labels.map((l, j) => [l, row[j]])) };
  });
}

async function main() {
  const info = await fetchJson("deploy.json");
  const session = await ort.InferenceSession.create("model.onnx");
  const params = new URLSearchParams(location.search);
  if (params.get("check")) {
    const vectors = await fetchJson("vectors/vectors.json");
    const input = vectors.inputs[info.input], want = vectors.outputs.probabilities;
    const waves = new Float32Array((await fetchBytes("vectors/" + input.file)).buffer);
    const out = await session.run({ [info.input]: new ort.Tensor("float32", waves, input.shape) });
    const expected = new Float32Array((await fetchBytes("vectors/" + want.file)).buffer), got = out[info.output].data;
    let diff = 0;
    for (let i = 0; i < expected.length; i++) diff = Math.max(diff, Math.abs(got[i] - expected[i]));
    show({ passed: diff <= want.atol, max_abs_diff: diff });
    return;
  }
  if (params.get("wav")) {
    const names = params.get("wav").split(",");
    const rows = await classify(session, info, await Promise.all(names.map(fetchBytes)));
    show(rows.map((row, i) => ({ file: names[i], ...row })));
    return;
  }
  document.getElementById("file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    try {
      show([{ file: file.name, ...(await classify(session, info, [new Uint8Array(await file.arrayBuffer())]))[0] }]);
    } catch (error) {
      show({ file: file.name, error: error.message });
    }
  });
  document.getElementById("result").textContent = "choose a WAV file";
}

main().catch((error) => show({ error: error.message }));
