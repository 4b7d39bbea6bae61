"""``zoo serve``'s options: one frozen dataclass, handed from the command line to every worker process."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

#: The environment variable that carries the options (as JSON) from the supervisor to its worker processes.
ENV = "ZOO_SERVE_OPTIONS"


@dataclass(frozen=True)
class ServeOptions:
    """What ``zoo serve`` was asked for: the bundles (``name → folder``), where to listen, the limits."""

    bundles: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_batch: int = 32
    max_delay_ms: float = 0.0
    max_queue: int = 64
    timeout_s: float = 30.0
    max_body_mb: float = 16.0
    reload: bool = False
    reload_interval_s: float = 1.0
    threads: int = 0
    chat_template: str = ""  # a tokenizer_config.json or Jinja file for /v1/chat/completions ("" : none)

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    def to_env(self) -> None:
        """Put the options where worker processes (started afterwards) find them."""
        os.environ[ENV] = json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeOptions:
        """The options the supervisor left in the environment (defaults when there are none)."""
        raw = os.environ.get(ENV)
        return cls(**json.loads(raw)) if raw else cls()
