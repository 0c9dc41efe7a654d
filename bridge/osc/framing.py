"""OSC over a byte stream (TCP): packets framed by a length or by SLIP.

Two framings are in use, and consoles pick one:

``length``
    OSC 1.0: each packet is preceded by its size, a big-endian int32
    (ETC Eos calls it "OSC 1.0 packet length headers"; liblo's
    ``osc.tcp://`` speaks it).
``slip``
    OSC 1.1: each packet is SLIP-encoded (RFC 1055) between two END bytes
    (Eos's "OSC 1.1 SLIP", QLab over TCP).

A :class:`Deframer` turns the bytes as they arrive into whole packets and
raises :class:`MalformedPacket` for a stream that cannot be OSC: a length
over :data:`MAX_PACKET`, an escape that means nothing, a packet that never
ends. The connection is then closed; nothing else is disturbed.
"""

from __future__ import annotations

import struct
from typing import Literal

from bridge.errors import MalformedPacket

Framing = Literal["slip", "length"]
#: The largest packet taken from a stream: a UDP datagram's worth.
MAX_PACKET = 65536

END = 0xC0
ESC = 0xDB
ESC_END = 0xDC
ESC_ESC = 0xDD


def frame(packet: bytes, framing: Framing) -> bytes:
    """``packet`` ready to write to a stream."""
    if framing == "length":
        return struct.pack(">i", len(packet)) + packet
    escaped = packet.replace(bytes([ESC]), bytes([ESC, ESC_ESC])).replace(bytes([END]), bytes([ESC, ESC_END]))
    return bytes([END]) + escaped + bytes([END])


def guess(first: int) -> Framing:
    """The framing a stream that begins with byte ``first`` uses.

    A length prefix of any packet this bridge takes begins with a zero byte;
    a SLIP stream begins with END, or with the packet itself ('/' or '#').
    """
    return "length" if first == 0 else "slip"


class Deframer:
    """Whole packets out of a stream's bytes, as they arrive. ``framing`` None: guessed from the first byte."""

    def __init__(self, framing: Framing | None = None) -> None:
        self.framing = framing
        self._buffer = bytearray()
        self._escaped = False

    def feed(self, data: bytes) -> list[bytes]:
        """The packets completed by ``data``; :class:`MalformedPacket` when the stream is not OSC."""
        if not data:
            return []
        if self.framing is None:
            self.framing = guess(data[0])
        return self._lengths(data) if self.framing == "length" else self._slip(data)

    def _lengths(self, data: bytes) -> list[bytes]:
        self._buffer += data
        packets = []
        while len(self._buffer) >= 4:
            (size,) = struct.unpack_from(">i", self._buffer)
            if not 0 < size <= MAX_PACKET:
                raise MalformedPacket(f"packet length {size} is not 1-{MAX_PACKET}")
            if len(self._buffer) < 4 + size:
                break
            packets.append(bytes(self._buffer[4 : 4 + size]))
            del self._buffer[: 4 + size]
        return packets

    def _slip(self, data: bytes) -> list[bytes]:
        packets = []
        buffer = self._buffer
        for byte in data:
            if self._escaped:
                self._escaped = False
                if byte == ESC_END:
                    buffer.append(END)
                elif byte == ESC_ESC:
                    buffer.append(ESC)
                else:
                    raise MalformedPacket(f"SLIP escape followed by {byte:#04x}")
            elif byte == END:
                if buffer:  # two ENDs in a row (OSC 1.1's double END) frame nothing
                    packets.append(bytes(buffer))
                    buffer.clear()
            elif byte == ESC:
                self._escaped = True
            else:
                buffer.append(byte)
            if len(buffer) > MAX_PACKET:
                raise MalformedPacket(f"SLIP packet longer than {MAX_PACKET} bytes with no END")
        return packets
