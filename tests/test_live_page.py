"""Live config in a real browser (Debian's Chromium): the page takes a new surface in place.

A finger (the mouse) held on a fader while the file is saved keeps its
fader and its value; the page keeps its tab; new controls appear and
removed ones go without a page reload; a broken save shows a banner on
control pages until a good one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser import PHONE, Pages, fader_point, shown, wait_shows
from tests.helpers import BridgeProcess, Client, wait_until
from tests.test_live_config import save

Start = Callable[..., BridgeProcess]
Connect = Callable[..., Client]

HEAD = '[server]\nhost = "127.0.0.1"\nport = 5000\nstate_file = "state.json"\n'


def fader(cid: str, label: str, page: str, top: int = 100, value: int = 0) -> str:
    return (
        f'\n[[controls]]\nid = "{cid}"\ntype = "range"\nlabel = "{label}"\nmax = {top}\nvalue = {value}\n'
        f'touch = "absolute"\npage = "{page}"\n'
    )


BEFORE = HEAD + fader("house", "House", "Mix", value=30) + fader("band", "Band", "Mix") + fader("verb", "Verb", "FX")
AFTER = (
    HEAD
    + fader("house", "House", "Mix", top=50, value=30)
    + fader("verb", "Reverb", "FX")
    + fader("delay", "Delay", "FX", value=12)
)


def test_a_held_fader_and_the_tab_survive_a_reload_and_new_controls_appear_in_place(
    tmp_path: Path, bridge_factory: Start, client_factory: Connect, pages: Pages
) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text(BEFORE, encoding="utf-8")
    proc = bridge_factory(path)
    proc.put_values(house=40)
    page = pages.open(proc.url)
    page.locator('#tabs [data-page="FX"]').click()
    expect(page.locator('#tabs [data-page="FX"]')).to_have_attribute("aria-selected", "true")
    page.evaluate("document.getElementById('verb').dataset.marker = 'the same element'")

    x, y = fader_point(page, "verb", 0.2)
    page.mouse.move(x, y)
    page.mouse.down()  # held from here on
    held = shown(page, "verb")
    wait_until(lambda: proc.get_json("/api/values")["verb"] == held, what="the pressed value stored")
    other = client_factory(proc.url)
    other.send("verb", 60)  # moved elsewhere while the finger is down
    page.wait_for_function("window.stageBridge.values().verb === 60")

    page.evaluate("window.__layouts = 0; window.addEventListener('bridge:layout', () => window.__layouts++)")
    save(path, AFTER)
    page.wait_for_function("document.documentElement.dataset.generation === '2'")
    # Still under the finger: the same element, the same value, nothing sent by the swap.
    assert page.evaluate("document.getElementById('verb').dataset.marker") == "the same element"
    assert shown(page, "verb") == held
    expect(page.locator('[data-control="verb"]')).to_have_class("control range horizontal held")
    # The tab, the new control beside it, the removed one gone, no page reload.
    expect(page.locator('#tabs [data-page="FX"]')).to_have_attribute("aria-selected", "true")
    expect(page.locator("#delay")).to_be_visible()
    wait_shows(page, "delay", 12)
    expect(page.locator('[data-control="band"]')).to_have_count(0)
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert page.evaluate("window.__layouts") == 1

    page.mouse.up()
    wait_shows(page, "verb", 60)  # the value from elsewhere, on release
    expect(page.locator('label[for="verb"]')).to_have_text("Reverb")  # its new definition once let go
    assert proc.get_json("/api/values")["verb"] == 60

    # The other tab: the kept value and the new range; a move from the page still goes out.
    page.locator('#tabs [data-page="Mix"]').click()
    wait_shows(page, "house", 40)
    assert float(page.locator("#house").get_attribute("max") or 0) == 50
    page.locator("#house").focus()
    page.keyboard.press("End")
    wait_until(lambda: proc.get_json("/api/values")["house"] == 50, what="the new top of the range stored")
    other.wait_value("house", 50)


def served(tmp_path: Path, bridge_factory: Start, pages: Pages) -> tuple[Path, BridgeProcess, Page]:
    """A bridge on a config file of :data:`BEFORE`, and a page open on it."""
    path = tmp_path / "bridge.toml"
    path.write_text(BEFORE, encoding="utf-8")
    proc = bridge_factory(path)
    return path, proc, pages.open(proc.url)


def test_a_broken_save_shows_a_banner_until_a_good_one(tmp_path: Path, bridge_factory: Start, pages: Pages) -> None:
    path, proc, page = served(tmp_path, bridge_factory, pages)
    banner = page.locator("#config-error")
    expect(banner).to_be_hidden()

    save(path, BEFORE.replace('label = "Band"', "label = Band"))
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(f"{path}:")
    expect(banner).to_contain_text("is not valid TOML")
    later = pages.open(proc.url)  # joins while the file is broken: told at once
    expect(later.locator("#config-error")).to_be_visible()

    save(path, AFTER)
    expect(banner).to_be_hidden()
    expect(later.locator("#config-error")).to_be_hidden()
    expect(page.locator("#delay")).to_be_attached()


def test_a_disk_that_refuses_the_state_is_shown_until_it_takes_it_again(
    tmp_path: Path, bridge_factory: Start, pages: Pages
) -> None:
    # A full disk or a folder gone: the values flowed on, the log said it once, and the operator's
    # page showed nothing. Now control pages say so until the file is written again.
    folder = tmp_path / "show"
    folder.mkdir()
    path = tmp_path / "bridge.toml"
    path.write_text(BEFORE.replace('state_file = "state.json"', 'state_file = "show/state.json"'), encoding="utf-8")
    proc = bridge_factory(path)
    page = pages.open(proc.url)
    banner = page.locator("#save-error")
    proc.put_values(house=40)
    wait_until(lambda: (folder / "state.json").exists(), what="the first save")
    expect(banner).to_be_hidden()
    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()
    folder.write_text("not a folder", encoding="utf-8")  # every write fails, whoever runs the test
    proc.put_values(house=41)
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("state: File exists")
    later = pages.open(proc.url)  # joins meanwhile: told at once
    expect(later.locator("#save-error")).to_be_visible()
    folder.unlink()
    folder.mkdir()
    expect(banner).to_be_hidden()
    expect(later.locator("#save-error")).to_be_hidden()


def test_the_view_links_follow_the_views_of_the_file(tmp_path: Path, bridge_factory: Start, pages: Pages) -> None:
    path, _, page = served(tmp_path, bridge_factory, pages)
    links = page.locator("nav#views")
    expect(links).to_be_hidden()  # no views yet

    save(path, BEFORE + '\n[[views]]\nname = "fx"\ncontrols = ["verb"]\n')
    expect(links).to_be_visible()
    expect(links.locator("a", has_text="fx")).to_have_attribute("href", "/?view=fx")
    expect(links.locator('a[aria-current="page"]')).to_have_text("All")

    save(path, BEFORE + '\n[[views]]\nname = "mix"\ncontrols = ["house", "band"]\n')
    expect(links.locator("a", has_text="mix")).to_be_visible()
    expect(links.locator("a", has_text="fx")).to_have_count(0)

    save(path, BEFORE)
    expect(links).to_be_hidden()


def test_a_page_let_go_by_a_new_key_comes_back_when_its_key_is_put_back(
    tmp_path: Path, bridge_factory: Start, pages: Pages
) -> None:
    """Someone changes the show's key by mistake and puts it back: the phones come back by themselves
    (they stayed refused until each was reloaded by hand), with the surface of the role the key has now."""
    keyed = HEAD + 'key = "stage-key-1"\nviewer_key = "watch-key-1"\n' + fader("house", "House", "Mix", value=30)
    path = tmp_path / "bridge.toml"
    path.write_text(keyed, encoding="utf-8")
    proc = bridge_factory(path)
    page = pages.open(proc.url + "/?key=stage-key-1", viewport=PHONE, touch=True)
    root = page.locator("html")
    expect(root).to_have_attribute("data-role", "control")

    save(path, keyed.replace('"stage-key-1"', '"stage-key-2"'))
    expect(root).to_have_attribute("data-connection", "offline")
    expect(page.locator("#connection-text")).to_contain_text("Refused")
    # On a phone the long message wraps: it ran off the screen, the page scrolled sideways (a reviewer's case).
    assert page.evaluate("document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth")
    text = page.locator("#connection-text").bounding_box()
    assert text is not None and text["x"] + text["width"] <= PHONE["width"]

    save(
        path,
        keyed.replace(
            'key = "stage-key-1"\nviewer_key = "watch-key-1"', 'key = "stage-key-2"\nviewer_key = "stage-key-1"'
        ),
    )
    expect(root).to_have_attribute("data-connection", "connected")
    expect(root).to_have_attribute("data-role", "viewer")  # the key now opens the show read-only


def test_a_text_field_with_the_focus_takes_its_new_kind_at_once(
    tmp_path: Path, bridge_factory: Start, pages: Pages
) -> None:
    """Typing in a text field while the designer saves it as a fader: the fader is there at once
    (the field kept its old form, and took what was typed, until it lost the focus)."""
    text = HEAD + '\n[[controls]]\nid = "cue"\ntype = "text"\nlabel = "Cue"\nvalue = ""\n'
    path = tmp_path / "bridge.toml"
    path.write_text(text, encoding="utf-8")
    proc = bridge_factory(path)
    page = pages.open(proc.url)
    page.locator("#cue").focus()
    page.keyboard.type("4")
    save(path, text.replace('type = "text"', 'type = "range"\nmax = 10').replace('value = ""', "value = 3"))
    page.wait_for_function("document.documentElement.dataset.generation === '2'")
    expect(page.locator('[data-control="cue"]')).to_have_attribute("data-type", "range")
    expect(page.locator("#cue")).to_have_attribute("type", "range")
    wait_shows(page, "cue", 3)
