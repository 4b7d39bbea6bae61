"""Run the deployed language model with onnxruntime, tokenizers and numpy (no zoo, no torch).

    python run.py --prompt TEXT [--max-new-tokens N]   greedy continuation (prints JSON: tokens and text)
    python run.py --check                              the prompt in deploy.json must give the test vectors
"""

import argparse
import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

HERE = Path(__file__).resolve().parent
INFO = json.loads((HERE / "deploy.json").read_text())


def encode(tokenizer, text):
    """Line by line, as the model was trained: split after every newline, each piece encoded alone."""
    pieces = [piece for piece in re.split(r"(?<=\n)", text) if piece]
    return [i for enc in tokenizer.encode_batch(pieces, add_special_tokens=False) for i in enc.ids]


def generate(session, prompt_ids, max_new_tokens):
    """Greedy tokens: one call with the whole prompt and an empty cache, then one call per token. The attention
    mask covers the cache and the new ids: all ones, one prompt has no padding."""
    empty = np.zeros((1, INFO["heads"], 0, INFO["head_dim"]), np.float32)
    cache = {name: empty for name in INFO["past"]}
    ids = np.asarray([prompt_ids], np.int64)
    tokens = []
    for _ in range(min(max_new_tokens, INFO["context"] - len(prompt_ids))):
        feeds = {INFO["input"]: ids, **cache}
        if INFO.get("attention_mask"):  # (bundles exported before the mask have none)
            feeds[INFO["attention_mask"]] = np.ones((1, len(prompt_ids) + len(tokens)), np.int64)
        outputs = session.run(None, feeds)
        token = int(np.argmax(outputs[0][0, -1]))
        tokens.append(token)
        cache = dict(zip(INFO["past"], outputs[1:], strict=True))
        ids = np.asarray([[token]], np.int64)
    return tokens


def read_vector(entry):
    return np.fromfile(HERE / "vectors" / entry["file"], dtype=entry["dtype"]).reshape(entry["shape"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt")
    parser.add_argument("--max-new-tokens", type=int, default=50)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    tokenizer = Tokenizer.from_file(str(HERE / INFO["tokenizer"]))
    session = ort.InferenceSession(str(HERE / "model.onnx"), providers=["CPUExecutionProvider"])
    if args.check:
        vectors = json.loads((HERE / "vectors" / "vectors.json").read_text())
        want_prompt = read_vector(vectors["inputs"]["prompt_ids"])[0].tolist()
        want_tokens = read_vector(vectors["outputs"]["tokens"])[0].tolist()
        prompt_ids = encode(tokenizer, INFO["check"]["prompt"])
        tokens = generate(session, prompt_ids, INFO["check"]["max_new_tokens"])
        result = {"passed": prompt_ids == want_prompt and tokens == want_tokens,
                  "prompt_ids_equal": prompt_ids == want_prompt, "tokens_equal": tokens == want_tokens}
    elif args.prompt:
        prompt_ids = encode(tokenizer, args.prompt)
        if not prompt_ids or len(prompt_ids) >= INFO["context"]:
            parser.error(f"the prompt must be 1 to {INFO['context'] - 1} tokens (it is {len(prompt_ids)})")
        tokens = generate(session, prompt_ids, args.max_new_tokens)
        result = {"prompt": args.prompt, "prompt_tokens": len(prompt_ids), "tokens": tokens,
                  "text": tokenizer.decode(tokens)}
    else:
        parser.error("give --prompt TEXT or --check")
    print(json.dumps(result))
    return 0 if result.get("passed", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
