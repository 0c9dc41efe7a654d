"""Every theme keeps WCAG AA contrast for text: the style sheet's custom properties, read and measured."""

from __future__ import annotations

import re

import pytest

from bridge.config.sections import THEMES
from tests.helpers import ROOT

STYLE = ROOT / "static" / "css" / "stage.css"
#: WCAG 2.x AA for normal text.
AA = 4.5

#: (text, background): every pair of custom properties the page draws text with.
TEXT_PAIRS = [
    ("text", "bg"),
    ("text", "panel"),
    ("text", "raised"),
    ("text", "field"),
    ("text", "bar-bg"),
    ("muted", "bg"),
    ("muted", "panel"),
    ("muted", "raised"),
    ("muted", "bar-bg"),
    ("value", "raised"),
    ("accent", "bg"),
    ("accent", "panel"),
    ("accent", "raised"),
    ("accent", "field"),
    ("on-accent", "accent"),
    ("on-accent-soft", "accent-soft"),
    ("bad-text", "bad-bg"),
    ("bad-text", "raised"),
    ("bad-text", "panel"),
    ("warn-text", "warn-bg"),
    ("info-text", "info-chip"),
    ("text", "info-bg"),
    ("warn", "raised"),
    ("muted", "field"),
    ("value", "field"),
    ("info-text", "field"),
]


def blocks(css: str) -> dict[str, dict[str, str]]:
    """The custom properties of ``:root`` and of each ``:root[data-theme="..."]`` block."""
    found: dict[str, dict[str, str]] = {}
    for selector, body in re.findall(r"(:root(?:\[data-theme=\"[a-z]+\"\])?)\s*\{([^}]*)\}", css):
        theme = re.search(r'"([a-z]+)"', selector)
        props = dict(re.findall(r"--([a-z-]+):\s*([^;]+);", re.sub(r"/\*.*?\*/", "", body, flags=re.S)))
        found.setdefault(theme.group(1) if theme else "", {}).update(props)
    return found


def theme(name: str) -> dict[str, str]:
    """A theme's properties: the root's (the dark look), with the theme's own over them."""
    found = blocks(STYLE.read_text(encoding="utf-8"))
    return {**found[""], **found.get(name, {})} if name != "dark" else found[""]


def rgba(text: str) -> tuple[float, float, float, float]:
    text = text.strip()
    if text.startswith("#") and len(text) == 7:
        return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16), 1.0
    match = re.fullmatch(r"rgba\((\d+),\s*(\d+),\s*(\d+),\s*([0-9.]+)\)", text)
    assert match, f"not a colour this test reads: {text!r}"
    r, g, b, a = match.groups()
    return int(r), int(g), int(b), float(a)


def over(colour: tuple[float, float, float, float], under: tuple[float, float, float, float]) -> tuple[float, ...]:
    """A translucent colour composited over an opaque one."""
    alpha = colour[3]
    return tuple(colour[i] * alpha + under[i] * (1 - alpha) for i in range(3))


def luminance(rgb: tuple[float, ...]) -> float:
    """WCAG relative luminance of an sRGB colour (0-255 channels)."""
    channels = []
    for value in rgb[:3]:
        c = value / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.mark.unit
def test_the_three_themes_are_in_the_style_sheet() -> None:
    found = blocks(STYLE.read_text(encoding="utf-8"))
    assert set(THEMES) == {"dark", "light", "contrast"}
    assert {"light", "contrast"} <= set(found)
    # Each theme sets every colour the dark one does: nothing falls back to a dark colour on a light page.
    colours = {k for k, v in found[""].items() if v.startswith(("#", "rgba"))}
    for name in ("light", "contrast"):
        assert colours - set(found[name]) == set(), name


@pytest.mark.unit
@pytest.mark.parametrize("name", THEMES)
def test_every_text_colour_meets_wcag_aa_on_its_backgrounds(name: str) -> None:
    props = theme(name)
    page = rgba(props["bg"])
    low = []
    for fg, bg in TEXT_PAIRS:
        back = over(rgba(props[bg]), page)
        ratio = contrast(over(rgba(props[fg]), back + (1.0,)), back)
        if ratio < AA:
            low.append(f"--{fg} on --{bg}: {ratio:.2f}")
    assert low == []


@pytest.mark.unit
def test_the_measure_is_wcag_s() -> None:
    assert contrast((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast((118, 118, 118), (255, 255, 255)) == pytest.approx(4.54, abs=0.01)  # WCAG's own example
