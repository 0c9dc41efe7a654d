"""The surface and mapping keys of the config: every new type, option and [[repeat]], and their one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import load_config
from bridge.errors import ConfigError
from bridge.model import VALUE, Option
from bridge.oscquery.namespace import Namespace
from tests.helpers import write_config

pytestmark = pytest.mark.unit


def control(body: str) -> str:
    return f'[[controls]]\nid = "a"\n{body}\n'


def load(tmp_path: Path, controls: str) -> object:
    return load_config(write_config(tmp_path, controls=controls))


@pytest.mark.parametrize(
    ("body", "key", "words"),
    [
        ('type = "dial"', "controls[0] (a).type", "range, knob, toggle, button, select, text, label, meter, led"),
        ('type = "button"\nmode = "latch"', "controls[0] (a).mode", "'push' or 'trigger'"),
        ('type = "select"\noptions = ["x"]\nstyle = "wheel"', "controls[0] (a).style", "'buttons' or 'dropdown'"),
        ('type = "range"\norientation = "diagonal"', "controls[0] (a).orientation", "'horizontal' or 'vertical'"),
        ('type = "select"\noptions = ["a", "b", "a"]', "controls[0] (a).options[2]", "listed twice"),
        ('type = "select"\noptions = [1, 1.0]', "controls[0] (a).options[1]", "listed twice"),
        ('type = "select"\noptions = []', "controls[0] (a).options", "a list of choices"),
        ('type = "select"\noptions = ["a"]\nvalue = "b"', "controls[0] (a).value", "one of the options"),
        ('type = "button"\non = true', "controls[0] (a).on", "a number, a string, or [] (no argument)"),
        ('type = "toggle"\noff = [1]', "controls[0] (a).off", "a number, a string, or []"),
        ('type = "toggle"\non = "x"\noff = "x"', "controls[0] (a).off", "must differ from on"),
        ('type = "toggle"\nconfirm = true', "controls[0] (a).confirm", "only a button has confirm"),
        ('type = "range"\nconfirm = true', "controls[0] (a).confirm", "this control is a range: remove it"),
        ('type = "label"\nmin = 3', "controls[0] (a).min", "only a range has min (a knob or meter too)"),
        ('type = "meter"\npeak_hold = -1', "controls[0] (a).peak_hold", "0 (no peak) to 60 seconds"),
        ('type = "led"\ncolors = [[1, "#ff0000"], [0, "#00ff00"]]', "controls[0] (a).colors[1]", "must rise"),
        ('type = "led"\ncolors = [[1, "red"]]', "controls[0] (a).colors[0]", '[threshold, "#rrggbb"]'),
        ('type = "range"\ncolor = "red"', "controls[0] (a).color", '"#rrggbb"'),
        ('type = "button"\nmode = "trigger"\nvalue = 1', "controls[0] (a).value", "stores nothing"),
        ('type = "text"\nlabel_from = "not an address"', "controls[0] (a).label_from", "an OSC address"),
        ('type = "label"\nmidi = { channel = 1, cc = 1 }', "controls[0] (a).midi", 'left out, is text ("")); give'),
        ('type = "label"\nvalue = "x"\nmidi = { channel = 1, cc = 1 }', "controls[0] (a).midi", "its value is text"),
        (
            'type = "range"\ncolor_from = { address = "/c", map = { "1" = "blue" } }',
            "controls[0] (a).color_from.map.1",
            "#rrggbb",
        ),
    ],
)
def test_bad_surface_keys_name_the_key_and_the_fix(tmp_path: Path, body: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, control(body))
    assert err.value.key == key and words in err.value.expected, str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("body", "key", "words"),
    [
        (
            'type = "range"\nosc = { address = "/a", curve = [[0, 0], [0.5, 0.6], [0.4, 0.7], [1, 1]] }',
            "controls[0] (a).osc.curve",
            "must be monotone",
        ),
        (
            'type = "range"\nosc = { address = "/a", curve = [[0, 0], [0.5, 0.6], [1, 0.2]] }',
            "controls[0] (a).osc.curve",
            "must rise (or fall)",
        ),
        (
            'type = "range"\nmin = -90\nmax = 10\nosc = { address = "/a", curve = [[-60, 0], [10, 1]] }',
            "controls[0] (a).osc.curve",
            "must be min and max",
        ),
        (
            'type = "range"\nosc = { address = "/a", curve = [[0, 0], [1, 1]], range = [0, 1] }',
            "controls[0] (a).osc.range",
            "remove range",
        ),
        (
            'type = "range"\nosc = { address = "/a", curve = "cubic" }',
            "controls[0] (a).osc.curve",
            '"linear", "log", "exp"',
        ),
        (
            'type = "range"\nmin = 0\nmax = 1\nosc = { address = "/a", curve = "log" }',
            "controls[0] (a).osc.curve",
            "min above 0",
        ),
        (
            'type = "range"\nosc = { address = "/a", curve = "exp", range = [0, 1] }',
            "controls[0] (a).osc.curve",
            "wire range above 0",
        ),
        (
            'type = "range"\nosc = { address = "/a", range = [1, 1] }',
            "controls[0] (a).osc.range",
            "two different numbers",
        ),
        (
            'type = "range"\nosc = { address = "/a", args = ["cue", 5] }',
            "controls[0] (a).osc.args",
            'put "{value}" where it goes',
        ),
        (
            'type = "range"\nosc = { address = "/a", args = ["{value}", "{value}"] }',
            "controls[0] (a).osc.args",
            "may appear once",
        ),
        (
            'type = "range"\nosc = { address = "/a", args = ["cue", "{value}"], types = "s" }',
            "controls[0] (a).osc.types",
            "expected 2 type tags",
        ),
        (
            'type = "range"\nosc = { address = "/a", args = ["cue", "{value}"], types = "if" }',
            "controls[0] (a).osc.types",
            "does not fit 'cue'",
        ),
        ('type = "range"\nosc = { address = "/a", types = "x" }', "controls[0] (a).osc.types", "OSC type tags"),
        (
            'type = "toggle"\nosc = { address = "/a", range = [0, 1] }',
            "controls[0] (a).osc.range",
            "only a range, knob or meter",
        ),
        (
            'type = "range"\nmidi = { channel = 1, cc = 7, range = [0, 200] }',
            "controls[0] (a).midi.range",
            "MIDI numbers are 0-127",
        ),
        (
            'type = "select"\noptions = ["a", "b"]\nmidi = { channel = 1, note = 3 }',
            "controls[0] (a).midi",
            "a select takes cc, nrpn, pitchbend or program",
        ),
    ],
)
def test_bad_mapping_keys_name_the_key_and_the_fix(tmp_path: Path, body: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, control(body))
    assert err.value.key == key and words in err.value.expected, str(err.value)


def test_every_new_type_loads_with_its_defaults(tmp_path: Path) -> None:
    config = load_config(
        write_config(
            tmp_path,
            controls="""
