// Run the deployed model with onnxruntime-node: preprocessing is inside model.onnx.
const USAGE = `usage:
  node run.js IMAGE...                 classify PNG/JPEG files (prints JSON, like \`zoo predict --json\`)
  node run.js --samples N [--seed S]   draw N images from the sampler (writes sample_K.png; seed default 0)
  node run.js --check                  run the test vectors in vectors/ and compare
  node run.js --pixels IMAGE...        the uint8 pixels the graph receives for each IMAGE (JSON)
Images are decoded by decode.js, zoo's one rule: the same pixels as in training, \`zoo predict\`, python and the
browser.`;
const fs = require("fs");
const path = require("path");

const HERE = __dirname;
const TYPES = { uint8: Uint8Array, float32: Float32Array, int64: BigInt64Array };

class Refused extends Error {}  // bad input: one line on stderr, exit 2

const info = () => JSON.parse(fs.readFileSync(path.join(HERE, "deploy.json"), "utf8"));

function readImage(file, channels) {  // 1×H×W×C uint8 by decode.js
  const { pixels } = require("./decode.js");
  let bytes;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    throw new Refused(error.code === "ENOENT" ? `${file} does not exist`
      : error.code === "EISDIR" ? `${file} is a folder; give image files` : `cannot read ${file}: ${error.message}`);
  }
  try {
    return pixels(bytes, channels);
  } catch (error) {
    throw new Refused(`${file} is not a readable PNG/JPEG image (${String(error.message || error).split("\n")[0]})`);
  }
}

function tensorOf(ort, image) {
  return new ort.Tensor("uint8", image.data, [1, image.height, image.width, image.channels]);
}

function readVector(ort, entry) {
  const buffer = fs.readFileSync(path.join(HERE, "vectors", entry.file));
  const Type = TYPES[entry.dtype];
  const copy = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
  return new ort.Tensor(entry.dtype, new Type(copy), entry.shape);
}

function parse(args) {
  const options = { images: [], seed: 0 };
  const number = (flag, text) => {
    if (!/^\d+$/.test(text || "")) throw new Refused(`${flag} takes a whole number >= 0, not ${JSON.stringify(text)}`);
    return Number(text);
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") options.help = true;
    else if (arg === "--check") options.check = true;
    else if (arg === "--samples") options.samples = number(arg, args[++i]);
    else if (arg === "--seed") options.seed = number(arg, args[++i]);
    else if (arg === "--pixels") options.pixels = true;
    else if (arg.startsWith("--")) throw new Refused(`unknown option ${arg} (node run.js --help shows the usage)`);
    else options.images.push(arg);
  }
  if (options.seed > 0xffffffff) throw new Refused("--seed must be below 2^32");
  return options;
}

async function main(args) {
  const options = parse(args);
  if (options.help) { console.log(USAGE); return undefined; }
  const meta = info();
  if (options.pixels) {
    if (!options.images.length) throw new Refused("--pixels needs image files");
    const images = options.images.map((file) => readImage(file, meta.channels));
    return images.map((image, k) => ({ image: options.images[k], shape: [image.height, image.width, image.channels],
      data: Array.from(image.data) }));
  }
  const ort = require("onnxruntime-node");
  if (options.check) {
    const session = await ort.InferenceSession.create(path.join(HERE, "model.onnx"));
    const vectors = JSON.parse(fs.readFileSync(path.join(HERE, "vectors", "vectors.json"), "utf8"));
    const feeds = {};
    for (const [name, entry] of Object.entries(vectors.inputs)) feeds[name] = readVector(ort, entry);
    const outputs = await session.run(feeds);
    const result = { passed: true, max_abs_diff: {} };
    for (const [name, entry] of Object.entries(vectors.outputs)) {
      const want = readVector(ort, entry).data, got = outputs[name].data;
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(Number(got[i]) - Number(want[i])));
      result.max_abs_diff[name] = worst;
      result.passed = result.passed && worst <= entry.atol;
    }
    return result;
  }
  if (options.samples !== undefined) {
    if (meta.kind === "classifier") throw new Refused("this model is a classifier: give image files, not --samples");
    if (options.samples < 1) throw new Refused("--samples must be at least 1");
    const { PNG } = require("pngjs");
    const session = await ort.InferenceSession.create(path.join(HERE, "model.onnx"));
    const count = options.samples, noise = meta.noise;
    const values = require("./noise.js").noise(count * noise.shape[1], noise.distribution_id, options.seed);
    const feeds = { [noise.input]: new ort.Tensor("float32", values, [count, noise.shape[1]]) };
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
    return { written: count, shape: pixels.dims, seed: options.seed };
  }
  if (!options.images.length) throw new Refused("give image files, --samples N or --check (node run.js --help shows the usage)");
  if (meta.kind !== "classifier") throw new Refused(`this model is a ${meta.kind}, not a classifier: use --samples N`);
  const images = options.images.map((file) => readImage(file, meta.channels));  // every file checked first
  const session = await ort.InferenceSession.create(path.join(HERE, "model.onnx"));
  const result = [];
  for (const [k, file] of options.images.entries()) {
    const probabilities = (await session.run({ image: tensorOf(ort, images[k]) })).probabilities.data;
    let best = 0;
    probabilities.forEach((p, i) => { if (p > probabilities[best]) best = i; });
    const named = {};
    meta.class_labels.forEach((label, i) => { named[label] = probabilities[i]; });
    result.push({ image: file, class: meta.class_labels[best], index: best, probabilities: named });
  }
  return result;
}

const args = process.argv.slice(2);
main(args).then((result) => {
  if (result !== undefined) console.log(JSON.stringify(result, null, args.includes("--pixels") ? 0 : 2));
  process.exit(result && result.passed === false ? 1 : 0);
}).catch((error) => {
  console.error(`run.js: ${error instanceof Refused ? error.message : String(error.message || error).split("\n")[0]}`);
  process.exit(error instanceof Refused ? 2 : 1);
});
