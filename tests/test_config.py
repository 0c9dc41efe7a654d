"""Config checks: each rule broken gives one message naming file, key and fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.config import DEFAULT_CONFIG, load_config, table_order
from bridge.config.controls import ALL_KEYS, FIELDS
from bridge.config.lines import line_of
from bridge.errors import ConfigError
from tests.helpers import ROOT, write_config


def control(body: str) -> str:
    return f"[[controls]]\n{body}\n"


@pytest.mark.unit
def test_default_config_is_the_classic_recipe() -> None:
    config = load_config(DEFAULT_CONFIG)
    ids = [c.id for c in config.controls]
    assert ids[:3] == ["slider1", "slider2", "txt1"]
    s1, s2 = config.control("slider1"), config.control("slider2")
    assert (s1.min, s1.max, s1.default) == (0, 50, 25)
    assert (s2.min, s2.max, s2.default) == (0, 50, 0)
    assert {c.type for c in config.controls} == {"range", "text", "toggle", "button"}
    assert all(c.osc for c in config.controls)
    assert all(c.midi for c in config.controls if c.type != "text")
    assert config.osc is not None and config.midi is not None
    assert config.server.port == 5000


@pytest.mark.unit
def test_relative_state_file_is_relative_to_the_config(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    assert config.server.state_file == tmp_path / "state.json"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("controls", "key", "words"),
    [
        (
            control('id = "a"\ntype = "range"') + control('id = "a"\ntype = "toggle"\nosc = "/b"'),
            "controls[1].id",
            "duplicate id",
        ),
        (control('id = "a"\ntype = "range"\nmin = 5\nmax = 5'), "controls[0] (a).min", "less than max"),
        (control('id = "a"\ntype = "range"\nmin = 0\nmax = 10\nvalue = 11'), "controls[0] (a).value", "within min-max"),
        (control('id = "a"\ntype = "wheel"'), "controls[0] (a).type", "range, knob, toggle, button, select, text"),
        (control('id = "a"\ntype = "range"\ncolour = "red"'), "controls[0] (a).colour", "unknown key"),
        (
            control('id = "a"\ntype = "range"\nosc = "/x"') + control('id = "b"\ntype = "range"\nosc = "/x"'),
            "controls[1] (b).osc",
            "already used by 'a'",
        ),
        (
            control('id = "a"\ntype = "range"\nmidi = { channel = 2, cc = 7 }')
            + control('id = "b"\ntype = "range"\nmidi = { channel = 2, cc = 7 }'),
            "controls[1] (b).midi",
            "channel 2 cc 7",
        ),
        (
            control('id = "a"\ntype = "range"\nmidi = { channel = 1, cc = 7, hires = true }')
            + control('id = "b"\ntype = "range"\nmidi = { channel = 1, cc = 39 }'),
            "controls[1] (b).midi",
            "cc 39",
        ),
        (control('id = "a"\ntype = "range"\nmidi = { channel = 17, cc = 7 }'), "controls[0] (a).midi.channel", "1-16"),
        (control('id = "a"\ntype = "range"\nmin = "zero"'), "controls[0] (a).min", "expected"),
        (control('id = "a"\ntype = "range"\nmax = 1\nstep = 1e-305'), "controls[0] (a).step", "billionth"),
        (control('id = "a"\ntype = "toggle"\nvalue = 2'), "controls[0] (a).value", "0 or 1"),
        (control('id = "a"\ntype = "text"\nmidi = { cc = 1 }'), "controls[0] (a).midi", "no MIDI"),
        (control('id = "a b"\ntype = "range"'), "controls[0].id", "letters"),
        (control('id = "a"\ntype = "range"\nosc = "/bridge/sync"'), "controls[0] (a).osc", "/bridge"),
        ("[controls]\nid = 1", "controls", "expected [[controls]] tables"),
        (
            control('id = "a"\ntype = "toggle"\non = "go"\nosc = { address = "/a", types = "i" }'),
            "controls[0] (a).on",
            "does not fit the type tag 'i'",
        ),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, controls: str, key: str, words: str) -> None:
    path = write_config(tmp_path, controls=controls)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key
    assert words in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.unit
def test_unknown_section_and_bad_target(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(write_config(tmp_path, extra="[lights]\nx = 1"))
    with pytest.raises(ConfigError, match=r"osc\.targets\[0\]"):
        load_config(write_config(tmp_path, extra='[osc]\ntargets = ["localhost"]'))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("[server]\nport = 0\n", "server.port", "a port 1-65535"),  # "any free port": no address to open
        ('[server]\nhost = "256.1.1.1"\n', "server.host", "no IPv4 address"),
        ('[osc]\ntargets = ["127.0.0.1:0"]\n', "osc.targets[0]", "a port 1-65535"),
        ('[osc]\ntargets = ["300.1.1.1:9000"]\n', "osc.targets[0]", "no IPv4 address"),
        ('[midi]\nbackend = "os"\n', "midi.backend", "a mido backend"),
        ('[midi]\nbackend = "mido.backends.nonesuch"\n', "midi.backend", "a mido backend"),
    ],
)
def test_what_could_not_work_at_start_is_refused_by_the_check(tmp_path: Path, text: str, key: str, words: str) -> None:
    # Each passed the check, then stopped the start-up or logged a traceback.
    path = tmp_path / "show.toml"
    path.write_text(text + '[[controls]]\nid = "a"\ntype = "range"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key and words in str(info.value)


@pytest.mark.unit
def test_a_byte_order_mark_in_front_is_passed_over(tmp_path: Path) -> None:
    path = tmp_path / "notepad.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b'[server]\nport = 5000\n[[controls]]\nid = "a"\ntype = "range"\n')
    assert [c.id for c in load_config(path).controls] == ["a"]


@pytest.mark.unit
def test_a_config_with_no_controls_is_a_surface_to_build(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("controls = []\n[server]\nport = 5000\n", encoding="utf-8")
    assert load_config(path).controls == ()
    assert load_config(write_config(tmp_path, controls="")).controls == ()


@pytest.mark.unit
def test_the_editor_knows_every_key_the_loader_takes() -> None:
    assert set(FIELDS) == ALL_KEYS
    for kind, choices in FIELDS.values():
        assert kind in ("text", "number", "integer", "flag", "color", "address", "choice", "value", "toml")
        assert bool(choices) == (kind == "choice")


@pytest.mark.unit
def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


LINES = """\
[server]
port = 5000
[osc]
targets = [
  "127.0.0.1:9000",
]