[[controls]]
id = "name"
type = "label"
[[controls]]
id = "level"
type = "meter"
min = -60
max = 6
peak_hold = 1.5
[[controls]]
id = "rec"
type = "led"
[[controls]]
id = "state"
type = "led"
colors = [[0, "#333333"], [2, "#FF3030"]]
[[controls]]
id = "list"
type = "select"
options = ["Main", 2, { value = 3.5, label = "Three and a half" }]
style = "dropdown"
[[controls]]
id = "pan"
type = "knob"
min = -1
max = 1
reset = true
[[controls]]
id = "go"
type = "button"
mode = "trigger"
confirm = true
on = []
color = "#2E9D4F"
page = "Cues"
[[controls]]
id = "power"
type = "toggle"
on = "start"
off = "stop"
""",
        )
    )
    c = {control.id: control for control in config.controls}
    assert c["name"].default == "" and c["name"].read_only
    assert c["level"].default == -60 and c["level"].peak_hold == 1.5 and c["level"].read_only
    assert c["rec"].default == 0 and c["rec"].switch
    assert (
        c["state"].default == 0 and c["state"].colors == ((0.0, "#333333"), (2.0, "#ff3030")) and not c["state"].switch
    )
    assert c["list"].options == (Option("Main", "Main"), Option(2, "2"), Option(3.5, "Three and a half"))
    assert c["list"].default == "Main" and c["list"].style == "dropdown"
    assert c["pan"].fader and c["pan"].touch == "relative" and c["pan"].reset and c["pan"].default == -1
    assert c["go"].trigger and c["go"].confirm and c["go"].on == () and c["go"].color == "#2e9d4f"
    assert c["go"].page == "Cues"
    assert (c["power"].on, c["power"].off) == ("start", "stop")


# Each template a table of its own ([[repeat.controls]]): TOML's inline tables must fit on one line.
STRIP = """
[[repeat]]
n = 16

