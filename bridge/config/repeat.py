"""``[[repeat]]``: sixteen channel strips written once, expanded at load.

::

    [[repeat]]
    n = 16                  # or from = 1, to = 16

    [[repeat.controls]]     # one table per control of the strip
    id = "fader{n}"
    type = "range"
    osc = "/ch/{n:02}/mix/fader"
    midi = { channel = 1, cc = "{n+10}" }

Every string of each template may use ``{n}``, ``{n:02}`` (a format spec)
and simple integer arithmetic on ``n`` (``{n+10}``, ``{n*2-1}``); ``{{`` and
``}}`` stand for braces. Where the config expects a number (MIDI numbers
and channels, ``value``, ``min``, ``max``, ``step``), a string that is one
whole placeholder becomes that number. The result is the same as writing
the controls out by hand; each remembers the entry and the ``n`` that made
it, so an error names them.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from typing import Any

from bridge.config.reader import Reader

#: The most controls one [[repeat]] entry may make.
MAX_COUNT = 1000
#: Keys whose value is a number: a whole placeholder there becomes one.
NUMBER_KEYS = {"channel", "cc", "note", "nrpn", "value", "min", "max", "step", "decimals"}
_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_OPS: dict[type, Callable[[int, int], int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


class TemplateError(ValueError):
    """A placeholder that cannot be filled in; the message says why."""


def expand(reader: Reader, raw: object) -> list[tuple[str, dict[str, Any]]]:
    """Every control the ``[[repeat]]`` tables make, with where each comes from ("repeat[0] n=3 controls[1]")."""
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        reader.fail("repeat", "expected [[repeat]] tables")
    made: list[tuple[str, dict[str, Any]]] = []
    for index, table in enumerate(raw):
        where = f"repeat[{index}]"
        reader.keys(table, where, {"n", "from", "to", "controls"})
        numbers = _numbers(reader, table, where)
        templates = table.get("controls")
        if not isinstance(templates, list) or not templates or not all(isinstance(t, dict) for t in templates):
            reader.fail(
                f"{where}.controls", 'expected a list of control tables, e.g. controls = [ { id = "fader{n}", ... } ]'
            )
        for n in numbers:
            for t_index, template in enumerate(templates):
                place = f"{where} n={n} controls[{t_index}]"
                try:
                    made.append((place, fill(template, n)))
                except TemplateError as err:
                    reader.fail(place, str(err))
    return made


def _numbers(reader: Reader, table: dict[str, Any], where: str) -> range:
    if "n" in table:
        if "from" in table or "to" in table:
            reader.fail(where, "expected either n = count, or from = first and to = last, not both")
        count = reader.get(table, "n", f"{where}.n", int, 0)
        if not 1 <= count <= MAX_COUNT:
            reader.fail(f"{where}.n", f"expected 1-{MAX_COUNT}, got {count}")
        return range(1, count + 1)
    if "from" not in table or "to" not in table:
        reader.fail(where, "expected n = count (1, 2, ... n), or from = first and to = last")
    first = reader.get(table, "from", f"{where}.from", int, 0)
    last = reader.get(table, "to", f"{where}.to", int, 0)
    if not 1 <= last - first + 1 <= MAX_COUNT:
        reader.fail(f"{where}.to", f"expected from..to to make 1-{MAX_COUNT} controls, got {first}..{last}")
    return range(first, last + 1)


def fill(template: Any, n: int, key: str = "") -> Any:
    """``template`` with every placeholder filled for ``n``; tables and lists all the way down."""
    if isinstance(template, dict):
        return {k: fill(v, n, k) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(item, n, key) for item in template]
    if not isinstance(template, str):
        return template
    whole = _FIELD.fullmatch(template)
    if key in NUMBER_KEYS and whole is not None and whole.group(1) is not None:
        return _number(whole.group(1).partition(":")[0], n)
    return _FIELD.sub(lambda m: _replace(m, n), template)


def _replace(match: re.Match[str], n: int) -> str:
    if match.group(0) in ("{{", "}}"):
        return match.group(0)[0]
    field = match.group(1) or ""
    expression, _, spec = field.partition(":")
    value = _number(expression, n)
    try:
        return format(value, spec)
    except ValueError as err:
        raise TemplateError(f"bad format {spec!r} in {{{field}}}: {err}") from err


def _number(expression: str, n: int) -> int:
    text = expression.strip()
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as err:
        raise TemplateError(f"{{{expression}}} is not n or arithmetic on n such as {{n+10}}") from err
    return _evaluate(tree.body, n, expression)


def _evaluate(node: ast.AST, n: int, expression: str) -> int:
    if isinstance(node, ast.Name):
        if node.id != "n":
            raise TemplateError(f"unknown field {node.id!r} in {{{expression}}}: the only field is n")
        return n
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        right = _evaluate(node.right, n, expression)
        if isinstance(node.op, ast.FloorDiv | ast.Mod) and right == 0:
            raise TemplateError(f"division by zero in {{{expression}}}")
        return _OPS[type(node.op)](_evaluate(node.left, n, expression), right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand, n, expression)
    raise TemplateError(f"{{{expression}}} is not n or arithmetic on n (+ - * // %) such as {{n+10}}")
