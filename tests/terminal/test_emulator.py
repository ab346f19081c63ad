"""Emulator behaviour beyond what the recorded streams cover."""

from __future__ import annotations

from crowdtui.terminal import Emulator


def feed(emu: Emulator, text: str) -> None:
    emu.feed(text.encode())


def test_alternate_screen_restores_primary_and_scrollback():
    emu = Emulator(5, 20)
    feed(emu, "".join(f"line {i}\r\n" for i in range(10)) + "prompt$ ")
    primary, cursor, history = emu.text(), emu.cursor, emu.history_size
    for mode in ("1049", "1047", "47"):
        feed(emu, f"\x1b[?{mode}h\x1b[H\x1b[2Jfull screen app\r\n" + "x\r\n" * 20)
        assert emu.alternate and emu.text()[0] != primary[0]
        assert emu.history_size == history  # the alternate screen has no scrollback
        feed(emu, f"\x1b[?{mode}l")
        assert not emu.alternate
        assert emu.text() == primary
        if mode == "1049":
            assert emu.cursor == cursor


def test_modes_and_title_are_tracked():
    emu = Emulator(5, 20)
    feed(emu, "\x1b[?1h\x1b=\x1b[?2004h\x1b[?1002h\x1b[?1006h\x1b[?25l\x1b[4 q\x1b]2;hello\x07")
    assert emu.application_cursor and emu.application_keypad and emu.bracketed_paste
    assert (emu.mouse_tracking, emu.mouse_encoding) == ("button", "sgr")
    assert not emu.cursor_visible and emu.cursor_shape == "underline" and emu.title == "hello"
    feed(emu, "\x1b[?1l\x1b>\x1b[?2004l\x1b[?1002l\x1b[?1006l\x1b[?25h\x1b[0 q")
    assert not (emu.application_cursor or emu.application_keypad or emu.bracketed_paste)
    assert (emu.mouse_tracking, emu.cursor_visible, emu.cursor_shape) == ("", True, "block")


def test_attributes_and_colours():
    emu = Emulator(3, 40)
    feed(emu, "\x1b[1;2;3;4;7;9mA\x1b[0m\x1b[38;5;196mB\x1b[48;2;1;2;3mC\x1b[0;22m\x1b[38:2::10:20:30mD\x1b[2mE\x1b[22mF")
    a, b, c, d, e, f = emu.line(0)[:6]
    assert (a.bold, a.dim, a.italics, a.underscore, a.reverse, a.strikethrough) == (True,) * 6
    assert b.fg == "ff0000" and c.bg == "010203" and d.fg == "0a141e"
    assert e.dim and not f.dim


def test_wide_and_combining_characters():
    emu = Emulator(3, 10)
    feed(emu, "中文e\u0301x")
    cells = emu.line(0)
    assert [c.data for c in cells[:6]] == ["中", "", "文", "", "é", "x"]
    assert emu.cursor == (6, 0)


def test_utf8_split_across_reads():
    emu = Emulator(3, 10)
    for byte in "é中😀".encode():
        emu.feed(bytes([byte]))
    assert emu.text()[0].startswith("é中😀")


def test_unknown_sequences_leave_no_stray_characters():
    emu = Emulator(3, 40)
    feed(emu, "a\x1b[>4;2mb\x1b[?4mc\x1b[2 qd\x1bP+q544e\x1b\\e\x1b_apc\x1b\\f\x1b]8;;http://x\x1b\\g\x1b[1$ph\x1b#9i")
    assert emu.text()[0].rstrip() == "abcdefghi"
    assert not any(c.underscore or c.bold for c in emu.line(0))


def test_replies_to_queries_go_back_to_the_program():
    replies = []
    emu = Emulator(5, 20, on_reply=replies.append)
    feed(emu, "\x1b[3;4H\x1b[6n\x1b[c")
    assert replies == [b"\x1b[3;4R", b"\x1b[?6c"]


def test_shrinking_drops_blank_rows_below_the_cursor_first():
    emu = Emulator(10, 20)
    feed(emu, "one\r\ntwo\r\n$ ")
    emu.resize(5, 20)
    assert [r.strip() for r in emu.text()[:3]] == ["one", "two", "$"]
    assert emu.cursor == (2, 2)
    feed(emu, "".join(f"\r\n{i}" for i in range(8)))
    emu.resize(3, 20)  # cursor at the bottom: rows leave from the top, into scrollback
    assert [r.strip() for r in emu.text()] == ["5", "6", "7"]
    history = ["".join(c.data for c in emu.history_line(i)).strip() for i in range(emu.history_size)]
    assert history[-3:] == ["2", "3", "4"]


def test_scrollback_keeps_colours_of_scrolled_lines():
    emu = Emulator(2, 10)
    feed(emu, "\x1b[31mred\x1b[0m\r\nb\r\nc")
    assert emu.history_size == 1
    assert emu.history_line(0)[0].fg == "red"


def test_su_and_sd_scroll_only_the_region_and_bring_in_background_lines():
    emu = Emulator(6, 10)
    feed(emu, "\r\n".join(f"row{i}" for i in range(6)) + "\x1b[2;5r\x1b[3;4H")
    feed(emu, "\x1b[44m\x1b[2S\x1b[m")
    assert [r.rstrip() for r in emu.text()] == ["row0", "row3", "row4", "", "", "row5"]
    assert emu.cursor == (3, 2)  # SU does not move the cursor
    assert emu.line(3)[0].bg == "blue" and emu.line(5)[9].bg == "default"
    feed(emu, "\x1b[T")
    assert [r.rstrip() for r in emu.text()] == ["row0", "", "row3", "row4", "", "row5"]
    assert emu.line(1)[0].bg == "default"
    feed(emu, "\x1b[1;1;1;1;1T")  # five parameters: xterm's mouse highlight, not SD
    assert [r.rstrip() for r in emu.text()] == ["row0", "", "row3", "row4", "", "row5"]
    history = emu.history_size
    feed(emu, "\x1b[r\x1b[S")  # the full screen: the top row goes to scrollback
    assert emu.history_size == history + 1 and emu.text()[0].rstrip() == ""


def test_erase_takes_only_the_background_and_rep_repeats():
    emu = Emulator(3, 10)
    feed(emu, "abcdef\x1b[1;4;7;31;42m\x1b[1;3H\x1b[K\x1b[2;1H\x1b[J")
    for cell in emu.line(0)[2:] + emu.line(1) + emu.line(2):
        assert (cell.data, cell.bg, cell.fg, cell.bold, cell.underscore, cell.reverse) == (" ", "green", "default", False, False, False)
    assert emu.line(0)[0].data == "a" and emu.line(0)[0].bg == "default"
    feed(emu, "\x1b[m\x1b[3;1Hx\x1b[4b\x1b(0q\x1b[2b")
    assert emu.text()[2].rstrip() == "xxxxx───"


def test_leaving_1049_twice_restores_its_saved_cursor_each_time():
    """ncurses programs (dialog) reset 1049 right after setting it, draw on the primary
    screen, and reset it again on exit: tmux puts the cursor back both times."""
    emu = Emulator(10, 20)
    feed(emu, "one\r\ntwo\r\n\x1b7\x1b[?1049h\x1b[?1049l\x1b[5;5Hbox\x1b[10;1H\x1b[?1049l")
    assert emu.cursor == (0, 2) and not emu.alternate
    feed(emu, "\x1b[8;8H\x1b8")  # DECSC/DECRC keep their own slot
    assert emu.cursor == (0, 2)