[[controls]]
id = "a"
type = "range"

[[repeat]]
n = 2
[[repeat.controls]]
id = "ch{n}"
[[repeat.controls]]
id = "mute{n}"
osc = { address = "/m" }

[[controls]]
id = "b"
  colour = "red"

[[repeat]]
n = 3
[[repeat.controls]]
id = "x{n}"
"""


@pytest.mark.unit
@pytest.mark.parametrize(
    ("key", "line"),
    [
        ("server.port", 2),
        ("server", 1),
        ("osc.targets[0]", 4),
        ("controls[0] (a).type", 10),
        ("controls[1] (b).colour", 22),
        ("controls[1].id", 21),
        ("repeat[0].n", 13),
        ("repeat[0] n=2 controls[1] (mute2).osc", 18),
        ("repeat[0] n=1 controls[0] (ch1)", 14),
        ("repeat[1] n=3 controls[0] (x3).id", 27),
        ("controls[5].id", None),  # no such table
        ("views.nope", None),
    ],
)
def test_an_error_names_the_line_of_its_key(key: str, line: int | None) -> None:
    assert line_of(LINES, key) == line


@pytest.mark.unit
def test_a_config_error_starts_with_file_and_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, controls=control('id = "a"\ntype = "range"\ncolour = 1'))
    lines = path.read_text(encoding="utf-8").splitlines()
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    at = lines.index("colour = 1") + 1
    assert str(caught.value).startswith(f"{path}:{at}: controls[0] (a).colour: unknown key")
    path.write_text('[server]\nport = 5000\n[[controls]]\nid = "a\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}:4: is not valid TOML")


@pytest.mark.parametrize(
    ("controls", "expected"),
    [
        (control('id = "a"\ntype = "range"\nmin = 3\nmax = 1'), "controls[0] (a).min: must be less than max"),
        (control('id = "a"\ntype = "slider"'), "controls[0] (a).type: expected one of range"),
        (control('id = "a"\ntype = "range"') * 2, "controls[1].id: duplicate id 'a'"),
    ],
)
def test_bad_config_exits_2_with_one_line_and_no_traceback(tmp_path: Path, controls: str, expected: str) -> None:
    path = write_config(tmp_path, controls=controls)
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "--config", str(path), "--port", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and expected in lines[0]


@pytest.mark.unit
def test_table_order_reads_headers_as_toml_does() -> None:
    # A [[repeat]] inside a multi-line string is text, not a table: the controls keep their file order.
    text = '[[controls]]\nid = "a"\nlabel = """\n[[repeat]]\n"""\n[[repeat]]\ncount = 2\n[[controls]]\nid = "b"\n'
    assert table_order(text) == ["controls", "repeat", "controls"]
