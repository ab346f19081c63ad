"""Grant rules: tier defaults narrowed (never widened) by `[!]tool[(param=glob,...)]` rules."""

import pytest

from crowdtui.hub.grants import ALL_TOOLS, DOCUMENT_TOOLS, MESSAGING_TOOLS, GrantRuleError, Grants, parse_rule


def test_tier_zero_may_call_everything():
    g = Grants.of(0)
    assert g.visible_tools(ALL_TOOLS) == list(ALL_TOOLS)
    assert all(g.check(t, {}).allowed for t in ALL_TOOLS)


def test_deep_tiers_lose_observe_and_broadcast_but_keep_documents_and_messaging():
    g = Grants.of(2)
    assert "observe" not in g.visible_tools()
    assert not g.check("observe", {"agent": "lead"}).allowed
    assert not g.check("send_message", {"to": "*", "body": "hi"}).allowed
    assert g.check("send_message", {"to": "lead", "body": "hi"}).allowed
    for tool in DOCUMENT_TOOLS + MESSAGING_TOOLS:
        assert tool in g.visible_tools()


def test_last_matching_rule_wins_and_no_match_denies():
    g = Grants.of(0, ["*", "!observe", "observe(agent=qa)"])
    assert g.check("observe", {"agent": "qa"}).allowed
    denied = g.check("observe", {"agent": "lead"})
    assert not denied.allowed and "'!observe'" in denied.reason
    only = Grants.of(0, ["get_messages"])
    assert only.check("get_messages", {}).allowed
    refused = only.check("send_message", {"to": "lead", "body": "x"})
    assert not refused.allowed and "no grant rule" in refused.reason
    assert only.visible_tools() == ["get_messages"]


def test_rules_cannot_widen_the_tier_default():
    g = Grants.of(3, ["*", "observe"])
    assert not g.check("observe", {"agent": "lead"}).allowed
    assert "observe" not in g.visible_tools()


def test_parameter_globs_match_text_and_lists():
    g = Grants.of(1, ["*", "!route_document(assignees=ext-*)", "!send_message(to=[*])"])
    assert g.check("route_document", {"doc_id": "SOP-001", "kind": "review", "assignees": ["qa"]}).allowed
    assert not g.check("route_document", {"doc_id": "SOP-001", "kind": "review", "assignees": ["ext-a", "ext-b"]}).allowed
    assert not g.check("send_message", {"to": "*", "body": "all"}).allowed
    # a conditional allow keeps the tool visible even after an unconditional deny
    g2 = Grants.of(1, ["!send_message", "send_message(to=lead)"])
    assert g2.visible_tools() == ["send_message"]
    assert g2.check("send_message", {"to": "lead", "body": "x"}).allowed
    assert not g2.check("send_message", {"to": "qa", "body": "x"}).allowed


def test_unknown_tools_are_refused_with_what_to_do():
    d = Grants.of(0).check("drop_database", {})
    assert not d.allowed and "tools/list" in d.reason


@pytest.mark.parametrize("bad", ["", "!", "send message", "observe(agent)", "observe()", "x(=1)"])
def test_bad_rules_say_what_the_syntax_is(bad):
    with pytest.raises(GrantRuleError) as err:
        parse_rule(bad)
    assert "rule" in str(err.value)


def test_routing_and_scheduling_tools_by_tier():
    assert Grants.of(0).check("add_route", {}).allowed
    assert Grants.of(1).check("list_routes", {}).allowed
    assert not Grants.of(1).check("add_route", {}).allowed
    assert not Grants.of(2).check("list_tasks", {}).allowed
    assert Grants.of(2).check("reply", {"chat": "c", "text": "t"}).allowed
    assert "add_task" not in Grants.of(1).visible_tools(ALL_TOOLS)


def test_tools_another_area_registers_are_governed_by_the_same_rules():
    g = Grants.of(1, ["*", "!fancy_tool"])
    assert not g.check("fancy_tool", {}, known=None).allowed
    assert Grants.of(1).check("fancy_tool", {}, known=None).allowed
    assert not Grants.of(1).check("fancy_tool", {}, known=ALL_TOOLS).allowed
