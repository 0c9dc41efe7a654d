"""The editor's HTTP API on the real server: the file written back with comments kept, checked, applied.

Socket.IO clients see every saved edit as a new layout; OSC (liblo's
oscsend and oscdump) uses the new address at once. The page's side is
tests/test_editor_page.py; the text operations alone are tested in
process at the end.
"""

from __future__ import annotations

import difflib
import json
import socket
import stat
import tomllib
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import socketio

from bridge.config import edit as editing
from bridge.config import load_config
from bridge.config.edit import BOM
from bridge.web.editor_api import field_of
from tests.helpers import BridgeProcess, free_port, saved, wait_until
from tests.osc_tools import OscDump, oscsend

Start = Callable[..., BridgeProcess]
KEY, VIEWER = "stage-key-7", "watch-key-7"


def show(osc_port: int, dump_port: int) -> str:
    return f"""\
# The Tuesday show. Edited by hand and from the page.
[server]
host = "127.0.0.1"
port = 5000
state_file = "state.json"
key = "{KEY}"            # the crew's key
viewer_key = "{VIEWER}"

[osc]
listen = "127.0.0.1:{osc_port}"
targets = ["127.0.0.1:{dump_port}"]

# --- Band ---
[[controls]]
id = "vocal"      # lead vocal
type = "range"
label = "Vocal"
max = 100
osc = "/vocal"
group = "Band"

# The drums bus
[[controls]]
id = "drums"
type = "range"
label = "Drums"
max = 100
osc = {{ address = "/drums", types = "f" }}   # the desk wants floats
group = "Band"

[[controls]]
id = "house"
type = "toggle"
label = "House lights"
osc = "/house"
"""


def request(
    proc: BridgeProcess, method: str, path: str, body: Any = None, key: str | None = KEY, version: str | None = None
) -> tuple[int, Any]:
    """One call of the editor's API, with the control key and the file's version unless told otherwise."""
    return proc.request_json(method, path, body, key=key, headers={"If-Match": version} if version else None)


class Page:
    """A Socket.IO client with the control key that keeps the layouts it is sent."""

    def __init__(self, url: str) -> None:
        self.sio = socketio.Client(reconnection=False)
        self.layouts: list[dict[str, Any]] = []
        self.sio.on("layout", self.layouts.append)
        self.sio.connect(url, auth={"key": KEY}, wait_timeout=10)

    def wait_layout(self, generation: int) -> dict[str, Any]:
        found = wait_until(
            lambda: [x for x in self.layouts if x["generation"] == generation], what=f"layout {generation}"
        )
        return dict(found[0])


@pytest.fixture
def edited(tmp_path: Path, bridge_factory: Start, dump: OscDump) -> tuple[BridgeProcess, Path, int]:
    osc_port = free_port(socket.SOCK_DGRAM)
    path = tmp_path / "show.toml"
    path.write_text(show(osc_port, dump.port), encoding="utf-8")
    return bridge_factory(path), path, osc_port


def changed_lines(before: str, after: str) -> list[int]:
    """The 0-based lines of ``before`` that ``after`` replaces or removes (and where it inserts)."""
    lines: list[int] = []
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    for tag, i1, i2, _j1, _j2 in matcher.get_opcodes():
        if tag != "equal":
            lines += list(range(i1, max(i2, i1 + 1)))
    return lines


