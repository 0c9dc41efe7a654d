"""Views: named subsets of the controls, one per device or person.

A ``[[views]]`` table names controls and/or groups; ``/?view=NAME`` renders
only those, so a drummer's phone shows four faders while the front-of-house
laptop shows everything. A view changes what a page shows, nothing else:
every value stays in the hub and in sync everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NoReturn

from bridge.model import Control

#: A view's name goes into a URL (``/?view=drums``): the same rule as a control id.
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_VIEW_KEYS = ("name", "controls", "groups", "pages")

#: How a config error is raised: ``fail(key, expected)`` (the config reader's).
Fail = Callable[[str, str], NoReturn]


@dataclass(frozen=True)
class View:
    """A named subset of the controls, in config order."""

    name: str
    controls: tuple[str, ...]

    def shows(self, control_id: str) -> bool:
        return control_id in self.controls


def parse_views(raw: object, controls: Iterable[Control], fail: Fail) -> tuple[View, ...]:
    """Check the ``[[views]]`` tables against the controls; every misfit is a config error.

    A view lists ``controls = [ids]``, ``groups = [group names]``, ``pages
    = [page names]`` or several; it shows their union in config order. Unknown ids, groups or pages, empty
    views and duplicate names are refused, so a typo cannot silently hide
    a fader from the person who needs it.
    """
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        fail("views", "expected [[views]] tables")
    known = list(controls)
    ids = {c.id for c in known}
    groups = {c.group for c in known if c.group}
    pages = {c.page for c in known if c.page}
    # Controls without a page are on the tab "Main" when others have a page (bridge.web.pages.layout).
    main = "Main" if pages else ""

    def page_of(control: Control) -> str:
        return control.page or main

    if pages and any(not c.page for c in known):
        pages.add(main)
    seen: dict[str, int] = {}
    views: list[View] = []
    for index, table in enumerate(raw):
        where = f"views[{index}]"
        for key in table:
            if key not in _VIEW_KEYS:
                fail(f"{where}.{key}", f"unknown key; expected one of {', '.join(_VIEW_KEYS)}")
        name = table.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            fail(f"{where}.name", f"expected a name of letters, digits, _ or -, starting with a letter, got {name!r}")
        where = f"views[{index}] ({name})"
        if name in seen:
            fail(f"{where}.name", f"duplicate view name {name!r} (also views[{seen[name]}])")
        seen[name] = index
        wanted_ids = _names(table, "controls", where, fail)
        wanted_groups = _names(table, "groups", where, fail)
        wanted_pages = _names(table, "pages", where, fail)
        for cid in wanted_ids:
            if cid not in ids:
                fail(f"{where}.controls", f"unknown control {cid!r}")
        for group in wanted_groups:
            if group not in groups:
                listed = ", ".join(repr(g) for g in sorted(groups)) or "none"
                fail(f"{where}.groups", f"unknown group {group!r} (groups: {listed})")
        for page in wanted_pages:
            if page not in pages:
                listed = ", ".join(repr(p) for p in sorted(pages)) or "none"
                fail(f"{where}.pages", f"unknown page {page!r} (pages: {listed})")
        members = tuple(
            c.id
            for c in known
            if c.id in wanted_ids or (c.group and c.group in wanted_groups) or page_of(c) in wanted_pages
        )
        if not members:
            fail(where, "expected controls = [...] or groups = [...] (or pages = [...]) naming at least one control")
        views.append(View(name, members))
    return tuple(views)


def _names(table: dict[str, object], key: str, where: str, fail: Fail) -> set[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        fail(f"{where}.{key}", f"expected a list of strings, got {value!r}")
    return set(value)
