"""``zoo generate``, the lm plugin's command (added through ``register_commands``): no torch."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("bundle", type=click.Path())
@click.option("--prompt", "prompts", multiple=True, help="Text to continue (repeatable: several prompts run as one "
              "batch).")
@click.option("--prompts-file", type=click.Path(), help="A UTF-8 file of prompts, one per line (blank lines "
              "skipped), after any --prompt; all run as one batch.")
@click.option("--max-new-tokens", default=200, show_default=True, type=int, help="Tokens to generate (at most).")
@click.option("--temperature", default=1.0, show_default=True, type=float, help="0 = greedy.")
@click.option("--top-k", default=0, show_default=True, type=int, help="Sample from the K likeliest tokens (0 = all).")
@click.option("--top-p", default=1.0, show_default=True, type=float, help="Nucleus sampling mass (1 = off).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for sampling.")
@click.option("--stop", multiple=True, help="Stop before this text (repeatable); the tokenizer's end-of-text "
              "token always stops.")
@click.option("--threads", default=0, show_default=True, type=int, help="ONNX Runtime intra-op threads (0 = its "
              "default).")
@click.option("--variant", default="fp32", show_default=True, help="The bundle's graph to run: fp32, or int8 "
              "(int8 weights, from zoo export --quantize int8; about a quarter of the bytes read per token).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of streaming the text.")
def generate(bundle: str, prompts: tuple[str, ...], prompts_file: str | None, max_new_tokens: int,
             temperature: float, top_k: int, top_p: float, seed: int, stop: tuple[str, ...], threads: int,
             variant: str, as_json: bool) -> None:
    """Continue a prompt with a language-model bundle, under ONNX Runtime alone (torch is not imported). Several
    prompts (--prompt repeated, --prompts-file) are decoded as one batch, each row ending on its own; each is
    printed under a `--- prompt N` line when the batch ends (one prompt streams). Past the model's context a
    row's window slides (the last half is prefilled again), and the output says so."""
    from zoo_lm.generate import Sampling, generate_texts

    texts = [*prompts, *(_read_prompts(prompts_file) if prompts_file else [])]
    sampling = Sampling(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    options = {"max_new_tokens": max_new_tokens, "sampling": sampling, "stop": stop, "threads": threads,
               "variant": variant}
    if as_json:
        results = generate_texts(bundle, texts, **options)
        click.echo(json.dumps(results[0] if len(results) == 1 else results, indent=2, default=str))
        return
    if len(texts) == 1:
        results = generate_texts(bundle, texts, write=lambda piece: click.echo(piece, nl=False), **options)
        click.echo()
    else:
        results = generate_texts(bundle, texts, **options)
        for number, result in enumerate(results, 1):
            click.echo(f"--- prompt {number}\n{result['prompt']}{result['text']}")
    for number, result in enumerate(results, 1):
        if result["slides"]:
            which = f"prompt {number}: " if len(results) > 1 else ""
            click.echo(f"zoo: {which}the context of {result['context']} tokens filled; the window slid "
                       f"{result['slides']} time(s), each keeping the last {result['context'] // 2} tokens", err=True)


def _read_prompts(path: str) -> list[str]:
    """The prompts of ``--prompts-file``: one per line, blank lines skipped; a missing or non-UTF-8 file is one
    line."""
    from pathlib import Path

    from zoo.errors import ZooError

    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ZooError(f"--prompts-file {path} cannot be read ({exc.strerror or exc}); give a text file of "
                       "prompts, one per line") from exc
    except UnicodeDecodeError as exc:
        raise ZooError(f"--prompts-file {path} is not UTF-8 (byte {exc.start}); save it as UTF-8") from exc
    prompts = [line for line in text.splitlines() if line.strip()]
    if not prompts:
        raise ZooError(f"--prompts-file {path} holds no prompt; write one prompt per line")
    return prompts
