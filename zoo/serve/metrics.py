"""Prometheus metrics (``/metrics``) through ``prometheus-client``: requests, latencies, batch sizes, queue depth.

With several worker processes the supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` before starting them, so
``/metrics`` from any worker adds up every worker's counts (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter("zoo_serve_requests_total", "HTTP requests answered", ["route", "status"])
LATENCY = Histogram("zoo_serve_request_seconds", "Time from request to response", ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
BATCH_ROWS = Histogram("zoo_serve_batch_rows", "Rows per ONNX Runtime call", ["model"],
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
BATCH_REQUESTS = Histogram("zoo_serve_batch_requests", "Requests per ONNX Runtime call", ["model"],
                           buckets=(1, 2, 4, 8, 16, 32, 64, 128))
QUEUE_DEPTH = Gauge("zoo_serve_queue_depth", "Requests waiting for a batch", ["model"], multiprocess_mode="livesum")
LM_ACTIVE = Gauge("zoo_serve_lm_active_sequences", "Sequences being generated", ["model"],
                  multiprocess_mode="livesum")
LM_TOKENS = Counter("zoo_serve_generated_tokens_total", "Tokens generated", ["model"])
REJECTED = Counter("zoo_serve_rejected_total", "Requests refused with 503 (queue full)", ["model"])


def render() -> tuple[bytes, str]:
    """The exposition text of every metric (summed over workers in multiprocess mode) and its content type."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry: Any = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
