"""The editor in a real browser (Debian's Chromium), at phone size with touch: a surface built on the stage.

Every step is written to the file and applied through the live-config
path, so a second page follows it; the file the phone wrote loads after a
restart with the same surface.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from bridge.config import load_config
from tests.browser import PHONE, Pages, Touch, centre, wait_state
from tests.helpers import BridgeProcess, wait_until

Start = Callable[..., BridgeProcess]
KEY = "crew-key-3"

HEAD = f'# Built on the stage.\n[server]\nhost = "127.0.0.1"\nport = 5000\nstate_file = "state.json"\nkey = "{KEY}"\n'


def saved(page: Page) -> None:
    expect(page.locator("#editor-status")).to_have_attribute("data-state", "saved")


def add(page: Page, kind: str) -> None:
    page.locator(f'#editor-palette [data-type="{kind}"]').tap()
    saved(page)


def fill(page: Page, key: str, text: str) -> None:
    page.locator(f"#edit-{key}").fill(text)


def save_form(page: Page) -> None:
    page.locator('#editor-form button[type="submit"]').tap()
    saved(page)


#: The controls in the order the page shows them.
SHOWN = "Array.from(document.querySelectorAll('[data-control]')).map((w) => w.dataset.control).join()"


def ids(path: Path) -> list[str]:
    return [c.id for c in load_config(path).controls]


def test_a_fader_added_renamed_addressed_moved_and_moved_back_from_a_phone(
    tmp_path: Path, bridge_factory: Start, pages: Pages
) -> None:
    path = tmp_path / "show.toml"
    path.write_text(
        HEAD + '\n# The one fader there was.\n[[controls]]\nid = "master"\ntype = "range"\nlabel = "Master"\n',
        encoding="utf-8",
    )
    proc = bridge_factory(path)
    phone = pages.open(f"{proc.url}/?edit=1&key={KEY}", viewport=PHONE, touch=True)
    other = pages.open(f"{proc.url}/?key={KEY}")
    expect(phone.locator("#editor")).to_be_visible()
    expect(other.locator("#editor")).to_have_count(0)

    add(phone, "range")
    assert ids(path) == ["master", "fader1"]
    expect(other.locator("#fader1")).to_be_attached()  # the other page follows, no reload
    expect(phone.locator("#editor-form h2")).to_contain_text("fader1")

    fill(phone, "label", "Click")
    fill(phone, "osc", "/click/level")  # typed as an address, no TOML quotes
    save_form(phone)
    expect(other.locator('label[for="fader1"]')).to_have_text("Click")
    control = load_config(path).control("fader1")
    assert (control.label, control.osc) == ("Click", "/click/level")

    # Dragged above the master fader with a finger.
    touch = Touch(phone)
    x, y = centre(phone, '[data-control="fader1"] .head')
    tx, ty = centre(phone, '[data-control="master"] .head')
    touch.drag(0, (x, y), (tx, ty - 10))
    wait_until(lambda: ids(path) == ["fader1", "master"], what="the move written")
    other.wait_for_function(f"{SHOWN} === 'fader1,master'")
    expect(phone.locator("#editor-undo")).to_have_text("Undo move")

    phone.locator("#editor-undo").tap()
    expect(phone.locator("#editor-undo")).to_have_text("Undo change of fader1")  # the move's undo is used up
    saved(phone)
    wait_until(lambda: ids(path) == ["master", "fader1"], what="the move undone")
    other.wait_for_function(f"{SHOWN} === 'master,fader1'")
    text = path.read_text(encoding="utf-8")
    assert text.startswith(HEAD + "\n# The one fader there was.\n[[controls]]\n")  # comments kept in place

    # A wrong value: the loader's words beside the field, and nothing written.
    before = path.read_bytes()
    fill(phone, "max", "-3")
    phone.locator('#editor-form button[type="submit"]').tap()
    expect(phone.locator('.editor-field[data-key="min"] .editor-error')).to_contain_text("must be less than max")
    expect(phone.locator('.editor-field[data-key="min"] .editor-error')).to_be_in_viewport()  # not off the sheet
    assert path.read_bytes() == before
    # A one-line TOML field typed as plain words: told beside it how TOML writes them.
    fill(phone, "max", "100")
    fill(phone, "midi", "1, 7")
    phone.locator('#editor-form button[type="submit"]').tap()
    midi_error = phone.locator('.editor-field[data-key="midi"] .editor-error')
    expect(midi_error).to_contain_text("a list is written in brackets")
    expect(midi_error).to_be_in_viewport()
    assert path.read_bytes() == before
    fill(phone, "midi", "")

    proc.stop()
    again = bridge_factory(path)
    restarted = pages.open(f"{again.url}/?key={KEY}", viewport=PHONE, touch=True)
    expect(restarted.locator('label[for="fader1"]')).to_have_text("Click")
    assert (
        restarted.evaluate(
            "Array.from(document.querySelectorAll('[data-control]')).map((w) => w.dataset.control).join()"
        )
        == "master,fader1"
    )


def test_ten_controls_built_from_an_empty_list_on_a_phone_survive_a_restart(
    tmp_path: Path, bridge_factory: Start, pages: Pages
) -> None:
    path = tmp_path / "show.toml"
    path.write_text("controls = []   # nothing yet\n" + HEAD, encoding="utf-8")
    proc = bridge_factory(path)
    # Nothing to sync yet: connected is all there is to wait for.
    phone = pages.open(f"{proc.url}/?edit=1&key={KEY}", viewport=PHONE, touch=True, connected=False)
    wait_state(phone, "connected")
    expect(phone.locator(".empty-surface")).to_be_visible()
    kinds = ["range", "range", "knob", "toggle", "button", "select", "text", "label", "meter", "led"]
    for n, kind in enumerate(kinds, start=1):
        add(phone, kind)
        fill(phone, "label", f"Control {n}")
        fill(phone, "group", "Band" if n <= 5 else "Show")
        save_form(phone)
    built = load_config(path).controls
    assert [c.label for c in built] == [f"Control {n}" for n in range(1, 11)]
    assert [c.type for c in built] == kinds
    assert [c.group for c in built] == ["Band"] * 5 + ["Show"] * 5

    proc.stop()
    again = bridge_factory(path)
    page = pages.open(f"{again.url}/?key={KEY}", viewport=PHONE, touch=True)
    for n in range(1, 11):
        expect(page.locator("#panels")).to_contain_text(f"Control {n}")
    expect(page.locator(".empty-surface")).to_have_count(0)


def test_a_removal_undone_puts_back_its_comments_and_tab_leaves_the_tiles(
    tmp_path: Path, bridge_factory: Start, pages: Pages
) -> None:
    path = tmp_path / "show.toml"
    tables = (
        '\n[[controls]]\nid = "master"\ntype = "range"\n'
        '\n# The big GO: fires the next cue.\n[[controls]]\nid = "go"\ntype = "button"\n'
        'label = "GO"  # shown name\nmode = "trigger"\n'
    )
    path.write_text(HEAD + tables, encoding="utf-8")
    proc = bridge_factory(path)
    laptop = pages.open(f"{proc.url}/?edit=1&key={KEY}")
    laptop.locator('[data-control="go"]').click()
    expect(laptop.locator("#editor-form h2")).to_contain_text("go")
    laptop.locator('#editor-form [data-action="remove"]').click()
    saved(laptop)
    assert ids(path) == ["master"]
    expect(laptop.locator("#editor-undo")).to_have_text("Undo removal of go")
    laptop.locator("#editor-undo").click()
    saved(laptop)
    wait_until(lambda: ids(path) == ["master", "go"], what="the removal undone")
    assert path.read_text(encoding="utf-8") == HEAD + tables  # its comments too, byte for byte

    # Keyboard only: Tab goes through a tile and out of it (it was caught on the tile's slider).
    laptop.locator('[data-control="master"]').focus()
    seen = []
    for _ in range(6):
        laptop.keyboard.press("Tab")
        seen.append(laptop.evaluate("document.activeElement.closest('[data-control]')?.dataset.control || 'out'"))
    assert "out" in seen or "go" in seen, seen


def test_a_control_added_with_nothing_picked_goes_on_the_page_shown(
    tmp_path: Path, bridge_factory: Start, pages: Pages
) -> None:
    path = tmp_path / "show.toml"
    tables = (
        '\n[[controls]]\nid = "house"\ntype = "toggle"\n'  # no page: the tab "Main"
        '\n[[controls]]\nid = "vocal"\ntype = "range"\npage = "Sound"\n'
        '\n[[controls]]\nid = "go"\ntype = "button"\npage = "Cues"\n'
    )
    path.write_text(HEAD + tables, encoding="utf-8")
    proc = bridge_factory(path)
    phone = pages.open(f"{proc.url}/?edit=1&key={KEY}#page=Cues", viewport=PHONE, touch=True)
    expect(phone.locator('#tabs [data-page="Main"]')).to_have_text("Main")  # a tab carries its page's name
    expect(phone.locator('#tabs [data-page="Cues"]')).to_have_attribute("aria-selected", "true")
    add(phone, "toggle")
    assert load_config(path).control("toggle1").page == "Cues"  # not on "Main", out of sight
    expect(phone.locator("#toggle1")).to_be_visible()


def test_an_undo_that_someone_elses_edit_made_impossible_leaves_the_stack(
    tmp_path: Path, bridge_factory: Start, pages: Pages
) -> None:
    # It was pushed back on top after every failure, so nothing under it could be undone any more.
    path = tmp_path / "show.toml"
    tables = "".join(f'\n[[controls]]\nid = "{cid}"\ntype = "range"\n' for cid in ("house", "verb", "gain"))
    path.write_text(HEAD + tables, encoding="utf-8")
    proc = bridge_factory(path)
    laptop = pages.open(f"{proc.url}/?edit=1&key={KEY}")
    laptop.locator('[data-control="house"]').click()
    laptop.locator('#editor-form [data-action="remove"]').click()
    saved(laptop)
    laptop.locator('[data-control="gain"]').click()
    laptop.locator('#editor-form [data-action="up"]').click()
    saved(laptop)
    assert ids(path) == ["gain", "verb"]
    expect(laptop.locator("#editor-undo")).to_have_text("Undo move")
    # Someone else adds a control: the move's inverse (the old order) no longer names every control.
    text = path.read_text(encoding="utf-8")
    path.write_text(text + '\n[[controls]]\nid = "other"\ntype = "toggle"\n', encoding="utf-8")
    wait_until(lambda: proc.get_json("/healthz", key=KEY)["config"]["generation"] == 4, what="the hand edit applied")
    laptop.locator("#editor-undo").click()
    expect(laptop.locator("#editor-status")).to_contain_text("Could not undo the move")
    expect(laptop.locator("#editor-undo")).to_have_text("Undo removal of house")
    laptop.locator("#editor-undo").click()
    wait_until(lambda: "house" in ids(path), what="the removal undone")
