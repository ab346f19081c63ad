"""Grant rules: tier defaults narrowed (never widened) by `[!]tool[(param=glob,...)]` rules,
matched against validated argument values in one canonical text."""

import pytest

from crowdtui.grant_rules import GrantRuleError, canonical, parse_rule
from crowdtui.hub.grants import ALL_TOOLS, DOCUMENT_TOOLS, MESSAGING_TOOLS, Grants


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


# ---- rule semantics on validated values (issue 18): lists, canonical text ------------------


def test_a_deny_rule_over_a_list_fires_when_any_element_matches():
    g = Grants.of(0, ["*", "!route_document(assignees=operator)"])
    route = {"doc_id": "SOP-001", "kind": "review"}
    assert not g.check("route_document", {**route, "assignees": ["me", "operator"]}).allowed
    assert not g.check("route_document", {**route, "assignees": ["operator"]}).allowed
    assert g.check("route_document", {**route, "assignees": ["me", "lead"]}).allowed
    old = Grants.of(1, ["*", "!route_document(assignees=ext-*)"])
    assert not old.check("route_document", {**route, "assignees": ["qa", "ext-a"]}).allowed


def test_an_allow_rule_over_a_list_needs_every_element():
    g = Grants.of(0, ["route_document(assignees=lead)", "route_document(assignees=qa-*)"])
    route = {"doc_id": "SOP-001", "kind": "review"}
    assert g.check("route_document", {**route, "assignees": ["lead"]}).allowed
    assert g.check("route_document", {**route, "assignees": ["qa-1", "qa-2"]}).allowed
    assert not g.check("route_document", {**route, "assignees": ["lead", "operator"]}).allowed
    # an empty list is matched like an absent value (the empty string)
    assert not g.check("route_document", {**route, "assignees": []}).allowed
    assert not Grants.of(0, ["*", "!route_document(assignees=*)"]).check(
        "route_document", {**route, "assignees": []}).allowed


def test_booleans_match_as_true_or_false_however_the_rule_writes_them():
    for written in ("False", "false", "no", "0", "off"):
        g = Grants.of(0, ["*", f"!get_messages(unread_only={written})"])
        assert not g.check("get_messages", {"unread_only": False, "limit": 50}).allowed, written
        assert g.check("get_messages", {"unread_only": True, "limit": 50}).allowed, written
    assert canonical(False) == "false" and canonical(True) == "true"


def test_numbers_match_in_plain_decimals():
    for written in ("1", "01", "1.0", "+1"):
        g = Grants.of(0, ["*", f"!read_document(version={written})"])
        assert not g.check("read_document", {"doc_id": "SOP-001", "version": 1}).allowed, written
        assert g.check("read_document", {"doc_id": "SOP-001", "version": 2}).allowed, written
        assert g.check("read_document", {"doc_id": "SOP-001", "version": None}).allowed, written
    g = Grants.of(0, ["*", "!get_messages(wait_seconds=1*)"])
    assert not g.check("get_messages", {"wait_seconds": 10.0}).allowed  # globs still work on the text
    assert g.check("get_messages", {"wait_seconds": 0.5}).allowed
    assert (canonical(1.0), canonical(0.5), canonical(10**30)) == ("1", "0.5", str(10**30))


def test_document_ids_and_types_match_whatever_their_case():
    g = Grants.of(0, ["*", "!read_document(doc_id=SOP-003)", "!create_document(doc_type=spec)"])
    assert not g.check("read_document", {"doc_id": "sop-003", "version": None}).allowed
    assert not g.check("read_document", {"doc_id": "Sop-003", "version": None}).allowed
    assert g.check("read_document", {"doc_id": "SOP-004", "version": None}).allowed
    assert not g.check("create_document", {"doc_type": "Spec", "title": "t", "content": ""}).allowed
    lower = Grants.of(0, ["read_document(doc_id=sop-*)"])
    assert lower.check("read_document", {"doc_id": "SOP-001"}).allowed
    # names are not case-insensitive: the store refuses upper-case names anyway
    assert Grants.of(0, ["*", "!send_message(to=lead)"]).check("send_message", {"to": "Lead"}).allowed


def test_a_refusal_by_name_holds_whatever_the_arguments():
    deep = Grants.of(2)
    assert not deep.refuse_name("observe").allowed
    assert deep.refuse_name("send_message") is None  # some calls allowed: the arguments decide
    assert "tools/list" in Grants.of(0).refuse_name("drop_database").reason
    narrowed = Grants.of(0, ["!send_message", "send_message(to=lead)"])
    assert narrowed.refuse_name("send_message") is None
    assert not Grants.of(0, ["get_messages"]).refuse_name("send_message").allowed
