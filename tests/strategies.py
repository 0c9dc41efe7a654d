"""Hypothesis strategies for what arrives from the network: the quick fuzz tests and ``make fuzz`` share them."""

from __future__ import annotations

from hypothesis import strategies as st


def osc_datagrams() -> st.SearchStrategy[bytes]:
    """Junk, messages at mapped (and pattern) addresses with any type tags and body, bundles of any size field."""
    addresses = st.sampled_from(
        [b"/slider1", b"/txt1", b"/toggle1", b"/slider*", b"/{fine,bend}", b"/[", b"/bridge/sync"]
    )
    tags = st.text(alphabet="ifsbTFNhdtcrm[]x", max_size=6).map(lambda t: ("," + t).encode())

    def pad(b: bytes) -> bytes:
        b += b"\x00"
        return b + b"\x00" * (-len(b) % 4)

    structured = st.builds(lambda a, t, body: pad(a) + pad(t) + body, addresses, tags, st.binary(max_size=40))
    bundles = st.builds(
        lambda inner, size: b"#bundle\x00" + b"\x00" * 8 + size.to_bytes(4, "big", signed=True) + inner,
        structured,
        st.integers(-5, 80),
    )
    return st.one_of(st.binary(max_size=120), structured, bundles)


#: Any JSON, nested a little.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
#: What a browser may send with ``value changed``: any JSON, or an object with ``who`` and ``data``.
payload = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "who": st.sampled_from(["slider1", "fine", "txt1", "toggle1", "button1", "nope"]) | json_values,
            "data": json_values,
        }
    ),
)