[[repeat.controls]]
id = "name{n}"
type = "label"
group = "Ch {n:02}"
page = "Mix {(n-1)//8*8+1}-{(n-1)//8*8+8}"
label_from = "/ch/{n:02}/config/name"

[[repeat.controls]]
id = "fader{n}"
type = "range"
orientation = "vertical"
min = -90
max = 10
value = -90
group = "Ch {n:02}"
page = "Mix {(n-1)//8*8+1}-{(n-1)//8*8+8}"
osc = "/ch/{n:02}/mix/fader"
midi = { channel = 1, cc = "{n+10}" }
"""


def written_out(count: int) -> str:
    tables = []
    for n in range(1, count + 1):
        page = "1-8" if n <= 8 else "9-16"
        tables.append(
            f'[[controls]]\nid = "name{n}"\ntype = "label"\ngroup = "Ch {n:02}"\npage = "Mix {page}"\n'
            f'label_from = "/ch/{n:02}/config/name"\n'
            f'[[controls]]\nid = "fader{n}"\ntype = "range"\norientation = "vertical"\nmin = -90\nmax = 10\n'
            f'value = -90\ngroup = "Ch {n:02}"\npage = "Mix {page}"\nosc = "/ch/{n:02}/mix/fader"\n'
            f"midi = {{ channel = 1, cc = {n + 10} }}\n"
        )
    return "\n".join(tables)


def test_a_repeat_of_16_is_the_16_strips_written_out(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "h").mkdir()
    repeated = load_config(write_config(tmp_path / "r", controls=STRIP))
    by_hand = load_config(write_config(tmp_path / "h", controls=written_out(16)))
    strip = {"where"}
    for a, b in zip(repeated.controls, by_hand.controls, strict=True):
        assert {k: v for k, v in vars(a).items() if k not in strip} == {
            k: v for k, v in vars(b).items() if k not in strip
        }
    assert [c.id for c in repeated.controls] == [c.id for c in by_hand.controls]
    # The same OSCQuery namespace and the same MIDI bindings.
    ns_r, ns_h = Namespace(repeated.controls, "x"), Namespace(by_hand.controls, "x")
    values = {c.id: c.default for c in by_hand.controls}
    assert ns_r.describe(ns_r.root, values, "control") == ns_h.describe(ns_h.root, values, "control")
    assert [c.midi for c in repeated.controls] == [c.midi for c in by_hand.controls]
    assert repeated.controls[3].where == "repeat[0] n=2 controls[1]"


def test_repeat_from_to_and_the_errors_it_reports(tmp_path: Path) -> None:
    config = load(
        tmp_path, '[[repeat]]\nfrom = 9\nto = 10\ncontrols = [{ id = "f{n}", type = "range", osc = "/f/{n*2}" }]\n'
    )
    assert [(c.id, c.osc) for c in config.controls] == [("f9", "/f/18"), ("f10", "/f/20")]  # type: ignore[attr-defined]
    for body, key, words in (
        ('n = 0\ncontrols = [{ id = "f{n}", type = "range" }]', "repeat[0].n", "expected 1-1000"),
        ('n = 1001\ncontrols = [{ id = "f{n}", type = "range" }]', "repeat[0].n", "expected 1-1000"),
        ('n = 2\nfrom = 1\nto = 2\ncontrols = [{ id = "f{n}", type = "range" }]', "repeat[0]", "not both"),
        ('n = 2\ncontrols = [{ id = "f{m}", type = "range" }]', "repeat[0] n=1 controls[0]", "unknown field 'm'"),
        (
            'n = 2\ncontrols = [{ id = "f{n}", type = "range", osc = "/x" }]',
            "repeat[0] n=2 controls[0] (f2).osc",
            "already used by 'f1'",
        ),
        (
            'n = 2\ncontrols = [{ id = "f", type = "range" }]',
            "repeat[0] n=2 controls[0].id",
            "duplicate id 'f' (also repeat[0] n=1 controls[0])",
        ),
        (
            'n = 3\ncontrols = [{ id = "f{n}", type = "range", midi = { cc = "{n//2}" } }]',
            "repeat[0] n=3 controls[0] (f3).midi",
            "already used by 'f2'",
        ),
    ):
        with pytest.raises(ConfigError) as err:
            load(tmp_path, f"[[repeat]]\n{body}\n")
        assert err.value.key == key and words in err.value.expected, str(err.value)


def test_osc_templates_and_scales_are_read(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[[controls]]
id = "cue"
type = "range"
osc = { address = "/eos/cue", args = ["fire", 5, "{value}"], types = "sif" }
[[controls]]
id = "cue6"
type = "range"
osc = { address = "/eos/cue", args = ["fire", 6, "{value}"] }
[[controls]]
id = "db"
type = "range"
min = -90
max = 10
osc = { address = "/ch/01/mix/fader", curve = [[-90, 0], [-60, 0.0625], [-30, 0.25], [-10, 0.5], [10, 1]] }
[[controls]]
id = "hz"
type = "knob"
min = 20
max = 20000
osc = { address = "/eq/freq", curve = "log" }
""",
    )
    c = {control.id: control for control in config.controls}  # type: ignore[attr-defined]
    assert c["cue"].osc_args == ("fire", 5, VALUE) and c["cue"].osc_types == "sif"
    assert c["db"].osc_scale.curve == "table" and c["db"].osc_scale.points[2] == (-30.0, 0.25)
    assert (c["hz"].osc_scale.lo, c["hz"].osc_scale.hi, c["hz"].osc_scale.curve) == (0.0, 1.0, "log")


