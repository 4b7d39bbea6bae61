// Run the deployed regressor with onnxruntime-node: the standardisation is inside model.onnx.
//   node run.js ROWS.csv...   predict each CSV row (a header names the columns; prints JSON)
//   node run.js --check       run the test vectors in vectors/ and compare
const fs = require("fs");
const path = require("path");
const ort = require("onnxruntime-node");

const HERE = __dirname;
const INFO = JSON.parse(fs.readFileSync(path.join(HERE, "deploy.json"), "utf8"));

function readVector(entry) {
  const buffer = fs.readFileSync(path.join(HERE, "vectors", entry.file));
  const copy = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
  return new ort.Tensor(entry.dtype, new Float32Array(copy), entry.shape);
}

function rowsOf(text) {  // a plain CSV of numbers: header first, no quoted commas
  const lines = text.split(/\r?\n/).filter((line) => line.trim());
  const header = lines[0].replace(/^\uFEFF/, "").split(",").map((name) => name.trim());
  const index = INFO.feature_names.map((name) => header.indexOf(name));
  if (index.includes(-1)) throw new Error("missing feature columns; the model takes " + INFO.feature_names.join(", "));
  const rows = lines.slice(1).map((line) => line.split(","));
  const values = Float32Array.from(rows.flatMap((row) => index.map((i) => Number(row[i]))));
  return new ort.Tensor("float32", values, [rows.length, index.length]);
}

async function main() {
  const args = process.argv.slice(2);
  const session = await ort.InferenceSession.create(path.join(HERE, "model.onnx"));
  let result;
  if (args[0] === "--check") {
    const vectors = JSON.parse(fs.readFileSync(path.join(HERE, "vectors", "vectors.json"), "utf8"));
    const feeds = {};
    for (const [name, entry] of Object.entries(vectors.inputs)) feeds[name] = readVector(entry);
    const outputs = await session.run(feeds);
    result = { passed: true, max_abs_diff: {} };
    for (const [name, entry] of Object.entries(vectors.outputs)) {
      const want = readVector(entry).data, got = outputs[name].data;
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      result.max_abs_diff[name] = worst;
      result.passed = result.passed && worst <= entry.atol;
    }
  } else if (args.length) {
    result = [];
    for (const file of args) {
      const rows = rowsOf(fs.readFileSync(file, "utf8"));
      const values = (await session.run({ [INFO.input]: rows }))[INFO.output].data;
      const width = INFO.target_names.length;
      for (let r = 0; r < rows.dims[0]; r++) {
        const named = { input: path.basename(file) + ":" + (r + 1) };
        INFO.target_names.forEach((name, k) => { named[name] = values[r * width + k]; });
        result.push(named);
      }
    }
  } else {
    console.error("usage: node run.js ROWS.csv... | --check");
    process.exit(2);
  }
  console.log(JSON.stringify(result, null, 2));
  process.exit(Array.isArray(result) || result.passed ? 0 : 1);
}

main().catch((error) => { console.error(String(error)); process.exit(1); });
