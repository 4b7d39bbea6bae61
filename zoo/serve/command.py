"""The ``zoo serve`` command line (click only; the server is imported when the command runs)."""

from __future__ import annotations

import click


@click.command("serve")
@click.argument("bundles", nargs=-1, required=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", default=8000, show_default=True, type=int, help="Port (0: any free one, printed).")
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes (each loads every bundle).")
@click.option("--max-batch", default=32, show_default=True, type=int, help="Most rows per batched graph call.")
@click.option("--max-delay-ms", default=0.0, show_default=True, type=float,
              help="How long a request reaching an idle graph waits for others (0: batches are what arrived "
                   "while the last one ran).")
@click.option("--max-queue", default=64, show_default=True, type=int,
              help="Requests waiting per graph per worker; beyond it 503 with Retry-After.")
@click.option("--timeout-s", default=30.0, show_default=True, type=float,
              help="Per request: body read (else 408) and answer (else 504).")
@click.option("--max-body-mb", default=16.0, show_default=True, type=float, help="Largest request body (else 413).")
@click.option("--threads", default=0, show_default=True, type=int,
              help="ONNX Runtime threads per session (0: its default).")
@click.option("--chat-template", default="", metavar="FILE",
              help="A tokenizer_config.json with 'chat_template' (or a Jinja file): enables /v1/chat/completions.")
@click.option("--reload", is_flag=True, help="Pick up a bundle re-exported in place (checked every second).")
def serve_command(bundles: tuple[str, ...], host: str, port: int, workers: int, max_batch: int, max_delay_ms: float,
                  max_queue: int, timeout_s: float, max_body_mb: float, threads: int, chat_template: str,
                  reload: bool) -> None:
    """Serve bundles over HTTP: Open Inference Protocol v2 for every graph, /v1/models/NAME/predict|sample,
    OpenAI /v1/completions (and /v1/chat/completions with --chat-template) for language models. BUNDLES are
    folders, or NAME=FOLDER."""
    from zoo.serve.options import ServeOptions
    from zoo.serve.server import parse_bundles, serve

    serve(ServeOptions(bundles=parse_bundles(list(bundles)), host=host, port=port, workers=workers,
                       max_batch=max_batch, max_delay_ms=max_delay_ms, max_queue=max_queue, timeout_s=timeout_s,
                       max_body_mb=max_body_mb, threads=threads, chat_template=chat_template,
                       reload=reload))
