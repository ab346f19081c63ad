"""Runners: the programs agents are (``runner:`` in AGENT.md).

One module per runner; each defines a :class:`Runner` subclass (base in
:mod:`crowdtui.runners.base`) and its instance as ``RUNNER``; this package collects them.
A runner knows:

- its npm packages and their default pinned versions (``[runners.<name>]`` in crowd.toml
  pins others) and how they go into an image layer built on the agent image
  (:meth:`Runner.layer`; fetched on the host by :mod:`crowdtui.runtime.image`);
- where the persona goes (``CLAUDE.md``, ``AGENTS.md``, ``GEMINI.md``);
- how AGENT.md ``model``, ``tools`` and ``permission_mode`` map to its flags
  (:meth:`Runner.command`);
- the secret it needs, the egress it needs (its API host on 443, or the host of a
  ``base_url`` gateway) and the environment it runs with;
- the configuration it seeds into the agent's home so it starts straight into its prompt,
  with the crowd MCP server (``crowd-mcp-bridge``) configured and approved. Seeding goes
  through :class:`crowdtui.agent_folder.AgentFolder` only: an agent's home is the agent's.

The rest of crowdtui asks :func:`runner_for` and :func:`effective` and never names a
runner. Layering: roster < runners < runtime (runners import roster, agent_folder, errors).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from crowdtui.roster import RUNNERS, AgentDef
from crowdtui.runners.base import NpmPackage, Runner, RunnerError, runner_settings  # noqa: F401  (runtime uses them)

_REGISTRY: dict[str, Runner] = {}


def _load_all() -> None:
    if len(_REGISTRY) == len(RUNNERS):
        return
    from crowdtui.runners import claude_code, codex, gemini, script

    for module in (claude_code, codex, gemini, script):
        _REGISTRY[module.RUNNER.name] = module.RUNNER


def runner_named(name: str) -> Runner:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RunnerError(f"{name!r} is not a runner; runners are {', '.join(RUNNERS)}") from None


def runner_for(agent: AgentDef) -> Runner:
    return runner_named(agent.runner)


def all_runners() -> list[Runner]:
    _load_all()
    return [_REGISTRY[n] for n in RUNNERS]


def effective(agent: AgentDef, config: dict[str, Any] | None) -> AgentDef:
    """The definition with what its runner needs folded in: the runner's secret among the
    secrets, its egress among the egress entries, and ``network: allowlist`` instead of
    ``none`` (the program must reach its model API, and nothing else). ``open`` stays open.
    ``config`` is the workspace's crowd.toml (``Workspace.config``)."""
    runner = runner_for(agent)
    settings = runner_settings(config, runner.name)
    secrets, egress, network = agent.secrets, agent.egress, agent.network
    if runner.secret and runner.secret not in secrets:
        secrets = (*secrets, runner.secret)
    wanted = [e for e in runner.egress(agent, settings) if e not in egress]
    if wanted:
        egress = (*egress, *wanted)
        if network == "none":
            network = "allowlist"
    if (secrets, egress, network) == (agent.secrets, agent.egress, agent.network):
        return agent
    return dataclasses.replace(agent, secrets=secrets, egress=egress, network=network)
