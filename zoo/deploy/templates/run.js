// Run the deployed model with onnxruntime-node: preprocessing is inside model.onnx.
//   node run.js IMAGE.png...     classify PNG files (prints JSON, like `zoo predict --json`)
//   node run.js --samples N      draw N images from the sampler (writes sample_K.png)
//   node run.js --check          run the test vectors in vectors/ and compare
const fs = require("fs");
const path = require("path");
const ort = require("onnxruntime-node");
const { PNG } = require("pngjs");

const HERE = __dirname;
const INFO = JSON.parse(fs.readFileSync(path.join(HERE, "deploy.json"), "utf8"));
const TYPES = { uint8: Uint8Array, float32: Float32Array, int64: BigInt64Array };

function readPng(file) {
  const png = PNG.sync.read(fs.readFileSync(file));  // RGBA, 8 bits per channel
  const c = INFO.channels;
  const out = new Uint8Array(png.width * png.height * c);
  for (let i = 0; i < png.width * png.height; i++) {
    const [r, g, b] = [png.data[4 * i], png.data[4 * i + 1], png.data[4 * i + 2]];
    if (c === 1) out[i] = r === g && g === b ? r : Math.round(0.299 * r + 0.587 * g + 0.114 * b);
    else out.set([r, g, b], 3 * i);
  }
  return new ort.Tensor("uint8", out, [1, png.height, png.width, c]);
}

function readVector(entry) {
  const buffer = fs.readFileSync(path.join(HERE, "vectors", entry.file));
  const Type = TYPES[entry.dtype];
  const copy = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
  return new ort.Tensor(entry.dtype, new Type(copy), entry.shape);
}

function noiseValues(count, law) {  // seeded for repeatability: U(-1, 1), else N(0, 1) by Box–Muller
  let seed = 12345;
  const uniform = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) + 1) / 2147483649;
  if (law === "uniform") return Float32Array.from({ length: count }, () => 2 * uniform() - 1);
  return Float32Array.from({ length: count }, () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()));
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
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(Number(got[i]) - Number(want[i])));
      result.max_abs_diff[name] = worst;
      result.passed = result.passed && worst <= entry.atol;
    }
  } else if (args[0] === "--samples") {
    const count = Number(args[1] || 16), noise = INFO.noise;
    const feeds = { [noise.input]: new ort.Tensor("float32", noiseValues(count * noise.shape[1], noise.distribution_id), [count, noise.shape[1]]) };
    if (noise.label_input) {
      feeds[noise.label_input] = new ort.Tensor("int64", BigInt64Array.from({ length: count }, (_, k) => BigInt(k % noise.num_classes)), [count]);
    }
    const pixels = (await session.run(feeds)).pixels;
    const [, h, w, c] = pixels.dims;
    for (let k = 0; k < count; k++) {
      const png = new PNG({ width: w, height: h });
      for (let i = 0; i < w * h; i++) {
        for (let j = 0; j < 3; j++) png.data[4 * i + j] = pixels.data[(k * w * h + i) * c + (c === 1 ? 0 : j)];
        png.data[4 * i + 3] = 255;
      }
      fs.writeFileSync(`sample_${k}.png`, PNG.sync.write(png));
    }
    result = { written: count, shape: pixels.dims };
  } else if (args.length) {
    result = [];
    for (const file of args) {
      const probabilities = (await session.run({ image: readPng(file) })).probabilities.data;
      let best = 0;
      probabilities.forEach((p, i) => { if (p > probabilities[best]) best = i; });
      const named = {};
      INFO.class_labels.forEach((label, i) => { named[label] = probabilities[i]; });
      result.push({ image: file, class: INFO.class_labels[best], index: best, probabilities: named });
    }
  } else {
    console.error("usage: node run.js IMAGE.png... | --samples N | --check");
    process.exit(2);
  }
  console.log(JSON.stringify(result, null, 2));
  process.exit(result.passed === false ? 1 : 0);
}

main().catch((error) => { console.error(error); process.exit(1); });
