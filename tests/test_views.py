"""Views per device: the config's [[views]], and a view page in Chromium kept in sync with a full page."""

from __future__ import annotations

import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.config import load_config, parse_config
from bridge.errors import ConfigError
from tests.browser import Pages, fader_point, shown, wait_shows
from tests.helpers import BridgeProcess, wait_until, write_config

SHOW = """
[[controls]]
id = "kick"
type = "range"
label = "Kick"
min = 0
max = 10
step = 1
value = 5
group = "Drums"

[[controls]]
id = "snare"
type = "range"
label = "Snare"
min = 0
max = 10
step = 1
value = 5
group = "Drums"

[[controls]]
id = "vocal"
type = "range"
label = "Vocal"
min = 0
max = 10
step = 1
value = 5
group = "Front"

[[controls]]
id = "click"
type = "toggle"
label = "Click"
group = "Monitors"

[[controls]]
id = "cue"
type = "text"
label = "Cue"
group = "Front"

[[views]]
name = "drums"
groups = ["Drums"]
controls = ["click"]

[[views]]
name = "foh"
controls = ["vocal", "cue"]
"""

DRUMS = ["kick", "snare", "click"]


def config_with_views(tmp_path: Path, views: str) -> Path:
    shown_controls = SHOW.split("[[views]]")[0]
    return write_config(tmp_path, controls=shown_controls + views)


# -- Config ------------------------------------------------------------------------


