"""Names are checked before anything reaches the database."""

from __future__ import annotations

import pytest

from qms.errors import InvalidInput
from qms.names import validate_name, validate_path, validate_target

GOOD = ["a", "alice", "lead-2", "qa_bot", "0x", "a" * 63, "operator"]
BAD = [
    "", "A", "Alice", "-lead", "_x", "a" * 64, "a/b", "..", "../etc", "a..b/", "x y", "tab\tx",
    "esc\x1b[31m", "nul\x00", "bell\x07", "del\x7f", "c1\x9b31m", "é", "*", "a*", "a.b", None, 3,
]


@pytest.mark.parametrize("name", GOOD)
def test_valid_names_pass(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", BAD)
def test_invalid_names_are_refused_with_one_printable_line(name):
    with pytest.raises(InvalidInput) as info:
        validate_name(name)
    text = str(info.value)
    assert "\n" not in text and "\x1b" not in text and "\x00" not in text and "\x9b" not in text
    assert "a-z" in text  # says what is allowed


def test_star_is_a_target_but_not_a_name():
    assert validate_target("*") == "*"
    with pytest.raises(InvalidInput):
        validate_name("*")
    with pytest.raises(InvalidInput):
        validate_target("**")


@pytest.mark.parametrize("path", ["lead", "lead/research", "lead/research/web-2"])
def test_roster_paths(path):
    assert validate_path(path) == path


@pytest.mark.parametrize("path", ["", "/abs", "lead/../x", "..", "lead/", "a//b", "./a", "a\\b", "a\x1b"])
def test_bad_roster_paths(path):
    with pytest.raises(InvalidInput, match="agent path"):
        validate_path(path)
