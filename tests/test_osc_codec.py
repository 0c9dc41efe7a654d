"""OSC packet checks, patterns and argument rules, without sockets."""

from __future__ import annotations

import logging
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.errors import InvalidValue, MalformedPacket
from bridge.hub import Hub
from bridge.model import VALUE, Control, Option
from bridge.osc import codec
from bridge.osc.codec import encode, value_from_args
from bridge.osc.inbound import Inbound, Source
from bridge.osc.packets import MAX_PATTERN_LENGTH, check_packet, messages, pattern_regex

pytestmark = pytest.mark.unit

RANGE = Control("r", "range", "R", 0.0, "/r", min=0, max=1)
TEXT = Control("x", "text", "X", "", "/x")
TOGGLE = Control("t", "toggle", "T", 0, "/t")


def msg(address: str, *args: object) -> bytes:
    builder = OscMessageBuilder(address=address)
    for arg in args:
        builder.add_arg(arg)
    return bytes(builder.build().dgram)


def test_whole_messages_pass() -> None:
    for data in (msg("/a"), msg("/a", 1), msg("/a", 1.5), msg("/a", "text"), msg("/a", True), msg("/a", b"\x01\x02")):
        check_packet(data)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (msg("/slider1", 0.5)[:-4], "cut short"),  # the float is missing: python-osc would read 0.0
        (msg("/slider1", "abcdefgh")[:-4], "no terminating NUL"),
        (b"", "multiple of 4"),
        (b"/ab", "multiple of 4"),
        (b"junk", "neither a message"),
        (b"/a\x00\x00,x\x00\x00", "unknown type tag"),
        (b"/a\x00\x00i\x00\x00\x00", "does not start with ','"),
        (msg("/a", 1) + b"\x00\x00\x00\x00", "bytes after"),
        (b"#bundle\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x40" + msg("/a", 1), "does not fit"),
    ],
)
def test_broken_packets_are_refused(data: bytes, words: str) -> None:
    with pytest.raises(MalformedPacket, match=words):
        check_packet(data)


def bundle(*contents: bytes) -> bytes:
    out = b"#bundle\x00" + struct.pack(">q", 1)
    for content in contents:
        out += struct.pack(">i", len(content)) + content
    return out


def test_nested_bundles_unpack_in_order() -> None:
    inner = bundle(msg("/b", 2), msg("/c", 3))
    data = bundle(msg("/a", 1), inner, msg("/d", 4))
    check_packet(data)
    assert [(m.address, m.params) for m in messages(data)] == [("/a", [1]), ("/b", [2]), ("/c", [3]), ("/d", [4])]


def test_too_deep_bundles_are_refused() -> None:
    data = msg("/a", 1)
    for _ in range(20):
        data = bundle(data)
    with pytest.raises(MalformedPacket, match="nested deeper"):
        check_packet(data)


