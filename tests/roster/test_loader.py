"""Loading agents/**/AGENT.md: the sample roster, nesting, and every kind of mistake."""

from __future__ import annotations

import textwrap
from pathlib import Path

from crowdtui.roster import Mount, Resources, load_roster


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_sample_roster_loads_cleanly(sample_workspace):
    roster = load_roster(sample_workspace)
    assert roster.problems == []
    assert roster.names() == ["echo", "lead", "qa", "researcher"]
    lead, researcher = roster.get("lead"), roster.get("researcher")
    assert (lead.tier, lead.parent, lead.children) == (0, None, ("researcher",))
    assert (researcher.tier, researcher.parent, researcher.rel_path) == (1, "lead", "lead/researcher")
    assert roster.parent("researcher") is lead
    assert roster.children("lead") == [researcher]
    assert roster.get("qa").command == ("crowd-agent", "--role", "reviewer")
    assert roster.get("echo").command == ("crowd-agent", "--role", "echo")
    for agent in roster:
        assert agent.launch == "manual"
        assert agent.description
        assert agent.persona.startswith("# ")
    assert "cite-sources" in researcher.skills


def test_claude_example_is_valid_and_not_in_the_sample(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    sample = load_roster(repo)
    assert "claude" not in sample
    example = (repo / "examples" / "claude" / "AGENT.md").read_text()
    write(tmp_path, "agents/claude/AGENT.md", example)
    roster = load_roster(tmp_path)
    assert roster.problems == []
    claude = roster.get("claude")
    # issue 11: the runner brings the command, image, secret and egress
    assert claude.runner == "claude-code" and claude.command is None and claude.image is None
    assert claude.launch == "manual"
    assert claude.secrets == ()
    assert claude.tools == ("mcp__crowd", "Read", "Grep", "Glob")


def test_every_key_is_read(tmp_path):
    write(tmp_path, "agents/full/AGENT.md", """
        ---
        name: full-1
        description: all keys
        tools: [Read, Grep]
        model: opus
        image: my-image:2
        command: "crowd-agent --role 'echo'"
        mounts:
          - data:/data:rw
          - {source: /srv/ref, target: /ref}
        env: {LEVEL: 3, DEBUG: true, NAME: x}
        secrets: [API_KEY]
        network: allowlist
        egress: ["*.github.com:443", "pypi.org:443"]
        resources: {cpus: 2, memory: 2g, pids: 64}
        launch: on_task
        shutdown: idle
        grants: ["send_message(to=lead)", "!observe"]
        capabilities: [cap_net_bind_service, CHOWN]
        workspace: rw
        announce: false
        ---
        Persona text.
        """)
    roster = load_roster(tmp_path)
    assert roster.problems == []
    a = roster.get("full-1")
    assert a.rel_path == "full" and a.tier == 0
    assert a.tools == ("Read", "Grep") and a.model == "opus" and a.image == "my-image:2"
    assert a.command == ("crowd-agent", "--role", "echo")
    assert a.mounts == (Mount("data", "/data", "rw"), Mount("/srv/ref", "/ref", "ro"))
    assert a.env == {"LEVEL": "3", "DEBUG": "true", "NAME": "x"}
    assert a.secrets == ("API_KEY",)
    assert (a.network, a.egress) == ("allowlist", ("*.github.com:443", "pypi.org:443"))
    assert a.resources == Resources(cpus=2.0, memory="2048m", pids=64)
    assert (a.launch, a.shutdown, a.grants) == ("on_task", "idle", ("send_message(to=lead)", "!observe"))
    assert a.capabilities == ("NET_BIND_SERVICE", "CHOWN")
    assert (a.workspace_mode, a.announce, a.persona) == ("rw", False, "Persona text.\n")


def test_nesting_tiers_parents_children_and_skills(tmp_path):
    write(tmp_path, "agents/boss/AGENT.md", "---\ndescription: top\n---\n")
    write(tmp_path, "agents/boss/mid/AGENT.md", "---\ndescription: middle\n---\n")
    write(tmp_path, "agents/boss/mid/low/AGENT.md", "---\n---\nbody\n")
    # a plain folder between two agents: still the boss's child, tier from depth
    write(tmp_path, "agents/boss/teams/web/AGENT.md", "---\nname: web\n---\n")
    write(tmp_path, "agents/peer/AGENT.md", "no front matter at all\n")
    write(tmp_path, "agents/boss/skills/plan/SKILL.md", "---\nname: plan\n---\nHow to plan.\n")
    write(tmp_path, "agents/boss/skills/review/SKILL.md", "Review well.\n")
    # an AGENT.md inside a skills folder is part of the skill, not an agent
    write(tmp_path, "agents/boss/skills/plan/AGENT.md", "---\nname: ghost\n---\n")
    roster = load_roster(tmp_path)

    assert roster.names() == ["boss", "low", "mid", "peer", "web"]
    tiers = {a.name: (a.tier, a.parent, a.children) for a in roster}
    assert tiers == {
        "boss": (0, None, ("mid", "web")),
        "mid": (1, "boss", ("low",)),
        "low": (2, "mid", ()),
        "web": (2, "boss", ()),
        "peer": (0, None, ()),
    }
    assert roster.get("boss").skills == {
        "plan": "---\nname: plan\n---\nHow to plan.\n",
        "review": "Review well.\n",
    }
    assert roster.get("mid").skills == {}
    assert [c.name for c in roster.children("boss")] == ["mid", "web"]
    assert roster.parent("boss") is None and roster.parent("low").name == "mid"
    assert roster.get("nobody") is None and roster.children("nobody") == []
    # no front matter: loaded, with a warning that says so
    assert roster.get("peer").persona == "no front matter at all\n"
    assert [str(p) for p in roster.problems] == [
        "agents/peer/AGENT.md:1: no YAML front matter (a '---' block at the top); loaded with defaults"
    ]
    assert roster.errors == []


def broken_roster(root: Path) -> None:
    write(root, "agents/good/AGENT.md", "---\ndescription: fine\nlaunch: always\n---\nI work.\n")
    write(root, "agents/lead/AGENT.md", """
        ---
        name: lead
        description: has a bad value
        command: [crowd-agent]
        network: none
        image: x
        launch: sometimes
        ---
        """)
    write(root, "agents/lead/helper/AGENT.md", "---\ndescription: child of a broken lead\n---\n")
    write(root, "agents/yaml/AGENT.md", "---\ndescription: ok\ntools: [Read,\nmodel: x\n---\n")
    write(root, "agents/extra/AGENT.md", "---\ndescription: ok\ncolour: blue\n---\n")
    write(root, "agents/dup-a/AGENT.md", "---\nname: twin\n---\n")
    write(root, "agents/dup-b/AGENT.md", "---\ndescription: same name\nname: twin\n---\n")
    write(root, "agents/badname/AGENT.md", "---\nname: Bad/Name\n---\n")
    write(root, "agents/Upper Case/AGENT.md", "---\ndescription: folder name is no agent name\n---\n")
    write(root, "agents/res/AGENT.md", "---\nresources:\n  cpus: 1\n  memory: lots\n---\n")
    write(root, "agents/open/AGENT.md", "---\ndescription: never closed\n")
    write(root, "agents/list/AGENT.md", "---\n- a\n- b\n---\n")
    write(root, "agents/twice/AGENT.md", "---\nlaunch: manual\nlaunch: always\n---\n")
    write(root, "agents/op/AGENT.md", "---\nname: operator\n---\n")
    write(root, "agents/AGENT.md", "---\nname: rootless\n---\n")
    write(root, "agents/huge/AGENT.md", "---\n---\n" + "x" * (1024 * 1024 + 1))
    write(root, "agents/latin1/AGENT.md", "---\n---\n")
    (root / "agents/latin1/AGENT.md").write_bytes(b"---\ndescription: caf\xe9\n---\n")


def test_broken_files_are_each_reported_and_good_agents_load(tmp_path):
    broken_roster(tmp_path)
    roster = load_roster(tmp_path)
    problems = [str(p) for p in roster.problems]
    expected = [
        "agents/AGENT.md:1: an AGENT.md directly in agents/ is not loaded; "
        "move it into a folder named for the agent, e.g. agents/lead/",
        "agents/Upper Case/AGENT.md:1: key 'name': the folder name 'Upper Case' is not a valid "
        "agent name and no 'name:' is given; add 'name: <a-z0-9_->' or rename the folder",
        "agents/badname/AGENT.md:2: key 'name': 'Bad/Name' is not a valid agent name; use 1-63 "
        "characters a-z, 0-9, '_' or '-', starting with a letter or digit",
        "agents/dup-b/AGENT.md:3: key 'name': 'twin' is already the name of agents/dup-a/AGENT.md; "
        "names must be unique, so this definition is not loaded",
        "agents/extra/AGENT.md:3: key 'colour': unknown key, ignored; known keys are name, "
        "description, tools, model, image, command, mounts, env, secrets, network, egress, "
        "resources, launch, shutdown, restart, grants, capabilities, workspace, announce, runner, permission_mode, mode, base_url, spawned_by, engine, engine_labels",
        "agents/huge/AGENT.md:1: the file is 1024 KiB; keep an AGENT.md under 1024 KiB (move long "
        "material into skills)",
        "agents/latin1/AGENT.md:2: not UTF-8 text (byte 0xe9 on this line); save the file as UTF-8",
        "agents/lead/AGENT.md:7: key 'launch': 'sometimes' is not one of manual, on_task, always, "
        "per_message",
        "agents/lead/helper/AGENT.md:1: its parent agents/lead/AGENT.md did not load (see its "
        "error); this agent loads without a parent and escalates to the operator until that file "
        "is fixed",
        "agents/list/AGENT.md:2: front matter is a list; it must be a mapping of keys like 'name: lead'",
        "agents/op/AGENT.md:2: key 'name': 'operator' is reserved for the human operator; choose another name",
        "agents/open/AGENT.md:1: the front matter opened by '---' on line 1 is never closed; add a "
        "line '---' after it",
        "agents/res/AGENT.md:4: key 'resources.memory': 'lots' is not a size; give e.g. 512m or 2g",
        "agents/twice/AGENT.md:3: key 'launch': given twice (first on line 2); keep one",
    ]
    for line in expected:
        assert line in problems
    yaml_problems = [p for p in roster.problems if p.file == "agents/yaml/AGENT.md"]
    assert len(yaml_problems) == 1
    assert yaml_problems[0].line == 3 and "not valid YAML" in yaml_problems[0].message
    assert len(problems) == len(expected) + 1
    warnings = {p.file for p in roster.warnings}
    assert warnings == {"agents/extra/AGENT.md", "agents/lead/helper/AGENT.md"}

    # the good ones load; the child of the broken lead loads without a parent
    assert roster.names() == ["extra", "good", "helper", "twin"]
    assert roster.get("good").launch == "always"
    assert roster.get("twin").rel_path == "dup-a"
    helper = roster.get("helper")
    assert (helper.tier, helper.parent) == (1, None)


def test_reload_keeps_the_last_good_definition_of_a_file_turned_bad(tmp_path):
    path = write(tmp_path, "agents/lead/AGENT.md", "---\ndescription: v1\n---\n")
    write(tmp_path, "agents/lead/kid/AGENT.md", "---\n---\n")
    first = load_roster(tmp_path)
    path.write_text("---\ndescription: v2\nlaunch: sometimes\n---\n")
    second = load_roster(tmp_path, previous=first)
    assert second.get("lead") == first.get("lead")
    assert second.get("kid").parent == "lead"
    [problem] = second.problems
    assert str(problem) == (
        "agents/lead/AGENT.md:3: key 'launch': 'sometimes' is not one of manual, on_task, always, "
        "per_message; the last good definition of 'lead' stays in use until this is fixed"
    )
    # without a previous roster the same file does not load
    assert "lead" not in load_roster(tmp_path)


def test_bad_values_name_what_is_allowed(tmp_path):
    cases = {
        "network: wide": "key 'network': 'wide' is not one of none, allowlist, open",
        "shutdown: 3": "key 'shutdown': a number is not one of manual, inbox_empty, idle",
        "workspace: write": "key 'workspace': 'write' is not one of ro, rw",
        "announce: maybe": "key 'announce': text is not allowed; give true or false",
        "command: {a: 1}": "key 'command': a mapping is not allowed; give a list like "
        "[crowd-agent, --role, worker]",
        "mounts: [/etc/passwd]": "key 'mounts': '/etc/passwd' is not a mount",
        "mounts: ['x:/run/crowd']": "mount target '/run/crowd' must be an absolute path",
        "env: {A: [1]}": "key 'env.A': a list is not allowed; give text",
        "egress: [github.com]": "key 'egress': 'github.com' is not 'host:port'",
        "capabilities: [FLY]": "key 'capabilities': 'FLY' is not a Linux capability",
        "resources: {cpus: 0}": "key 'resources.cpus': 0 is not allowed; give a number of CPUs",
        "resources: {pids: 5}": "key 'resources.pids': 5 is not allowed",
        "resources: {gpus: 1}": "key 'resources.gpus': unknown key; resources has cpus, memory, pids",
        "tools: 5": "key 'tools': a number is not allowed; give a list of a tool name",
        "grants: ['send message']": "key 'grants': grant rule 'send message' is not "
        "[!]tool[(param=glob,...)]",
        "secrets: ['no spaces']": "key 'secrets': 'no spaces' is not a secret name",
        "model: !!python/object:os.system x": "not valid YAML",
    }
    for i, (line, message) in enumerate(cases.items()):
        write(tmp_path, f"agents/a{i}/AGENT.md", f"---\ndescription: case\n{line}\n---\n")
    roster = load_roster(tmp_path)
    assert roster.agents == {}
    for i, message in enumerate(cases.values()):
        [problem] = [p for p in roster.problems if p.file == f"agents/a{i}/AGENT.md"]
        assert problem.line == 3, problem
        assert message in str(problem), problem


def test_missing_agents_folder_is_an_empty_roster(tmp_path):
    roster = load_roster(tmp_path)
    assert roster.agents == {} and roster.problems == []


def test_the_documented_example_in_agents_readme_loads(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "agents" / "README.md").read_text()
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    write(tmp_path, "agents/lead/AGENT.md", "---\n---\n")
    write(tmp_path, "agents/lead/researcher/AGENT.md", block + "Persona.\n")
    roster = load_roster(tmp_path)
    assert roster.problems == []
    agent = roster.get("researcher")
    assert (agent.parent, agent.tier, agent.network, agent.capabilities) == ("lead", 1, "none", ("NET_BIND_SERVICE",))