def test_a_patch_rewrites_only_its_table_keeps_a_backup_and_reaches_every_page_and_osc(
    edited: tuple[BridgeProcess, Path, int], dump: OscDump
) -> None:
    proc, path, osc_port = edited
    pages = [Page(proc.url) for _ in range(2)]
    try:
        status, got = request(proc, "GET", "/api/config")
        assert status == 200 and got["toml"] == path.read_text(encoding="utf-8")
        assert [c["table"]["id"] for c in got["controls"]] == ["vocal", "drums", "house"]
        assert got["controls"][1]["toml"]["osc"] == '{address = "/drums", types = "f"}'
        assert "value" in got["keys"]["range"] and "options" in got["keys"]["select"]
        before = path.read_text(encoding="utf-8")
        table = [i for i, line in enumerate(before.splitlines()) if line.startswith('id = "drums"')][0]

        status, answer = request(
            proc, "PATCH", "/api/config/controls/drums", {"label": "Kit", "osc": "/kit"}, version=got["version"]
        )
        assert status == 200, answer
        after = path.read_text(encoding="utf-8")
        assert answer["version"] == editing.version(after.encode())
        # Only the drums table's own lines changed; its comments and every other byte are as they were.
        assert set(changed_lines(before, after)) <= set(range(table - 2, table + 7))
        assert "# The drums bus" in after and "# lead vocal" in after and "# the crew's key" in after
        assert 'label = "Kit"' in after and 'osc = "/kit"' in after
        assert (path.parent / "show.toml.bak").read_text(encoding="utf-8") == before
        for page in pages:
            assert ">Kit<" in page.wait_layout(answer["generation"])["surface"]

        oscsend(osc_port, "/kit", "f", 40)
        wait_until(lambda: proc.get_json("/api/values", key=KEY)["drums"] == 40, what="the new address in")
        request(proc, "PUT", "/api/values/drums", {"value": 41})
        dump.wait_for("/kit f 41.000000")
        assert not [m for m in dump.messages() if m.startswith("/drums")]
    finally:
        for page in pages:
            page.sio.disconnect()


def test_a_renamed_control_keeps_its_value_and_the_desk_is_told(
    edited: tuple[BridgeProcess, Path, int], dump: OscDump
) -> None:
    # Renaming in the editor made a new control at its default mid-show (every page showed it, the
    # desk was not told): the next touch on the fader jumped the desk by the difference.
    proc, path, _osc_port = edited
    request(proc, "PUT", "/api/values/vocal", {"value": 40})
    assert request(proc, "PUT", "/api/scenes/Verse")[0] == 200  # a scene that holds it goes with it too
    request(proc, "PUT", "/api/values/vocal", {"value": 63})
    dump.wait_for("/vocal f 63.000000")
    status, got = request(proc, "GET", "/api/config")
    page = Page(proc.url)
    try:
        status, answer = request(
            proc, "PATCH", "/api/config/controls/vocal", {"id": "lead", "osc": "/lead"}, version=got["version"]
        )
        assert status == 200, answer
        assert page.wait_layout(answer["generation"])["values"]["lead"] == 63  # never shown at its default 0
    finally:
        page.sio.disconnect()
    values = proc.get_json("/api/values", key=KEY)
    assert values["lead"] == 63 and "vocal" not in values
    dump.wait_for("/lead f 63.000000")  # the desk hears it at the new address
    assert 'id = "lead"' in path.read_text(encoding="utf-8")
    status, recalled = request(proc, "POST", "/api/scenes/Verse/recall")
    assert status == 200 and "lead" in recalled["recalled"] and recalled["skipped"] == []
    assert proc.get_json("/api/values", key=KEY)["lead"] == 40


