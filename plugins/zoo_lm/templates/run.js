// Run the deployed language model with onnxruntime-node and tokenizers.js (no zoo, no Python).
//   node run.js --prompt TEXT [--max-new-tokens N]   greedy continuation (prints JSON: tokens and text)
//   node run.js --check                              the prompt in deploy.json must give the test vectors
const fs = require("fs");
const path = require("path");
const ort = require("onnxruntime-node");
const { Tokenizer } = require("@huggingface/tokenizers");

const HERE = __dirname;
const INFO = JSON.parse(fs.readFileSync(path.join(HERE, "deploy.json"), "utf8"));

function encode(tokenizer, text) {  // line by line, as the model was trained: split after every newline
  return text.split(/(?<=\n)/).filter((piece) => piece.length > 0)
    .flatMap((piece) => tokenizer.encode(piece, { add_special_tokens: false }).ids);
}

async function generate(session, promptIds, maxNewTokens) {  // greedy, with the key/value cache
  const empty = new ort.Tensor("float32", new Float32Array(0), [1, INFO.heads, 0, INFO.head_dim]);
  let feeds = { [INFO.input]: new ort.Tensor("int64", BigInt64Array.from(promptIds.map(BigInt)), [1, promptIds.length]) };
  for (const name of INFO.past) feeds[name] = empty;
  const tokens = [];
  for (let step = 0; step < Math.min(maxNewTokens, INFO.context - promptIds.length); step++) {
    if (INFO.attention_mask) {  // all ones (one prompt has no padding) over the cache and the new ids
      const total = promptIds.length + tokens.length;
      feeds[INFO.attention_mask] = new ort.Tensor("int64", new BigInt64Array(total).fill(1n), [1, total]);
    }
    const outputs = await session.run(feeds);
    const logits = outputs[INFO.logits], vocab = logits.dims[2], last = logits.dims[1] - 1;
    let best = 0;
    for (let v = 1; v < vocab; v++) if (logits.data[last * vocab + v] > logits.data[last * vocab + best]) best = v;
    tokens.push(best);
    feeds = { [INFO.input]: new ort.Tensor("int64", BigInt64Array.from([BigInt(best)]), [1, 1]) };
    INFO.past.forEach((name, i) => { feeds[name] = outputs[INFO.present[i]]; });
  }
  return tokens;
}

function readVector(entry) {
  const buffer = fs.readFileSync(path.join(HERE, "vectors", entry.file));
  const copy = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
  return Array.from(new BigInt64Array(copy), Number);
}

async function main() {
  const args = process.argv.slice(2);
  const tokenizer = new Tokenizer(JSON.parse(fs.readFileSync(path.join(HERE, INFO.tokenizer), "utf8")),
    JSON.parse(fs.readFileSync(path.join(HERE, "tokenizer_config.json"), "utf8")));
  const session = await ort.InferenceSession.create(path.join(HERE, "model.onnx"));
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  let result;
  if (args[0] === "--check") {
    const vectors = JSON.parse(fs.readFileSync(path.join(HERE, "vectors", "vectors.json"), "utf8"));
    const promptIds = encode(tokenizer, INFO.check.prompt);
    const tokens = await generate(session, promptIds, INFO.check.max_new_tokens);
    const promptOk = same(promptIds, readVector(vectors.inputs.prompt_ids));
    const tokensOk = same(tokens, readVector(vectors.outputs.tokens));
    result = { passed: promptOk && tokensOk, prompt_ids_equal: promptOk, tokens_equal: tokensOk };
  } else if (args[0] === "--prompt") {
    const at = args.indexOf("--max-new-tokens");
    const promptIds = encode(tokenizer, args[1] || "");
    if (promptIds.length === 0 || promptIds.length >= INFO.context) {
      console.error(`the prompt must be 1 to ${INFO.context - 1} tokens (it is ${promptIds.length})`);
      process.exit(2);
    }
    const tokens = await generate(session, promptIds, at >= 0 ? Number(args[at + 1]) : 50);
    result = { prompt: args[1], prompt_tokens: promptIds.length, tokens, text: tokenizer.decode(tokens) };
  } else {
    console.error("usage: node run.js --prompt TEXT [--max-new-tokens N] | --check");
    process.exit(2);
  }
  console.log(JSON.stringify(result));
  process.exit(result.passed === false ? 1 : 0);
}

main().catch((error) => { console.error(String(error)); process.exit(1); });