def test_bundle_from_python_osc_builder() -> None:
    builder = OscBundleBuilder(IMMEDIATELY)
    builder.add_content(OscMessage(msg("/a", 1)))
    data = bytes(builder.build().dgram)
    check_packet(data)
    assert [m.address for m in messages(data)] == ["/a"]


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("/slider*", ["/slider1", "/slider22", "/slider"], ["/slider1/x", "/txt1"]),
        ("/slider?", ["/slider1", "/slider2"], ["/slider12"]),
        ("/slider[1-3]", ["/slider1", "/slider3"], ["/slider4"]),
        ("/slider[!1-3]", ["/slider4"], ["/slider1"]),
        ("/{slider1,txt1}", ["/slider1", "/txt1"], ["/slider2"]),
        ("/*/level", ["/mix/level"], ["/level", "/a/b/level"]),
        ("/a.b", ["/a.b"], ["/axb"]),
        ("/*a*b*", ["/xaxbx", "/ab", "/aab"], ["/ba", "/a/b"]),
        ("/*{ab,a}c", ["/xabc", "/xac"], ["/xabd"]),
        ("/{mix/level,fx}", ["/mix/level", "/fx"], ["/mix"]),
        ("/x[!a]y", ["/xby"], ["/xay", "/x/y"]),  # nothing but a / matches a /
        ("/" + "*" * 60 + "x", ["/slider1x"], ["/slider1", "/" + "s" * 40]),
        ("/" + "*s" * 20 + "x", ["/" + "s" * 20 + "x"], ["/" + "s" * 40]),
    ],
)
def test_address_patterns(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = pattern_regex(pattern)
    assert all(regex.match(a) for a in matches)
    assert not any(regex.match(a) for a in misses)


def test_patterns_too_long_or_with_too_many_alternatives_are_refused() -> None:
    with pytest.raises(MalformedPacket, match="longer than"):
        pattern_regex("/" + "a" * MAX_PATTERN_LENGTH)
    with pytest.raises(MalformedPacket, match="alternatives"):
        pattern_regex("/{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}")  # 128 combinations
    assert pattern_regex("/{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}").match("/abbaba")  # 64 are fine


def test_arguments_fit_the_control_type() -> None:
    assert value_from_args(RANGE, [3]) == 3
    assert value_from_args(RANGE, [0.5]) == 0.5
    assert value_from_args(TOGGLE, [True]) is True
    assert value_from_args(TEXT, ["hi"]) == "hi"
    for control, args in (
        (RANGE, ["0.5"]),
        (RANGE, [True]),
        (RANGE, []),
        (RANGE, [1, 2]),
        (TEXT, [3]),
        (TOGGLE, ["1"]),
    ):
        with pytest.raises(InvalidValue):
            value_from_args(control, args)


def test_encode_types() -> None:
    assert OscMessage(encode("/r", RANGE, 0.25)).params == [0.25]
    assert OscMessage(encode("/r", RANGE, 0.6, "int")).params == [1]
    assert OscMessage(encode("/t", TOGGLE, 1)).params == [1]
    assert OscMessage(encode("/t", TOGGLE, 1, "float")).params == [1.0]
    assert OscMessage(encode("/x", TEXT, "héllo")).params == ["héllo"]
    assert OscMessage(encode("/stage/r", RANGE, 1)).address == "/stage/r"


def test_a_select_of_both_kinds_of_number_sends_floats_as_oscquery_advertises() -> None:
    mixed = Control("s", "select", "S", 1, "/s", options=(Option(1, "1"), Option(2.5, "2.5")))
    whole = Control("w", "select", "W", 1, "/w", options=(Option(1, "1"), Option(2, "2")))
    label = Control("l", "label", "L", 3, "/l")
    assert OscMessage(encode("/s", mixed, 1)).params == [1.0]
    assert OscMessage(encode("/s", mixed, 1)).dgram.endswith(b",f\x00\x00" + struct.pack(">f", 1.0))
    assert OscMessage(encode("/w", whole, 2)).dgram.endswith(b",i\x00\x00" + struct.pack(">i", 2))
    # A label's number keeps its own type: a float32 would carry a cue number 16777217 as 16777216.
    assert OscMessage(encode("/l", label, 16777217)).dgram.endswith(b",i\x00\x00" + struct.pack(">i", 16777217))
    assert OscMessage(encode("/l", label, "Act 1")).params == ["Act 1"]


def test_a_select_of_text_and_numbers_takes_a_number_sent_as_text_as_oscquery_describes_it() -> None:
    """Options ["Main", "Sound", 3] are typed "s" over OSCQuery; a client that sent "3" as told was refused."""
    mixed = Control("m", "select", "M", "Main", "/m", options=(Option("Main", "Main"), Option(3, "Video")))
    assert value_from_args(mixed, ["3"]) == 3 and value_from_args(mixed, ["Main"]) == "Main"
    assert value_from_args(mixed, [3]) == 3
    numbers = Control("n", "select", "N", 1, "/n", options=(Option(1, "1"), Option(3, "3")))
    assert value_from_args(numbers, ["3"]) == "3"  # typed "i": a text is no option (the hub refuses it)


def test_an_address_no_control_takes_is_logged_once_however_long_the_show(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The contract: "logged once per address". A desk's replies the show does not use (Eos's
    # /eos/out/ping after each keepalive) had one line every 5 s, all night.
    hub = Hub([RANGE])
    inbound = Inbound(hub, (), {}, lambda args, source: None)
    source = Source("127.0.0.1:9000", "127.0.0.1", lambda packet: None)
    ping = bytes(OscMessageBuilder("/eos/out/ping").build().dgram)
    clock = [1000.0]
    monkeypatch.setattr("bridge.logs.time.monotonic", lambda: clock[0])
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            inbound.handle([(ping, source)])
            clock[0] += 60.0  # a minute later, again
    assert inbound.dropped == 3
    assert [r.getMessage().count("/eos/out/ping") for r in caplog.records] == [1]


def test_a_bundle_repeating_a_pattern_reads_each_control_once_and_ends_where_its_messages_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One 64 KB datagram of 2,338 messages to /ch/*/mix/fader on a 256-channel show froze the
    # whole bridge for 1.46 s: each message was read for every channel and each value checked.
    faders = [Control(f"f{n}", "range", f"F{n}", 0.0, f"/ch/{n:02}/mix/fader", min=0, max=1) for n in range(1, 33)]
    pads = [Control(f"p{n}", "button", f"P{n}", 0, f"/pad/{n}") for n in (1, 2)]
    cues = [
        Control(f"cue{n}", "range", f"Cue {n}", 0.0, "/eos/cue", min=0, max=100, osc_args=("fire", n, VALUE))
        for n in (5, 6)
    ]
    hub = Hub([*faders, *pads, *cues])
    pressed: list[tuple[str, object]] = []
    hub.add_adapter(type("Pads", (), {"name": "pads", "send": lambda _, c: pressed.append((c.control.id, c.value))})())
    inbound = Inbound(hub, (), {}, lambda args, source: None)
    read: list[str] = []
    value_from_args = codec.value_from_args

    def counted(control: Control, args: list[object]) -> object:
        read.append(control.id)
        return value_from_args(control, args)

    monkeypatch.setattr(codec, "value_from_args", counted)
    source = Source("127.0.0.1:9000", "127.0.0.1", lambda packet: None)
    bundle = OscBundleBuilder(IMMEDIATELY)
    for i in range(1000):
        bundle.add_content(message("/ch/*/mix/fader", i / 1000))
    bundle.add_content(message("/ch/03/mix/fader", 0.25))  # one channel after
    for value in (1, 0, 1, 0):
        bundle.add_content(message("/pad/[12]", value))  # a pattern on pads: every press counts
    bundle.add_content(message("/ch/0[12]/mix/fader", 0.5))
    bundle.add_content(message("/ch/0[45]/mix/fader", "junk"))  # refused: 04 and 05 keep 0.999
    for cue, level in ((5, 11.0), (6, 22.0)):  # one pattern, other constants: other controls
        builder = OscMessageBuilder("/eos/cu?")
        for arg in ("fire", cue, level):
            builder.add_arg(arg)
        bundle.add_content(builder.build())
    inbound.handle([(bundle.build().dgram, source)])
    values = hub.values()
    assert values["f3"] == 0.25 and values["f1"] == values["f2"] == 0.5
    assert all(values[f"f{n}"] == 0.999 for n in range(4, 33))
    assert (values["cue5"], values["cue6"]) == (11.0, 22.0)
    assert [value for cid, value in pressed if cid == "p1"] == [1, 0, 1, 0]
    assert read.count("f10") == 1  # not a thousand times
    assert len(read) < 200
    # The same cue twice: the first is read only for the control the last left (cue5), whose
    # constants it does not carry; that is no fault of the message.
    dropped = inbound.dropped
    again = OscBundleBuilder(IMMEDIATELY)
    for level in (30.0, 40.0):
        builder = OscMessageBuilder("/eos/cu?")
        for arg in ("fire", 6, level):
            builder.add_arg(arg)
        again.add_content(builder.build())
    inbound.handle([(again.build().dgram, source)])
    assert (hub.values()["cue5"], hub.values()["cue6"], inbound.dropped) == (11.0, 40.0, dropped)


def message(address: str, value: object) -> OscMessage:
    builder = OscMessageBuilder(address)
    builder.add_arg(value)
    return builder.build()


def test_a_new_address_in_every_datagram_is_said_in_summaries_and_holds_bounded_memory(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Past 10,000 addresses the limiter forgot every one and said the same addresses again (14,400
    # lines more), and its counts of lines held back were never freed (18 MB per 100,000 addresses).
    monkeypatch.setattr("bridge.logs.MAX_KEYS", 50)
    clock = [1000.0]
    monkeypatch.setattr("bridge.logs.time.monotonic", lambda: clock[0])
    inbound = Inbound(Hub([RANGE]), (), {}, lambda args, source: None)
    source = Source("127.0.0.1:9000", "127.0.0.1", lambda packet: None)
    with caplog.at_level(logging.WARNING):
        for n in range(1000):
            inbound.handle([(bytes(message(f"/junk/{n}", 1).dgram), source)])
            inbound.handle([(bytes(message(f"/junk/{n}", 1).dgram), source)])  # each twice
            clock[0] += 0.001  # a second for the thousand
    lines = [r.getMessage() for r in caplog.records]
    assert inbound.dropped == 2000
    assert sum("/junk/" in line for line in lines) == 51  # 50 said once each, then one summary
    assert "too many kinds of this to say each" in lines[-1]
    limiter = inbound._once
    assert len(limiter._last) <= 50 and len(limiter._held) <= 50
    clock[0] += 10.0
    with caplog.at_level(logging.WARNING):
        inbound.handle([(bytes(message("/junk/1", 1).dgram), source)])  # said once: never again
        inbound.handle([(bytes(message("/junk/999", 1).dgram), source)])  # not remembered: a summary
    assert [r.getMessage() for r in caplog.records][len(lines) :] == [
        "OSC /junk/999 from 127.0.0.1:9000: no control at this address; dropped (said once for this address)"
        " (too many kinds of this to say each; 1899 more of other kinds held back)"
    ]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["/ch/0?/fader", "/ch/0[12]/fader", "/ch/01/fader", "/ch/*/fader", "/pad/?", "/eos/cu?"]),
            st.sampled_from([0.25, 0.5, 1.0, "junk", 5, 6]),
        ),
        max_size=12,
    )
)
def test_a_batch_ends_where_its_messages_one_by_one_end(messages: list[tuple[str, object]]) -> None:
    # The batch reads its pattern messages from the last back (one read per control): what it sets
    # must be what the same messages set one by one, and every press of a pad must count, in order.
    def bridge() -> tuple[Hub, Inbound, list[tuple[str, object]]]:
        controls = [Control(f"f{n}", "range", f"F{n}", 0.0, f"/ch/0{n}/fader", min=0, max=1) for n in (1, 2, 3)]
        controls += [Control(f"p{n}", "button", f"P{n}", 0, f"/pad/{n}") for n in (1, 2)]
        controls += [
            Control(f"cue{n}", "range", "C", 0.0, "/eos/cue", min=0, max=100, osc_args=("fire", n, VALUE))
            for n in (5, 6)
        ]
        hub = Hub(controls)
        seen: list[tuple[str, object]] = []
        hub.add_adapter(type("Seen", (), {"name": "seen", "send": lambda _, c: seen.append((c.control.id, c.value))})())
        return hub, Inbound(hub, (), {}, lambda args, source: None), seen

    def datagram(address: str, value: object) -> bytes:
        builder = OscMessageBuilder(address)
        args = ["fire", 5 if value in (5, 0.25) else 6, 10.0] if address == "/eos/cu?" else [value]
        for arg in args:
            builder.add_arg(arg)
        return bytes(builder.build().dgram)

    source = Source("127.0.0.1:9000", "127.0.0.1", lambda packet: None)
    together, batch, seen_together = bridge()
    bundle = OscBundleBuilder(IMMEDIATELY)
    for address, value in messages:
        bundle.add_content(OscMessage(datagram(address, value)))
    batch.handle([(bundle.build().dgram, source)] if messages else [])
    apart, single, seen_apart = bridge()
    for address, value in messages:
        single.handle([(datagram(address, value), source)])
    assert together.values() == apart.values()
    pads = [(cid, value) for cid, value in seen_apart if cid.startswith("p")]
    assert [(cid, value) for cid, value in seen_together if cid.startswith("p")] == pads