def patched(proc: BridgeProcess, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """One edit on the file's current version; its answer (it must be taken)."""
    version = request(proc, "GET", "/api/config")[1]["version"]
    status, answer = request(proc, method, path, body, version=version)
    assert status == 200, answer
    return dict(answer)


def test_a_rename_onto_a_deleted_controls_id_takes_its_scenes_its_fade_and_the_desks_name_along(
    edited: tuple[BridgeProcess, Path, int], dump: OscDump
) -> None:
    """Drums deleted, vocal renamed drums: a scene recalled the deleted drums' 90 onto the renamed vocal; a fade
    running on it stopped part-way; the name the desk gave it went back to the config's (a reviewer's cases)."""
    proc, _path, osc_port = edited

    def put(**values: float) -> None:
        for cid, value in values.items():
            assert request(proc, "PUT", f"/api/values/{cid}", {"value": value})[0] == 200

    def html() -> str:
        with proc.open(urllib.request.Request(proc.url + "/", headers={"Authorization": f"Bearer {KEY}"})) as got:
            return str(got.read().decode("utf-8"))

    put(vocal=10, drums=90)
    assert request(proc, "PUT", "/api/scenes/Verse")[0] == 200
    patched(proc, "PATCH", "/api/config/controls/vocal", {"label_from": "/names/vocal"})
    oscsend(osc_port, "/names/vocal", "s", "Lead Vox")
    wait_until(lambda: "Lead Vox" in html(), what="the desk's name on the page")
    patched(proc, "DELETE", "/api/config/controls/drums")
    put(vocal=60)
    status, _ = request(proc, "POST", "/api/scenes/Verse/recall", {"fade": 3})  # 60 -> 10 over 3 s
    assert status == 200
    wait_until(lambda: proc.get_json("/api/values", key=KEY)["vocal"] < 55, what="the fade under way")
    page = Page(proc.url)
    try:
        answer = patched(proc, "PATCH", "/api/config/controls/vocal", {"id": "drums"})
        assert ">Lead Vox<" in page.wait_layout(answer["generation"])["surface"]  # the desk's name goes with it
    finally:
        page.sio.disconnect()
    wait_until(lambda: proc.get_json("/api/values", key=KEY)["drums"] == 10, what="the fade carried on to 10")
    put(drums=33)
    status, recalled = request(proc, "POST", "/api/scenes/Verse/recall")
    assert status == 200 and "drums" in recalled["recalled"] and "vocal" not in recalled["skipped"]
    assert proc.get_json("/api/values", key=KEY)["drums"] == 10  # the renamed vocal's level, not the old drums'


@pytest.mark.unit
def test_a_view_follows_a_rename_on_its_own_lines_and_the_show_keeps_its_order() -> None:
    """The first version wrote the whole file again through tomlkit, which groups arrays of tables written
    apart: a rename moved the vocal fader, the view and a comment below the second [[repeat]] (a reviewer's
    case). Only the view's line changes now."""
    text = (
        '[[repeat]]\nn = 2\n[[repeat.controls]]\nid = "ch{n}"\ntype = "range"\n\n'
        '[[controls]]\nid = "vocal"\ntype = "range"\n\n'
        '[[views]]\nname = "band"\ncontrols = [\n  "vocal",   # lead\n  "ch1",\n]\n\n'
        '# --- Effects ---\n[[repeat]]\nn = 2\n[[repeat.controls]]\nid = "fx{n}"\ntype = "knob"\n'
    )
    renamed = editing.set_properties(text, "vocal", {"id": "lead"})
    assert renamed == text.replace('id = "vocal"', 'id = "lead"').replace('"vocal",   # lead', '"lead",   # lead')


@pytest.mark.unit
@pytest.mark.parametrize(
    "views",
    [
        'views = [{ name = "band", controls = ["vocal", "drums"] }]\n',  # inline, at the top
        'views = [\n  { name = "band", controls = ["vocal", "drums"] },   # the band\n]\n',  # over lines
        '  [[views]]\n  name = "band"\n  controls = ["vocal", "drums"]\n',  # indented
        '[["views"]]\nname = "band"\ncontrols = ["vocal", "drums"]\n',  # quoted
        BOM + 'views = [{ name = "band", controls = ["vocal", "drums"] }]\n',  # first, after a BOM (Notepad)
    ],
)
def test_views_written_any_way_toml_allows_follow_a_rename_and_a_removal(views: str) -> None:
    """Only [[views]] at the start of a line followed (a reviewer's case: the others refused both edits)."""
    tables = (
        '[[controls]]\nid = "vocal"\ntype = "range"\n\n# --- Effects ---\n[[repeat]]\nn = 2\n'
        '[[repeat.controls]]\nid = "fx{n}"\ntype = "knob"\n\n[[controls]]\nid = "drums"\ntype = "range"\n'
    )
    text = views + "\n" + tables if views.lstrip(BOM).startswith("views =") else tables + "\n" + views
    renamed = editing.set_properties(text, "vocal", {"id": "lead"})
    assert tomllib.loads(renamed.lstrip(BOM))["views"][0]["controls"] == ["lead", "drums"]
    assert renamed.replace('"lead"', '"vocal"') == text  # nothing else moved (the first fallback reordered)
    removed = editing.remove(renamed, "drums")
    assert tomllib.loads(removed.lstrip(BOM))["views"][0]["controls"] == ["lead"]
    assert editing.view_places(renamed, "drums") == {"band": 1}  # and an undo puts it back
    back = editing.add(removed, {"id": "drums", "type": "range"}, "lead", {"band": 1})
    assert tomllib.loads(back.lstrip(BOM))["views"][0]["controls"] == ["lead", "drums"]


def test_a_control_a_view_lists_is_renamed_and_removed_there_too(
    edited: tuple[BridgeProcess, Path, int], dump: OscDump
) -> None:
    """A view listing vocal and drums refused both edits ("unknown control 'vocal'", about a control that
    exists) and the file had to be mended in two places by hand (a reviewer's case)."""
    proc, path, _osc_port = edited
    with path.open("a", encoding="utf-8") as show_file:
        show_file.write('\n[[views]]\nname = "band"\ncontrols = ["vocal", "drums"]   # the band\'s tablet\n')
    assert request(proc, "POST", "/api/config/reload")[0] == 200
    patched(proc, "PATCH", "/api/config/controls/vocal", {"id": "lead"})
    removal = patched(proc, "DELETE", "/api/config/controls/drums")
    assert 'controls = ["lead"]   # the band\'s tablet' in path.read_text(encoding="utf-8")
    assert [v.controls for v in load_config(path).views] == [("lead",)]
    # The editor's undo puts it back in its view too (the drummer's tablet lost its fader for good).
    assert removal["views"] == {"band": 1}  # by name: a view added above it meanwhile does not matter
    with path.open("r+", encoding="utf-8") as show_file:
        text = show_file.read().replace("[[views]]", '[[views]]\nname = "foh"\ncontrols = ["lead"]\n\n[[views]]', 1)
        show_file.seek(0)
        show_file.write(text)
    assert request(proc, "POST", "/api/config/reload")[0] == 200
    patched(proc, "POST", "/api/config/controls?after=lead", {"$block": removal["removed"], "$views": removal["views"]})
    assert 'controls = ["lead", "drums"]   # the band\'s tablet' in path.read_text(encoding="utf-8")
    assert [v.controls for v in load_config(path).views] == [("lead",), ("lead", "drums")]


def test_a_value_a_narrowed_range_took_goes_with_its_control_through_a_rename(
    edited: tuple[BridgeProcess, Path, int], dump: OscDump
) -> None:
    """Vocal at 80; its max typed as 10 (clamped), the control renamed, the max put right: 80 again, under the
    new name, and the old name is not left in the state file with a value of its own."""
    proc, path, _osc_port = edited
    request(proc, "PUT", "/api/values/vocal", {"value": 80})

    def patch(cid: str, props: dict[str, Any]) -> None:
        version = request(proc, "GET", "/api/config")[1]["version"]
        status, answer = request(proc, "PATCH", f"/api/config/controls/{cid}", props, version=version)
        assert status == 200, answer

    patch("vocal", {"max": 10})
    assert proc.get_json("/api/values", key=KEY)["vocal"] == 10
    patch("vocal", {"id": "lead"})
    patch("lead", {"max": 100})
    assert proc.get_json("/api/values", key=KEY)["lead"] == 80
    dump.wait_for("/vocal f 80.000000")  # (its address stayed /vocal)
    state = path.parent / "state.json"
    wait_until(lambda: saved(state).get("values", {}).get("lead") == 80, what="lead saved")
    assert "vocal" not in json.loads(state.read_text())["values"]


def test_a_config_that_is_a_link_stays_one_and_keeps_its_permissions(
    tmp_path: Path, bridge_factory: Start, dump: OscDump
) -> None:
    # The editor's save replaced the link with a file of its own (mode 0600): the edit never reached the
    # show's file, and a later hand edit of that file was not seen at all.
    shows = tmp_path / "shows"
    shows.mkdir()
    target = shows / "tonight.toml"
    target.write_text(show(free_port(socket.SOCK_DGRAM), dump.port), encoding="utf-8")
    target.chmod(0o664)
    link = tmp_path / "show.toml"
    link.symlink_to(target)
    proc = bridge_factory(link)
    _status, got = request(proc, "GET", "/api/config")
    status, answer = request(proc, "PATCH", "/api/config/controls/drums", {"label": "Kit"}, version=got["version"])
    assert status == 200, answer
    assert link.is_symlink() and 'label = "Kit"' in target.read_text(encoding="utf-8")
    assert stat.S_IMODE(target.stat().st_mode) == 0o664
    assert stat.S_IMODE((tmp_path / "show.toml.bak").stat().st_mode) == 0o664  # as the show's (it was 0600)


def test_a_file_saved_on_windows_keeps_its_line_ends(edited: tuple[BridgeProcess, Path, int]) -> None:
    proc, path, _osc = edited
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    version = editing.version(path.read_bytes())
    status, answer = request(proc, "PATCH", "/api/config/controls/drums", {"label": "Kit"}, version=version)
    assert status == 200, answer
    status, answer = request(
        proc, "POST", "/api/config/controls", {"type": "knob", "label": "Pan"}, version=answer["version"]
    )
    assert status == 200, answer
    data = path.read_bytes()
    assert b'label = "Kit"\r\n' in data and b'label = "Pan"\r\n' in data
    assert data.count(b"\n") == data.count(b"\r\n")  # no line of the file ends another way
    assert [c.id for c in load_config(path).controls] == ["vocal", "drums", "house", "knob1"]


def test_add_remove_and_reorder_each_apply_at_once(edited: tuple[BridgeProcess, Path, int]) -> None:
    proc, path, _osc = edited
    page = Page(proc.url)
    try:
        version = request(proc, "GET", "/api/config")[1]["version"]
        status, answer = request(
            proc, "POST", "/api/config/controls?after=vocal", {"type": "knob", "label": "Pan"}, version=version
        )
        assert status == 200 and answer["id"] == "knob1"
        assert 'data-control="knob1"' in page.wait_layout(answer["generation"])["surface"]
        assert [c.id for c in load_config(path).controls] == ["vocal", "knob1", "drums", "house"]

        status, answer = request(proc, "DELETE", "/api/config/controls/house", version=answer["version"])
        assert status == 200, answer
        assert page.wait_layout(answer["generation"])
        assert "house" not in proc.get_json("/api/values", key=KEY)
        assert "House lights" not in path.read_text(encoding="utf-8")

        status, answer = request(
            proc, "POST", "/api/config/order", {"ids": ["drums", "vocal", "knob1"]}, version=answer["version"]
        )
        assert status == 200, answer
        surface = page.wait_layout(answer["generation"])["surface"]
        assert surface.index('data-control="drums"') < surface.index('data-control="vocal"')
        assert [c.id for c in load_config(path).controls] == ["drums", "vocal", "knob1"]
        text = path.read_text(encoding="utf-8")
        assert text.index("# The drums bus") < text.index('id = "drums"') < text.index("# --- Band ---")

        status, refused = request(proc, "POST", "/api/config/order", {"ids": ["drums"]}, version=answer["version"])
        assert status == 400 and "every [[controls]] id once" in refused["error"]

        # A control deleted keeps its value for when it comes back: a new one never takes its id.
        assert request(proc, "PUT", "/api/values/knob1", {"value": 0.9})[0] == 200
        status, answer = request(proc, "DELETE", "/api/config/controls/knob1", version=answer["version"])
        assert status == 200, answer
        status, answer = request(proc, "POST", "/api/config/controls", {"type": "knob"}, version=answer["version"])
        assert status == 200 and answer["id"] == "knob2", answer
        assert proc.get_json("/api/values", key=KEY)["knob2"] == 0
    finally:
        page.sio.disconnect()


def test_an_invalid_or_stale_change_leaves_the_file_as_it_was(edited: tuple[BridgeProcess, Path, int]) -> None:
    proc, path, _osc = edited
    before = path.read_bytes()
    version = request(proc, "GET", "/api/config")[1]["version"]

    status, answer = request(proc, "PATCH", "/api/config/controls/vocal", {"max": -5}, version=version)
    assert status == 400
    assert "controls[0] (vocal).min: must be less than max" in answer["error"] and answer["field"] == "min"
    status, answer = request(proc, "PATCH", "/api/config/controls/vocal", {"osc": "/drums"}, version=version)
    assert status == 400 and "'/drums' is already used by 'vocal'" in answer["error"] and answer["field"] == "osc"
    status, answer = request(proc, "PATCH", "/api/config/controls/vocal", {"colour": "red"}, version=version)
    assert status == 400 and "unknown key" in answer["error"]
    status, answer = request(proc, "PATCH", "/api/config/controls/nope", {"label": "x"}, version=version)
    assert status == 404
    assert path.read_bytes() == before and not (path.parent / "show.toml.bak").exists()

    # A hand edit in between: the editor's version is stale.
    path.write_text(path.read_text(encoding="utf-8").replace("Vocal", "Lead"), encoding="utf-8")
    by_hand = path.read_bytes()
    status, answer = request(proc, "PATCH", "/api/config/controls/vocal", {"label": "Voice"}, version=version)
    assert status == 409 and answer["version"] == editing.version(by_hand)
    status, _ = request(proc, "PATCH", "/api/config/controls/vocal", {"label": "Voice"})
    assert status == 428  # no version at all
    assert path.read_bytes() == by_hand


def test_the_editor_is_the_control_roles_only(edited: tuple[BridgeProcess, Path, int]) -> None:
    proc, _path, _osc = edited
    version = request(proc, "GET", "/api/config")[1]["version"]
    for method, url, body in (
        ("GET", "/api/config", None),
        ("PATCH", "/api/config/controls/vocal", {"label": "x"}),
        ("POST", "/api/config/controls", {"type": "range"}),
        ("DELETE", "/api/config/controls/vocal", None),
        ("POST", "/api/config/order", {"ids": []}),
    ):
        assert request(proc, method, url, body, key=VIEWER, version=version)[0] == 403, url
        assert request(proc, method, url, body, key=None, version=version)[0] == 401, url
    # The page: the editor only with the control key.
    headers = {"Authorization": f"Bearer {VIEWER}"}
    with urllib.request.urlopen(urllib.request.Request(proc.url + "/?edit=1", headers=headers), timeout=5) as resp:
        assert 'id="editor"' not in resp.read().decode()
    headers = {"Authorization": f"Bearer {KEY}"}
    with urllib.request.urlopen(urllib.request.Request(proc.url + "/?edit=1", headers=headers), timeout=5) as resp:
        assert 'id="editor"' in resp.read().decode()


def test_send_test_sends_the_value_out_once_more(edited: tuple[BridgeProcess, Path, int], dump: OscDump) -> None:
    proc, _path, _osc = edited
    request(proc, "PUT", "/api/values/vocal", {"value": 12})
    dump.wait_for("/vocal f 12.000000")
    status, answer = request(proc, "POST", "/api/config/controls/vocal/test")
    assert status == 200 and answer == {"sent": 12, "to": ["osc"]}
    wait_until(lambda: dump.messages().count("/vocal f 12.000000") == 2, what="the value sent once more")
    # A trigger has no value to send again, and what it sends fires a cue: refused, nothing sent.
    _status, got = request(proc, "GET", "/api/config")
    status, _ = request(
        proc, "POST", "/api/config/controls", {"id": "go", "type": "button", "mode": "trigger"}, version=got["version"]
    )
    assert status == 200
    status, answer = request(proc, "POST", "/api/config/controls/go/test")
    assert status == 400 and "a test would fire it" in answer["error"]
    request(proc, "PUT", "/api/values/vocal", {"value": 13})
    dump.wait_for("/vocal f 13.000000")  # (what was sent before this is in)
    assert not [m for m in dump.messages() if m.startswith("/go")]


# -- The text operations, in process ---------------------------------------------------------------

SAMPLE = """\
# head
[server]
port = 5000

# first
[[controls]]
id = "a"   # keep me
type = "range"
curve = [
  [0.5],
]

[[repeat]]
n = 2
[[repeat.controls]]
id = "r{n}"
type = "range"

[[controls]]
id = "b"
type = "toggle"
[controls.osc]
address = "/b"
"""


@pytest.mark.unit
def test_slots_follow_comments_sub_tables_and_multi_line_arrays() -> None:
    found = editing.slots(SAMPLE)
    assert [(s.cid, s.start, s.end) for s in found] == [("a", 4, 11), ("b", 18, 23)]


@pytest.mark.unit
def test_taking_a_sub_table_out_keeps_the_comments_under_its_last_key() -> None:
    """The parser files them under [controls.midi], though they may be about what follows: they stay."""
    text = (
        '[[controls]]\nid = "a"\ntype = "range"\n\n[controls.midi]\nchannel = 1\n# the X-Touch\'s first\ncc = 7\n'
        '# the fader on the left\n\n[[controls]]\nid = "b"\ntype = "toggle"\n'
    )
    patched = editing.set_properties(text, "a", {"midi": None})
    assert "[controls.midi]" not in patched and "first" not in patched  # a comment among its keys went with it
    assert '"range"\n\n# the fader on the left\n\n[[controls]]\nid = "b"' in patched


@pytest.mark.unit
def test_each_operation_leaves_every_other_line_alone() -> None:
    patched = editing.set_properties(SAMPLE, "b", {"label": "B", "osc": None})
    assert patched.startswith(SAMPLE.split('[[controls]]\nid = "b"')[0])
    assert 'label = "B"' in patched and "[controls.osc]" not in patched
    added = editing.add(SAMPLE, {"id": "c", "type": "knob", "osc": {"address": "/c", "curve": "log"}}, after="a")
    assert '[[controls]]\nid = "c"\ntype = "knob"\nosc = {address = "/c", curve = "log"}\n' in added
    assert (
        added.replace('\n[[controls]]\nid = "c"\ntype = "knob"\nosc = {address = "/c", curve = "log"}\n', "") == SAMPLE
    )
    assert editing.remove(added, "c") == SAMPLE
    swapped = editing.reorder(SAMPLE, ["b", "a"])
    assert swapped.index('id = "b"') < swapped.index("[[repeat]]") < swapped.index("# first")
    assert editing.reorder(swapped, ["a", "b"]) == SAMPLE
    kept = editing.set_properties(SAMPLE, "a", {"osc": {"$toml": '{ address = "/a" }  # mine'}})
    assert 'osc = { address = "/a" }  # mine' in kept
    bare = editing.set_properties(SAMPLE, "a", {"osc": {"$toml": "/ch/01/mix/fader"}})
    assert 'osc = "/ch/01/mix/fader"' in bare
    assert editing.inline("/ch/01") == "/ch/01" and editing.inline("a b") == '"a b"'


SECTIONS = """\
[server]
port = 5000

# ---- Sound ----

[[controls]]
id = "mute"
type = "toggle"
# osc = "/old"

# ---- Cues ----

# The big GO
[[controls]]
id = "go"
type = "button"

# Parked controls
# [[controls]]
# id = "old_fx"
"""


@pytest.mark.unit
def test_a_comment_block_after_a_blank_line_is_the_files_and_stays_where_it_is() -> None:
    # A section heading or a table parked as comments belonged to the table above it: removing that
    # table deleted them, moving it took the heading along, and an add went in under the heading.
    without_mute = editing.remove(SECTIONS, "mute")
    assert "# ---- Cues ----" in without_mute and "# osc" not in without_mute  # its own comment goes with it
    without_go = editing.remove(SECTIONS, "go")
    assert "# The big GO" not in without_go
    assert without_go.endswith('# ---- Cues ----\n\n# Parked controls\n# [[controls]]\n# id = "old_fx"\n')
    swapped = editing.reorder(SECTIONS, ["go", "mute"])
    assert swapped.index("# ---- Sound ----") < swapped.index('id = "go"') < swapped.index("# ---- Cues ----")
    assert swapped.index("# ---- Cues ----") < swapped.index('id = "mute"')
    assert editing.reorder(swapped, ["mute", "go"]) == SECTIONS
    added = editing.add(SECTIONS, {"id": "x", "type": "toggle"}, after="mute")
    assert added.index('id = "mute"') < added.index('id = "x"') < added.index("# ---- Cues ----")
    assert editing.remove(added, "x") == SECTIONS


@pytest.mark.unit
def test_a_toml_field_typed_as_plain_words_says_how_toml_writes_them_and_names_its_field() -> None:
    with pytest.raises(
        editing.EditError, match=r'options: .*brackets, each text in quotes: \["Preshow", "Act 1"\]'
    ) as err:
        editing.set_properties(SECTIONS, "mute", {"options": {"$toml": "Preshow, Act 1"}})
    assert err.value.field == "options"
    with pytest.raises(editing.EditError, match='text is written in quotes: "go"') as err:
        editing.set_properties(SECTIONS, "go", {"on": {"$toml": "go"}})
    assert err.value.field == "on"


@pytest.mark.unit
def test_the_first_control_of_an_empty_list() -> None:
    empty = "controls = []\n[server]\nport = 5000\n"
    first = editing.add(empty, {"id": "fader1", "type": "range"})
    assert first == '[server]\nport = 5000\n\n[[controls]]\nid = "fader1"\ntype = "range"\n'
    with pytest.raises(editing.EditError, match="inline"):
        editing.add('controls = [{ id = "a", type = "range" }]\n', {"id": "b", "type": "range"})


@pytest.mark.unit
def test_a_loader_key_names_the_field() -> None:
    assert field_of("controls[3] (x).osc.address") == "osc"
    assert field_of("controls[3].id") == "id"
    assert field_of("controls[0] (a).colors[1]") == "colors"
    assert field_of("server.port") is None
    # An error about another control than the one edited (a hand edit elsewhere) is under no field of it.
    assert field_of("controls[3] (house).min", "master") is None
    assert field_of("controls[3] (house).min", "house") == "min"
