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
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of streaming the text.")
def generate(bundle: str, prompt: str, max_new_tokens: int, temperature: float, top_k: int, top_p: float, seed: int,
             as_json: bool) -> None:
    """Continue a prompt with a language-model bundle, under ONNX Runtime alone (torch is not imported)."""
    from zoo_lm.generate import Sampling, generate_text

    sampling = Sampling(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    if as_json:
        click.echo(json.dumps(generate_text(bundle, prompt, max_new_tokens=max_new_tokens, sampling=sampling),
                              indent=2, default=str))
        return
    generate_text(bundle, prompt, max_new_tokens=max_new_tokens, sampling=sampling,
                  write=lambda piece: click.echo(piece, nl=False))
    click.echo()
