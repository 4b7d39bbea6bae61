// Run the deployed keyword spotter with onnxruntime-node (no zoo, no Python).
//   node run.js clip.wav [more.wav ...]   one JSON line per file: class and probabilities
//   node run.js --check                   the clips in vectors/ must give the stored probabilities
// WAV files are decoded and resampled by wav.js exactly as zoo does it (see README.md).
const fs = require("fs");
const path = require("path");
const ort = require("onnxruntime-node");
const { readClip } = require("./wav.js");

const HERE = __dirname;
const INFO = JSON.parse(fs.readFileSync(path.join(HERE, "deploy.json"), "utf8"));

function readVector(entry) {
  const buffer = fs.readFileSync(path.join(HERE, "vectors", entry.file));
  return new Float32Array(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength));
}

async function main() {
  const args = process.argv.slice(2);
  const session = await ort.InferenceSession.create(path.join(HERE, "model.onnx"));
  if (args[0] === "--check") {
    const vectors = JSON.parse(fs.readFileSync(path.join(HERE, "vectors", "vectors.json"), "utf8"));
    const input = vectors.inputs[INFO.input], want = vectors.outputs.probabilities;
    const out = await session.run({ [INFO.input]: new ort.Tensor("float32", readVector(input), input.shape) });
    const got = out[INFO.output].data, expected = readVector(want);
    let diff = 0;
    for (let i = 0; i < expected.length; i++) diff = Math.max(diff, Math.abs(got[i] - expected[i]));
    console.log(JSON.stringify({ passed: diff <= want.atol, max_abs_diff: diff }));
    process.exit(diff <= want.atol ? 0 : 1);
  }
  if (args.length === 0) {
    console.error("give WAV files, or --check");
    process.exit(2);
  }
  const batch = new Float32Array(args.length * INFO.samples);
  try {
    args.forEach((file, i) => batch.set(readClip(fs.readFileSync(file), INFO.sample_rate, INFO.samples), i * INFO.samples));
  } catch (error) {
    console.error(`error: ${error.message}`);
    process.exit(2);
  }
  const out = await session.run({ [INFO.input]: new ort.Tensor("float32", batch, [args.length, INFO.samples]) });
  const p = out[INFO.output].data, k = INFO.class_labels.length;
  args.forEach((file, i) => {
    const row = Array.from(p.subarray(i * k, (i + 1) * k));
    const best = row.indexOf(Math.max(...row));
    const probabilities = Object.fromEntries(INFO.class_labels.map((label, j) => [label, row[j]]));
    console.log(JSON.stringify({ file, class: INFO.class_labels[best], probabilities }));
  });
}

main().catch((error) => { console.error(error.message); process.exit(1); });
