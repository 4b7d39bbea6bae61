"""``python -m zoo`` runs the CLI (torchrun and ``--nproc`` use this form).

``-m`` puts the current folder first on ``sys.path``; a ``zoo/`` folder there (say, beside a checkout)
would then shadow parts of the installed package (``zoo.plugins`` as an empty namespace). This
module is the installed one, so it takes the current folder off the path and imports zoo afresh.
"""

import os
import sys


def _unshadow() -> None:
    home = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the folder that holds this zoo
    cwd = os.getcwd()
    if sys.path and sys.path[0] in ("", cwd) and os.path.realpath(cwd) != os.path.realpath(home):
        del sys.path[0]
        for name in [m for m in sys.modules if m == "zoo" or m.startswith("zoo.")]:
            del sys.modules[name]


_unshadow()

from zoo.cli import main  # noqa: E402 - only once the path is safe

main()
