"""The ``stage-bridge`` console script: ``stage-bridge --config FILE``, ``--check FILE``, ``--version``.

A console script imports its module before it calls anything, so this one
imports nothing but the server model: gevent patches the standard library
first, as ``python -m bridge`` does, and only then is the app imported.
"""

from __future__ import annotations


def main() -> int:
    """Patch for the server model, then run the same command line as ``python -m bridge``."""
    from bridge.concurrency import patch

    patch()
    from bridge.__main__ import main as run

    return run(prog="stage-bridge")
