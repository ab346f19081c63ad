"""The attach passthrough writes whole UTF-8 characters, whatever the read boundaries."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from crowdtui.cli.terminal_cmds import _Output, split_incomplete_utf8


def test_split_holds_back_only_an_unfinished_character():
    euro = "€".encode()  # 3 bytes
    smile = "🙂".encode()  # 4 bytes
    assert split_incomplete_utf8(b"abc") == (b"abc", b"")
    assert split_incomplete_utf8(b"a" + euro[:1]) == (b"a", euro[:1])
    assert split_incomplete_utf8(b"a" + euro[:2]) == (b"a", euro[:2])
    assert split_incomplete_utf8(b"a" + euro) == (b"a" + euro, b"")
    assert split_incomplete_utf8(smile[:3]) == (b"", smile[:3])
    assert split_incomplete_utf8(b"\xff\xfe") == (b"\xff\xfe", b"")  # not UTF-8: passed on as is
    assert split_incomplete_utf8(b"") == (b"", b"")


@given(st.text(), st.lists(st.integers(min_value=0, max_value=64), max_size=8))
def test_output_reassembles_text_cut_anywhere(text, cuts):
    data = text.encode()
    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        out = _Output(w)
        bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
        written = b""
        for a, b in zip(bounds, bounds[1:]):
            out.feed(data[a:b])
            try:
                written += os.read(r, 65536)
            except BlockingIOError:
                pass
            written.decode()  # everything written so far is whole characters
        assert written == data
        assert written.decode() == text
    finally:
        os.close(r)
        os.close(w)


def test_output_remembers_the_alternate_screen_to_leave_it_on_detach():
    r, w = os.pipe()
    try:
        out = _Output(w)
        out.feed(b"hello\x1b[?10")
        out.feed(b"49hfull screen")
        assert out.alt_screen
        out.restore()
        out.feed(b"\x1b[?1049l")
        assert not out.alt_screen
        os.set_blocking(r, False)
        written = os.read(r, 65536)
        assert b"\x1b[?1049l\x1b[?1000l" in written  # left the alternate screen, then reset modes
    finally:
        os.close(r)
        os.close(w)
