// onnxruntime-web (WebAssembly, CPU) and tokenizers.js, both from npm (node_modules): no CDN.
import { Tokenizer } from "./node_modules/@huggingface/tokenizers/dist/tokenizers.mjs";

ort.env.wasm.wasmPaths = new URL("node_modules/onnxruntime-web/dist/", location.href).href;
ort.env.wasm.numThreads = 1;
const show = (value) => { document.getElementById("result").textContent = "RESULT " + JSON.stringify(value); };
const json = async (file) => (await fetch(file)).json();

function encode(tokenizer, text) {  // line by line, as the model was trained: split after every newline
  return text.split(/(?<=\n)/).filter((piece) => piece.length > 0)
    .flatMap((piece) => tokenizer.encode(piece, { add_special_tokens: false }).ids);
}

async function generate(info, session, promptIds, maxNewTokens) {  // greedy, with the key/value cache
  const empty = new ort.Tensor("float32", new Float32Array(0), [1, info.heads, 0, info.head_dim]);
  let feeds = { [info.input]: new ort.Tensor("int64", BigInt64Array.from(promptIds.map(BigInt)), [1, promptIds.length]) };
  for (const name of info.past) feeds[name] = empty;
  const tokens = [];
  for (let step = 0; step < Math.min(maxNewTokens, info.context - promptIds.length); step++) {
    if (info.attention_mask) {  // all ones (one prompt has no padding) over the cache and the new ids
      const total = promptIds.length + tokens.length;
      feeds[info.attention_mask] = new ort.Tensor("int64", new BigInt64Array(total).fill(1n), [1, total]);
    }
    const outputs = await session.run(feeds);
    const logits = outputs[info.logits], vocab = logits.dims[2], last = logits.dims[1] - 1;
    let best = 0;
    for (let v = 1; v < vocab; v++) if (logits.data[last * vocab + v] > logits.data[last * vocab + best]) best = v;
    tokens.push(best);
    feeds = { [info.input]: new ort.Tensor("int64", BigInt64Array.from([BigInt(best)]), [1, 1]) };
    info.past.forEach((name, i) => { feeds[name] = outputs[info.present[i]]; });
  }
  return tokens;
}

async function vector(entry) {
  return Array.from(new BigInt64Array(await (await fetch("vectors/" + entry.file)).arrayBuffer()), Number);
}

async function main() {
  const info = await json("deploy.json");
  document.getElementById("title").textContent = `${info.model} (language model)`;
  const tokenizer = new Tokenizer(await json(info.tokenizer), await json("tokenizer_config.json"));
  const session = await ort.InferenceSession.create("model.onnx", { executionProviders: ["wasm"] });
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  const run = async (prompt, maxNewTokens) => {
    const promptIds = encode(tokenizer, prompt);
    const tokens = await generate(info, session, promptIds, maxNewTokens);
    return { prompt, prompt_tokens: promptIds.length, tokens, text: tokenizer.decode(tokens) };
  };
  const params = new URLSearchParams(location.search);
  if (params.get("check")) {
    const vectors = await json("vectors/vectors.json");
    const promptIds = encode(tokenizer, info.check.prompt);
    const tokens = await generate(info, session, promptIds, info.check.max_new_tokens);
    const promptOk = same(promptIds, await vector(vectors.inputs.prompt_ids));
    const tokensOk = same(tokens, await vector(vectors.outputs.tokens));
    show({ passed: promptOk && tokensOk, prompt_ids_equal: promptOk, tokens_equal: tokensOk });
  } else if (params.get("prompt") !== null) {
    show(await run(params.get("prompt"), Number(params.get("max_new_tokens") || 50)));
  } else {
    document.getElementById("result").textContent = "ready";
  }
  document.getElementById("go").onclick = async () => show(await run(document.getElementById("prompt").value, 50));
}

main().catch((error) => show({ error: String(error) }));
