"""Hostile values for every door: wrong types, huge and control-laden text, path traversal.

``examples(strategy, n)`` draws ``n`` examples with a fixed seed (``derandomize=True``), so
async tests can feed them through real doors one by one, and CI always sees the same ones.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TRAVERSAL = [
    "../../etc/passwd", "..", ".", "/", "/etc/shadow", "..\\..\\windows", "SOP-001/../../x", "a/b",
    "%2e%2e%2f", "\u2025/\u2025", "~root", "SOP-001\x00.txt", "SOP-\u0661\u0662", "*", "operator", "",
]
CONTROL = ["\x00", "\x1b[2J\x1b[H", "\x1b]0;pwned\x07", "\r\n", "\u202e", "\ufeff", "\x7f", "\x9b31m", "\ud7ff"]
HUGE = ["x" * 70_000, "\u00e9" * 40_000, "A" * 1_000_000]

HOSTILE_TEXT = st.one_of(
    st.sampled_from(TRAVERSAL + CONTROL + HUGE),
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=20),
    st.builds(lambda a, b: a + b, st.sampled_from(TRAVERSAL + CONTROL), st.text(max_size=10)),
)
SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([2**64, -(2**70)]),
    st.floats(allow_nan=False, allow_infinity=False),
)
HOSTILE_VALUE = st.recursive(
    st.one_of(SCALARS, HOSTILE_TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6,
)


def examples(strategy, n: int) -> list:
    """``n`` examples of ``strategy``, the same ones on every run."""
    out: list = []

    @settings(max_examples=n, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def gather(value):
        out.append(value)

    gather()
    return out


def one_line(text: str) -> bool:
    return "\n" not in text.strip() and "Traceback" not in text
