"""``zoo deploy --target serve``: a folder a process manager runs, ``zoo serve`` over a copy of the bundle.

The folder holds the bundle (``bundle/``, copied as it is, hashes and all), ``run.sh`` (``zoo serve`` on it with
this Python; ``HOST``, ``PORT`` and ``WORKERS`` from the environment, other ``zoo serve`` options as arguments),
a systemd unit that runs it (``zoo-serve-NAME.service``, with the folder's absolute path), ``requirements.txt``
and a README. Every role is served (the Open Inference Protocol needs no role handlers), so no role is asked.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any


def serve_name(model: str) -> str:
    """The name the bundle is served under: the model's name with anything but letters, digits, '-', '_' as '-'."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", model) or "model"


def write_serve_folder(bundle: Any, staging: Path, final: Path) -> dict[str, Any]:
    """Write the serve deployment of ``bundle`` (an opened :class:`zoo.bundles.Bundle`) into ``staging``, which
    will be published as ``final``; the ``deploy.json`` information."""
    name = serve_name(bundle.manifest.model)
    shutil.copytree(bundle.path, staging / "bundle", symlinks=False)
    python = shlex.quote(sys.executable)
    run = staging / "run.sh"
    run.write_text(f"""#!/bin/sh
# zoo serve on the bundle beside this file (written by zoo deploy --target serve).
# HOST (127.0.0.1), PORT (8000) and WORKERS (1) come from the environment; other zoo serve options as arguments.
# SIGTERM stops it cleanly: in-flight requests finish, then it exits 0.
here="$(cd "$(dirname "$0")" && pwd)"
exec "${{PYTHON:-{python}}}" -m zoo serve "{name}=$here/bundle" --host "${{HOST:-127.0.0.1}}" \\
    --port "${{PORT:-8000}}" --workers "${{WORKERS:-1}}" "$@"
""")
    run.chmod(0o755)
    where = final.resolve()
    unit = f"zoo-serve-{name}.service"
    (staging / unit).write_text(f"""[Unit]
Description=zoo serve {name} ({where})
After=network.target

[Service]
Environment=HOST=127.0.0.1 PORT=8000 WORKERS=1
ExecStart=/bin/sh {shlex.quote(str(where / "run.sh"))} --reload
KillSignal=SIGTERM
TimeoutStopSec=60
Restart=on-failure

[Install]
WantedBy=multi-user.target
""")
    (staging / "requirements.txt").write_text("plugzoo[serve]\n")
    (staging / "README.md").write_text(f"""# {name}: zoo serve

`./run.sh` serves the bundle in `bundle/` on http://127.0.0.1:8000 (`PORT=9000 WORKERS=4 ./run.sh` to change;
other `zoo serve` options as arguments: `./run.sh --max-batch 64 --reload`). Needs `pip install -r
requirements.txt` and the plugin of the model's family where role endpoints (predict, sample, completions) are
wanted; the Open Inference Protocol needs only zoo:

    curl http://127.0.0.1:8000/v2/models/{name}

Under systemd: copy `{unit}` to `/etc/systemd/system/`, then `systemctl enable --now {unit}`. It runs with
`--reload`: put a re-exported bundle in place of `bundle/` (a rename) and it is picked up without a restart.
""")
    return {"target": "serve", "model": name, "bundle": "bundle", "run": "run.sh", "unit": unit}


def write_marker(folder: Path, info: dict[str, Any], key: str) -> None:
    """``deploy.json``: what the folder is, with the key that says zoo made it."""
    (folder / "deploy.json").write_text(json.dumps({**info, key: 1}, indent=2))
