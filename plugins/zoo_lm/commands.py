"""``zoo generate``, the lm plugin's command (added through ``register_commands``): no torch."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("bundle", type=click.Path())
@click.option("--prompt", required=True, help="Text to continue.")
@click.option("--max-new-tokens", default=200, show_default=True, type=int, help="Tokens to generate (at most).")
@click.option("--temperature", default=1.0, show_default=True, type=float, help="0 = greedy.")
@click.option("--top-k", default=0, show_default=True, type=int, help="Sample from the K likeliest tokens (0 = all).")
@click.option("--top-p", default=1.0, show_default=True, type=float, help="Nucleus sampling mass (1 = off).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for sampling.")
@click.option("--stop", multiple=True, help="Stop before this text (repeatable); the tokenizer's end-of-text "
              "token always stops.")
@click.option("--threads", default=0, show_default=True, type=int, help="ONNX Runtime intra-op threads (0 = its "
              "default).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of streaming the text.")
def generate(bundle: str, prompt: str, max_new_tokens: int, temperature: float, top_k: int, top_p: float, seed: int,
             stop: tuple[str, ...], threads: int, as_json: bool) -> None:
    """Continue a prompt with a language-model bundle, under ONNX Runtime alone (torch is not imported). Past the
    model's context the window slides (the last half is prefilled again), and the output says so."""
    from zoo_lm.generate import Sampling, generate_text

    sampling = Sampling(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    options = {"max_new_tokens": max_new_tokens, "sampling": sampling, "stop": stop, "threads": threads}
    if as_json:
        click.echo(json.dumps(generate_text(bundle, prompt, **options), indent=2, default=str))
        return
    result = generate_text(bundle, prompt, write=lambda piece: click.echo(piece, nl=False), **options)
    click.echo()
    if result["slides"]:
        click.echo(f"zoo: the context of {result['context']} tokens filled; the window slid {result['slides']} "
                   f"time(s), each keeping the last {result['context'] // 2} tokens", err=True)