@pytest.mark.unit
def test_views_name_controls_and_groups_in_config_order(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, controls=SHOW))
    assert [(v.name, v.controls) for v in config.views] == [
        ("drums", ("kick", "snare", "click")),
        ("foh", ("vocal", "cue")),
    ]
    assert load_config(config_with_views(tmp_path, "")).views == ()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("views", "message"),
    [
        ('[[views]]\nname = "a"\ncontrols = ["kick", "tom"]\n', r"views\[0\] \(a\)\.controls: unknown control 'tom'"),
        ('[[views]]\nname = "a"\ngroups = ["Brass"]\n', r"views\[0\] \(a\)\.groups: unknown group 'Brass' \(groups: "),
        (
            '[[views]]\nname = "a"\ncontrols = ["kick"]\n[[views]]\nname = "a"\ncontrols = ["cue"]\n',
            r"views\[1\] \(a\)\.name: duplicate view name 'a' \(also views\[0\]\)",
        ),
        ('[[views]]\nname = "a"\n', r"views\[0\] \(a\): expected controls = \[...\] or groups = \[...\]"),
        ('[[views]]\nname = "a"\ncontrols = []\n', r"views\[0\] \(a\): expected controls"),
        ('[[views]]\nname = "front of house"\ncontrols = ["kick"]\n', r"views\[0\]\.name: expected a name of letters"),
        ('[[views]]\ncontrols = ["kick"]\n', r"views\[0\]\.name: expected a name"),
        ('[[views]]\nname = "a"\ncontrols = "kick"\n', r"views\[0\] \(a\)\.controls: expected a list of strings"),
        ('[[views]]\nname = "a"\ncontrol = ["kick"]\n', r"views\[0\]\.control: unknown key"),
    ],
)
def test_bad_views_are_config_errors(tmp_path: Path, views: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(config_with_views(tmp_path, views))


@pytest.mark.unit
def test_views_that_are_not_tables_are_a_config_error(tmp_path: Path) -> None:
    data = tomllib.loads(SHOW)
    data["views"] = "drums"
    with pytest.raises(ConfigError, match=r"views: expected \[\[views\]\] tables"):
        parse_config(data, tmp_path / "show.toml")


# -- In Chromium ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def show(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    proc = BridgeProcess(write_config(tmp_path_factory.mktemp("views"), controls=SHOW)).start()
    yield proc
    proc.stop()


def test_the_drums_view_shows_exactly_its_controls_and_stays_in_sync_with_a_full_page(
    show: BridgeProcess, pages: Pages
) -> None:
    show.put_values(kick=5, snare=5, vocal=5, click=0, cue="")
    full = pages.open(show.url)
    drums = pages.open(show.url + "/?view=drums")
    on_page = drums.eval_on_selector_all("[data-control]", "els => els.map((el) => el.dataset.control)")
    assert on_page == DRUMS
    assert drums.locator("#vocal").count() == 0 and drums.locator("#cue").count() == 0
    assert full.eval_on_selector_all("[data-control]", "els => els.length") == 5
    assert drums.title().startswith("drums")
    assert drums.locator("#scenes").count() == 0  # the drummer's phone: faders only

    # The drummer moves a fader: the full page follows.
    x, y = fader_point(drums, "kick", 0.5)
    x_end, _ = fader_point(drums, "kick", 0.9)
    drums.mouse.move(x, y)
    drums.mouse.down()
    drums.mouse.move(x_end, y, steps=8)
    drums.mouse.up()
    final = shown(drums, "kick")
    assert final >= 8
    wait_shows(full, "kick", final)
    # The full page changes the drums' controls: the view follows.
    full.locator('[data-control="click"] label').click()
    wait_shows(drums, "click", 1)
    show.put_values(snare=2)
    wait_shows(drums, "snare", 2)
    # A change to a control the view does not show reaches it unseen and harms nothing ...
    show.put_values(vocal=9, cue="verse 2")
    wait_shows(full, "vocal", 9)
    wait_shows(full, "cue", "verse 2")
    show.put_values(snare=3)
    wait_shows(drums, "snare", 3)
    assert drums.eval_on_selector_all("[data-control]", "els => els.length") == 3
    # ... and the whole show is one tap away, with every value current.
    assert drums.locator('nav.views a[aria-current="page"]').inner_text() == "drums"
    drums.locator("nav.views a", has_text="All").click()
    drums.wait_for_url(show.url + "/")
    wait_shows(drums, "vocal", 9)
    assert shown(drums, "cue") == "verse 2" and shown(drums, "kick") == final


def test_an_unknown_view_is_a_clear_message_listing_the_views(show: BridgeProcess, pages: Pages) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(show.url + "/?view=horns", timeout=5)
    assert err.value.code == 404
    page = pages.open(show.url + "/?view=horns", connected=False)
    assert "No view called horns" in page.locator("h1").inner_text()
    assert page.locator("#views a").all_inner_texts() == ["drums", "foh"]
    page.locator("#views a", has_text="foh").click()
    page.wait_for_url(show.url + "/?view=foh")
    wait_until(
        lambda: (
            page.eval_on_selector_all("[data-control]", "els => els.map((el) => el.dataset.control)")
            == ["vocal", "cue"]
        ),
        what="the foh view",
    )


def test_a_view_survives_the_join_key(tmp_path: Path, pages: Pages) -> None:
    key = "drum-kit-key"
    proc = BridgeProcess(write_config(tmp_path, extra=f'key = "{key}"\n', controls=SHOW)).start()
    try:
        page = pages.open(f"{proc.url}/?key={key}&view=drums")
        assert page.url == proc.url + "/?view=drums"  # the key went to the cookie, the view stayed
        assert page.eval_on_selector_all("[data-control]", "els => els.length") == 3
    finally:
        proc.stop()


@pytest.mark.unit
def test_a_view_may_list_pages(tmp_path: Path) -> None:
    paged = SHOW.split("[[views]]")[0].replace('group = "Drums"', 'group = "Drums"\npage = "Band"')
    config = load_config(
        write_config(tmp_path, controls=paged + '[[views]]\nname = "band"\npages = ["Band"]\ncontrols = ["cue"]\n')
    )
    assert config.views[0].controls == ("kick", "snare", "cue")
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, controls=paged + '[[views]]\nname = "x"\npages = ["Nope"]\n'))
    assert err.value.key == "views[0] (x).pages" and "unknown page 'Nope' (pages: 'Band', 'Main')" in err.value.expected
    # The controls without a page are the tab "Main" beside the paged ones: a view may list it too.
    main = load_config(write_config(tmp_path, controls=paged + '[[views]]\nname = "rest"\npages = ["Main"]\n'))
    assert "kick" not in main.views[0].controls and "cue" in main.views[0].controls
