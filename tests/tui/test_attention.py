"""The terminal-side signs that an agent waits: a bell, a prompt left idle."""

from crowdtui.tui.attention import AttentionWatch
from crowdtui.tui.crew import merge_rows


def test_a_bell_counts_but_an_osc_terminator_does_not():
    w = AttentionWatch()
    assert not w.feed(b"\x1b]0;title\x07working...\n", 1.0)
    assert w.reason(1.0) is None
    assert not w.feed(b"\x1b]2;split across", 2.0)
    assert not w.feed(b" chunks\x07done\n", 2.1)  # still the OSC's terminator
    assert w.feed(b"need you\x07\n", 3.0)
    assert w.reason(3.0) == "rang the bell"
    w.seen()
    assert w.reason(3.0) is None


def test_a_prompt_left_idle_waits_and_new_output_clears_it():
    w = AttentionWatch(idle_after=10)
    w.feed(b"log line\nContinue? [y/N] ", 100.0)
    assert w.reason(105.0) is None
    assert w.reason(110.5) == "prompt waiting"
    w.feed(b"y\r\nworking\n", 111.0)
    assert w.reason(200.0) is None  # ends with a newline: not a prompt
    w.feed(b"\x1b[32m\x1b[0m", 201.0)  # only escapes: nothing visible
    assert w.reason(300.0) is None


def test_attention_makes_a_running_agent_wait_and_float_up():
    class A:
        def __init__(self, name, path, state="running"):
            self.name, self.path, self.tier, self.parent = name, path, 0, None
            self.state, self.status, self.status_note = state, "working", ""

    rows = merge_rows([A("a", "a"), A("b", "b"), A("c", "c", state="stopped")],
                      attention={"b": "rang the bell", "c": "rang the bell"})
    assert [r.name for r in rows] == ["operator", "b", "a", "c"]
    b = rows[1]
    assert (b.state, b.note) == ("waiting for input", "rang the bell")
    assert rows[3].state == "stopped"  # a stopped agent does not wait
