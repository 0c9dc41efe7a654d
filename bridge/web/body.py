"""A request's JSON body, read without letting a hostile one raise."""

from __future__ import annotations

from typing import Any

from flask import Request


def json_body(request: Request, force: bool = False) -> Any:
    """The request's JSON (with ``force``, whatever its Content-Type), or None when it is none.

    Flask's ``silent`` covers text that is not JSON; JSON nested a few
    thousand levels deep (within ``max_payload``) raises ``RecursionError``
    instead, which would answer 500 and log a traceback per request.
    """
    try:
        return request.get_json(force=force, silent=True)
    except RecursionError:
        return None
