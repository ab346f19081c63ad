"""Route matching: ordered glob routes, present/absent terms, sticky, commands, @name."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given, seed, settings, strategies as st

from crowdtui.dispatch.matching import (
    FIELDS,
    BadExpression,
    Incoming,
    Route,
    decide,
    first_match,
    glob_escape,
    parse_expression,
)

ROUTES = [
    Route(1, "platform=telegram room=-100* sender=*", "lead", 0),
    Route(2, "platform=local chat=local:ops* verb=deploy", "ops", 1),
    Route(3, "platform=local verb=", "helper", 2),
    Route(4, "platform=local", "catchall", 3),
]


@pytest.mark.parametrize(
    "msg, agent",
    [
        (Incoming("tg:1", "hi", platform="telegram", room="-100555", sender="u1"), "lead"),
        # sender absent: the telegram route needs sender=* (present)
        (Incoming("tg:1", "hi", platform="telegram", room="-100555"), None),
        # room does not match -100*
        (Incoming("tg:1", "hi", platform="telegram", room="-200", sender="u1"), None),
        (Incoming("local:ops-1", "/deploy now", platform="local"), "ops"),
        # same verb in another chat: verb= fails (verb present), catch-all takes it
        (Incoming("local:bob", "/deploy now", platform="local"), "catchall"),
        (Incoming("local:bob", "plain text", platform="local"), "helper"),
        (Incoming("x:1", "hello", platform="slack"), None),
    ],
)
def test_first_matching_route_in_order(msg, agent):
    route = first_match(ROUTES, msg.fields())
    assert (route.agent if route else None) == agent


def test_order_is_position_not_list_order():
    routes = [Route(1, "*", "second", 5), Route(2, "chat=a*", "first", 1)]
    assert first_match(routes, Incoming("abc").fields()).agent == "first"
    assert first_match(routes, Incoming("zzz").fields()).agent == "second"


@pytest.mark.parametrize(
    "expr, fields, ok",
    [
        ("sender=*", {"sender": "x"}, True),
        ("sender=*", {"sender": ""}, False),
        ("sender=*", {}, False),
        ("sender=", {}, True),
        ("sender=", {"sender": "x"}, False),
        ("chat=Local:*", {"chat": "local:a"}, False),  # case-sensitive
        ("chat=local:?", {"chat": "local:a"}, True),
        ("chat=local:[ab]", {"chat": "local:c"}, False),
        ('sender="Ann Lee"', {"sender": "Ann Lee"}, True),
        ("chat=a* chat=*z", {"chat": "abz"}, True),
        ("chat=a* chat=*z", {"chat": "aby"}, False),
        ("*", {}, True),
    ],
)
def test_terms(expr, fields, ok):
    assert parse_expression(expr).matches(fields) is ok


@pytest.mark.parametrize(
    "expr, says",
    [
        ("", "use '*'"),
        ("   ", "use '*'"),
        ("chat", "has no '='"),
        ("user=bob", "unknown key 'user'"),
        ('sender="open', "check the quotes"),
        ("chat=a\x1b[2J", "control characters"),
        ("chat=" + "a" * 2000, "longer than"),
    ],
)
def test_malformed_expression_says_what_to_fix(expr, says):
    with pytest.raises(BadExpression) as exc:
        parse_expression(expr)
    assert says in str(exc.value)
    assert "\n" not in str(exc.value)


def test_non_text_expression_is_refused():
    with pytest.raises(BadExpression):
        parse_expression(["chat=*"])  # type: ignore[arg-type]


AGENTS = {"lead", "ops", "helper", "catchall", "qa"}
LOCAL = [Route(1, "platform=local", "helper", 0)]


def local(text: str) -> Incoming:
    return Incoming("local:me", text, platform="local", sender="me")


def test_unrouted_message_is_held_even_with_commands_or_mentions():
    for text in ("hello", "@qa hi", "@qa", "/who", "/new"):
        d = decide(Incoming("x:1", text, platform="slack"), LOCAL, sticky="qa", agents=AGENTS)
        assert d.kind == "hold", text


def test_route_then_sticky_then_direct():
    assert decide(local("hi"), LOCAL, agents=AGENTS).agent == "helper"
    d = decide(local("hi"), LOCAL, sticky="qa", agents=AGENTS)
    assert (d.kind, d.agent, d.how) == ("deliver", "qa", "sticky")
    d = decide(local("@ops  deploy it "), LOCAL, sticky="qa", agents=AGENTS)
    assert (d.kind, d.agent, d.text, d.how) == ("deliver", "ops", "deploy it", "direct")


def test_bare_mention_sets_sticky_and_unknown_name_is_an_error():
    d = decide(local("@ops"), LOCAL, agents=AGENTS)
    assert (d.kind, d.agent) == ("sticky", "ops")
    d = decide(local("@nobody hello"), LOCAL, agents=AGENTS)
    assert d.kind == "error" and "no agent named nobody" in d.reason


def test_sticky_for_a_removed_agent_falls_back_to_the_route():
    d = decide(local("hi"), LOCAL, sticky="gone", agents=AGENTS)
    assert (d.agent, d.how) == ("helper", "route")


def test_email_like_text_is_not_a_mention():
    d = decide(local("mail me@example.com"), LOCAL, sticky=None, agents=AGENTS)
    assert (d.agent, d.text) == ("helper", "mail me@example.com")


@pytest.mark.parametrize("cmd", ["new", "who", "stop"])
def test_commands(cmd):
    d = decide(local(f"/{cmd}"), LOCAL, sticky="qa", agents=AGENTS)
    assert (d.kind, d.command, d.agent) == ("command", cmd, "qa")
    d = decide(local(f"/{cmd}@mybot"), LOCAL, agents=AGENTS)
    assert (d.kind, d.command, d.agent) == ("command", cmd, "helper")


def test_other_slash_words_are_text_with_a_verb():
    d = decide(local("/newsletter please"), LOCAL, agents=AGENTS)
    assert (d.kind, d.agent) == ("deliver", "helper")
    assert local("/newsletter please").verb == "newsletter"
    assert local("a/b").verb is None


# --- properties -------------------------------------------------------------

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
values = st.one_of(st.none(), st.text(alphabet="abc:-*?[]", max_size=8))


@seed(20261122)
@settings(max_examples=300, deadline=None, derandomize=True)
@given(value=st.text(max_size=20), other=st.text(max_size=20))
def test_glob_escape_matches_exactly_itself(value, other):
    pattern = glob_escape(value)
    assert fnmatch.fnmatchcase(value, pattern)
    assert fnmatch.fnmatchcase(other, pattern) == (other == value)


@seed(20261122)
@settings(max_examples=300, deadline=None, derandomize=True)
@given(fields=st.fixed_dictionaries({k: values for k in FIELDS}), key=st.sampled_from(FIELDS))
def test_present_and_absent_are_complements(fields, key):
    present = parse_expression(f"{key}=*").matches(fields)
    absent = parse_expression(f"{key}=").matches(fields)
    assert present != absent


@seed(20261122)
@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    patterns=st.lists(st.sampled_from(["*", "local:*", "local:a*", "x*", "local:?"]), min_size=1, max_size=6),
    chat=st.sampled_from(["local:a", "local:ab", "xy", "zz"]),
    text=texts,
)
def test_first_match_is_the_lowest_position_that_matches(patterns, chat, text):
    routes = [Route(i + 1, f"chat={p}", f"a{i}", i) for i, p in enumerate(patterns)]
    got = first_match(reversed(routes), Incoming(chat, text).fields())
    want = next((r for r in routes if fnmatch.fnmatchcase(chat, r.match[5:])), None)
    assert got == want


@seed(20261122)
@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=texts, sticky=st.sampled_from([None, "qa", "gone"]))
def test_decide_never_delivers_to_an_unknown_agent(text, sticky):
    d = decide(local(text), LOCAL, sticky=sticky, agents=AGENTS)
    assert d.kind in ("deliver", "command", "sticky", "error")
    if d.kind in ("deliver", "sticky"):
        assert d.agent in AGENTS
    if d.kind == "deliver" and d.how != "direct":
        assert d.text == text


@seed(20261122)
@settings(max_examples=200, deadline=None, derandomize=True)
@given(fields=st.fixed_dictionaries({k: values for k in FIELDS}))
def test_printed_expression_parses_back_to_the_same_meaning(fields):
    terms = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and " " not in v)
    if not terms:
        return
    expr = parse_expression(terms)
    assert parse_expression(str(expr)) == expr