@pytest.mark.parametrize(
    ("body", "key", "words"),
    [
        (
            'type = "select"\noptions = [0, 128]\nmidi = { program = true }',
            "controls[0] (a).midi.program",
            "program numbers 0-127",
        ),
        (
            'type = "select"\noptions = ["a"]\nmidi = { program = true }',
            "controls[0] (a).midi.program",
            "program numbers 0-127",
        ),
        (
            'type = "range"\nmin = 0\nmax = 200\nmidi = { program = true }',
            "controls[0] (a).midi.program",
            "within min = 0, max = 127",
        ),
        ('type = "toggle"\nmidi = { program = true }', "controls[0] (a).midi.program", "needs a select"),
        ('type = "range"\nmidi = { nrpn = 16384 }', "controls[0] (a).midi.nrpn", "expected 0-16383"),
        (
            'type = "range"\nmidi = { nrpn = 5, hires = true }',
            "controls[0] (a).midi.hires",
            "an nrpn is 14-bit already",
        ),
    ],
)
def test_bad_program_and_nrpn_bindings_name_the_key(tmp_path: Path, body: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, control(body))
    assert err.value.key == key and words in err.value.expected, str(err.value)


def test_an_nrpn_keeps_its_carrier_ccs(tmp_path: Path) -> None:
    controls = (
        control('type = "range"\nmidi = { channel = 3, nrpn = 7 }')
        + '[[controls]]\nid = "b"\ntype = "range"\nmidi = { channel = 3, cc = 6 }\n'
    )
    with pytest.raises(ConfigError) as err:
        load(tmp_path, controls)
    assert err.value.key == "controls[1] (b).midi" and "carries the NRPNs of 'a'" in err.value.expected
    assert load(tmp_path, controls.replace("channel = 3, cc = 6", "channel = 4, cc = 6"))


def test_repeated_controls_keep_their_place_among_the_others(tmp_path: Path) -> None:
    text = (
        '[[controls]]\nid = "first"\ntype = "range"\n'
        '[[repeat]]\nn = 2\n[[repeat.controls]]\nid = "strip{n}"\ntype = "range"\n'
        '[[controls]]\nid = "last"\ntype = "range"\n'
    )
    config = load(tmp_path, text)
    assert [c.id for c in config.controls] == ["first", "strip1", "strip2", "last"]  # type: ignore[attr-defined]


def test_the_value_may_stand_in_the_address(tmp_path: Path) -> None:
    config = load(tmp_path, control('type = "select"\noptions = ["1", "SND"]\nosc = "/select/{value}"'))
    (select,) = config.controls  # type: ignore[attr-defined]
    assert select.osc == "/select/{value}" and select.osc_args == ()
    for body, key, words in (
        ('type = "select"\noptions = ["1"]\nosc = "/a/{value}/{value}"', "controls[0] (a).osc", "once"),
        ('type = "button"\nmode = "trigger"\nosc = "/go/{value}"', "controls[0] (a).osc", "an OSC address"),
        (
            'type = "range"\nosc = { address = "/s/{value}", args = ["{value}"] }',
            "controls[0] (a).osc.args",
            "in the address already",
        ),
    ):
        with pytest.raises(ConfigError) as err:
            load(tmp_path, control(body))
        assert err.value.key == key and words in err.value.expected, str(err.value)
