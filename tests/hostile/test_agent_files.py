"""Hostile AGENT.md files: the loader never raises, reports each with file and line, and a bad
file never costs a good agent its definition or smuggles in what the keys do not allow."""

from __future__ import annotations

from hypothesis import strategies as st

from crowdtui.roster import load_roster

from .strategies import HOSTILE_TEXT, HOSTILE_VALUE, examples

GOOD = "---\nname: good\ndescription: stays loaded\nnetwork: allowlist\negress: ['api.example.com:443']\n---\nI am fine.\n"

KEYS = ["name", "description", "tools", "model", "image", "command", "mounts", "env", "secrets", "network",
        "egress", "resources", "launch", "shutdown", "grants", "capabilities", "workspace", "announce", "x-evil"]

FIXED = [
    b"", b"---\n", b"---\n---\n", b"no front matter at all\n", b"---\n: :\n---\n", b"---\n[1, 2\n---\n",
    b"---\nname: &a [*a]\n---\n", b"---\n!!python/object/apply:os.system ['touch /tmp/crowd-pwned']\n---\n",
    b"---\nname: !!python/name:os.system\n---\n", b"\xff\xfe\x00n\x00a", b"---\nname: ../../etc\n---\n",
    b"---\nname: operator\n---\n", b"---\nname: \"a\\x1b[2Jb\"\n---\n", b"---\nname: good\n---\n",  # duplicate name
    b"---\n" + b"a: [" * 5000 + b"\n---\n",  # deep nesting
    b"---\nx: &a [&b [&c [1]]]\ny: [*a, *a, *a, *a, *a, *a, *a, *a]\n---\n",  # alias expansion
    b"---\nmounts: [{source: /, target: /etc, mode: rw}]\n---\n",
    b"---\nmounts: [{source: ../../.., target: /x}]\n---\n",
    b"---\nsecrets: [\"../KEY\", \"a;b\"]\n---\n", b"---\negress: ['*:*', 'evil host:80', ':443']\n---\n",
    b"---\nresources: {cpus: -1, memory: 1e99, pids: 0}\n---\n", b"---\ncommand: 42\n---\n",
    b"---\nenv: {\"A=B\": x, \"\": y, LD_PRELOAD: /evil.so}\n---\n", b"---\ngrants: ['((((']\n---\n",
    b"---\n" + b"description: " + b"x" * (2 * 1024 * 1024) + b"\n---\n",  # over the 1 MiB limit
]


def yaml_doc(fields: dict) -> bytes:
    import json

    lines = [f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in fields.items()]  # JSON is YAML
    return ("---\n" + "\n".join(lines) + "\n---\nbody\n").encode("utf-8", "surrogatepass")


GENERATED = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), HOSTILE_VALUE, max_size=5).map(yaml_doc),
    st.binary(max_size=300).map(lambda b: b"---\n" + b + b"\n---\n"),
    HOSTILE_TEXT.map(lambda t: ("---\nname: " + t + "\n---\n").encode("utf-8", "surrogatepass")),
)


def test_hostile_agent_files_are_reported_never_raised(workspace):
    agents = workspace.agents_dir
    (agents / "a-good").mkdir(parents=True)  # sorts first: a later file claiming its name is the odd one out
    (agents / "a-good" / "AGENT.md").write_text(GOOD)
    bodies = FIXED + examples(GENERATED, 120)
    for i, raw in enumerate(bodies):
        folder = agents / f"bad{i:03d}"
        folder.mkdir()
        (folder / "AGENT.md").write_bytes(raw)
    roster = load_roster(workspace)

    # the good agent keeps exactly its definition
    good = roster.get("good")
    assert good is not None and good.egress == ("api.example.com:443",) and good.network == "allowlist"
    assert good.rel_path == "a-good"
    assert any(p.file == "agents/bad013/AGENT.md" and "good" in p.message for p in roster.errors)
    # nothing unsafe got through for anyone
    for a in roster:
        assert a.name not in ("operator", "..") and "/" not in a.name and "\x1b" not in a.name
        assert a.network in ("none", "allowlist", "open")
        for m in a.mounts:
            assert m.mode in ("ro", "rw")
        assert all(k and "=" not in k for k in a.env)
    # every problem names its file and a line inside it, in one line of text
    assert len(roster.errors) >= len(FIXED) - 3
    for p in roster.problems:
        assert p.file.startswith("agents/") and p.file.endswith("AGENT.md") and p.line >= 1
        assert "\n" not in str(p).strip() and "Traceback" not in str(p)
    # the YAML tags did not run anything
    import os

    assert not os.path.exists("/tmp/crowd-pwned")
