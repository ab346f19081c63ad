"""What an agent's container is made of: the hardened configuration handed to the engine
(mounts, environment, limits, dropped capabilities, read-only root, no network unless
asked), its hash, and the host folders and files it mounts, prepared before it starts.

Pure of the engine: everything here reads the workspace and the definition only, so
``Runtime.container_config`` and ``Runtime.prepare_host`` are thin calls into it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from crowdtui.agent_folder import AGENT_GID, AGENT_UID, home_folder, ipc_folder
from crowdtui.roster import AgentDef
from crowdtui.runners import effective, runner_for, runner_settings
from crowdtui.runtime import labels
from crowdtui.runtime.container_info import CONFIG_LABEL, ContainerFailed, check_name, container_name, parse_size
from crowdtui.runtime.disk import ensure_home_disk
from crowdtui.workspace import Workspace

log = logging.getLogger(__name__)

HOME = "/home/agent"
IPC = "/run/crowd"
WORKSPACE_MOUNT = "/workspace"
LOG_MAX_SIZE = "10m"  # per engine log file (three are kept)
ENTRY = "crowd-entry"  # in the agent image: takes secrets, starts the egress forwarder, execs
EGRESS_SOCKET = "egress.sock"  # in the agent's IPC folder, served by crowdtui.hub.egress
PROXY_URL = "http://127.0.0.1:3128"  # the forwarder crowd-entry starts inside the container


def needs_entry(agent: AgentDef) -> bool:
    """Whether the agent's command runs through crowd-entry (secrets to take, a forwarder to start)."""
    return bool(agent.secrets) or agent.network == "allowlist"


def agent_user() -> str:
    """The uid:gid agents run as: the image's ``agent`` (1000), whose folders crowdtui (as
    root) hands over. Run by another user, crowdtui cannot hand folders over, so agents run
    as that user, who owns them already."""
    if os.geteuid() == 0 or os.geteuid() == AGENT_UID:
        return f"{AGENT_UID}:{AGENT_GID}"
    return f"{os.geteuid()}:{os.getegid()}"


def persona_dir(workspace: Workspace, agent: str) -> Path:
    """Where the persona (CLAUDE.md) and skills written for the container live."""
    return workspace.crowd_dir / "personas" / agent


def empty_dir(workspace: Workspace) -> Path:
    """An empty folder mounted over /workspace/.crowd, so no agent sees the store or others' homes."""
    return workspace.crowd_dir / "empty"


def default_image(workspace: Workspace) -> str:
    from crowdtui.runtime.image import image_tag

    return str(workspace.setting("runtime", "image", "") or "") or image_tag()


def image_for(workspace: Workspace, agent: AgentDef) -> str:
    """``image:`` when given; else the runner's image (its program on the agent image), else
    the default agent image."""
    if agent.image:
        return agent.image
    runner = runner_for(agent)
    if runner.packages:
        from crowdtui.runtime.runner_image import runner_image_tag

        return runner_image_tag(runner, runner_settings(workspace.config, runner.name))
    return default_image(workspace)


def bind_mounts(workspace: Workspace, agent: AgentDef) -> list:
    """The local engine's mounts: the agent's home and IPC folder, the workspace (ro unless
    the definition says rw, the roster guarded), the persona and skills, the definition's own."""
    from docker.types import Mount

    ws = workspace
    name = check_name(agent.name)
    agent = effective(agent, ws.config)
    runner = runner_for(agent)
    mounts = [
        Mount(HOME, str(ws.home_dir(name)), type="bind", read_only=False),
        Mount(IPC, str(ws.ipc_dir(name)), type="bind", read_only=False),
        Mount(WORKSPACE_MOUNT, str(ws.root), type="bind",
              read_only=agent.workspace_mode != "rw"),
        Mount(f"{WORKSPACE_MOUNT}/.crowd", str(empty_dir(ws)), type="bind", read_only=True),
    ]
    if agent.workspace_mode == "rw":
        # A writable workspace must not let the agent rewrite the roster or the
        # configuration: that would let it widen its own grants, mounts or tier.
        # agents/ is always guarded (prepare_host makes it when missing, so the agent
        # cannot create a roster of its own there); crowd.toml when the workspace has one.
        for guarded in ("agents", "crowd.toml"):
            if guarded == "agents" or (ws.root / guarded).exists():
                mounts.append(Mount(f"{WORKSPACE_MOUNT}/{guarded}", str(ws.root / guarded),
                                    type="bind", read_only=True))
    mounts += [
        Mount(runner.persona_target, str(persona_dir(ws, name) / runner.persona_file), type="bind",
              read_only=True),
    ]
    if agent.skills:
        mounts.append(Mount(f"{HOME}/.claude/skills", str(persona_dir(ws, name) / "skills"),
                            type="bind", read_only=True))
    for m in agent.mounts:
        source = Path(m.source).expanduser()
        if not source.is_absolute():
            source = ws.root / source
        mounts.append(Mount(m.target, str(source), type="bind", read_only=m.mode != "rw"))
    return mounts


def container_config(workspace: Workspace, agent: AgentDef, files: Any = None) -> dict[str, Any]:
    """The keyword arguments for ``client.containers.create`` (pure: touches nothing).

    Secret values never enter the configuration: when the definition names secrets, the
    command runs through ``crowd-entry``, which takes them from a one-shot socket in the
    agent's IPC folder at start (see :mod:`crowdtui.runtime.secrets_handoff`); only their
    names are in the environment (``CROWD_SECRETS``). With ``network: allowlist`` the container has no network
    and its proxy settings point at the forwarder crowd-entry starts (127.0.0.1:3128 ->
    ``/run/crowd/egress.sock``, served by :class:`crowdtui.hub.egress.EgressProxy`).
    When the definition gives no command, ``["crowd-entry"]`` is completed with the
    image's own command at start. ``files`` (:mod:`crowdtui.runtime.agent_files`) gives the
    mounts for the engine the agent runs on; None: the local engine's bind mounts.
    """
    ws = workspace
    name = check_name(agent.name)
    agent = effective(agent, ws.config)
    runner = runner_for(agent)
    settings = runner_settings(ws.config, runner.name)
    mounts = files.mounts(agent) if files is not None else bind_mounts(ws, agent)

    env = {
        **runner.environment(agent, settings),
        **agent.env,
        "CROWD_AGENT": name,
        "CROWD_WORKSPACE": WORKSPACE_MOUNT,
        "CROWD_IPC": IPC,
        "HOME": HOME,
        "TERM": "xterm-256color",
    }
    if agent.secrets:
        env["CROWD_SECRETS"] = ",".join(agent.secrets)
    if agent.network == "allowlist":
        env.update({key: PROXY_URL for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")})
        env.update({"NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost,127.0.0.1",
                    "CROWD_EGRESS": f"{IPC}/{EGRESS_SOCKET}"})
    command = list(agent.command) if agent.command else runner.command(agent, settings)
    if needs_entry(agent):
        command = [ENTRY, *(command or [])]
    res = agent.resources
    network = "bridge" if agent.network == "open" else "none"
    config: dict[str, Any] = {
        "image": image_for(ws, agent),
        "command": command,
        "name": container_name(ws, name),
        "hostname": name,
        "labels": labels.for_agent(ws, name),
        "environment": env,
        "user": agent_user() if getattr(files, "kind", "bind") == "bind" else f"{AGENT_UID}:{AGENT_GID}",
        "tty": True,
        "stdin_open": True,
        "init": True,
        "security_opt": ["no-new-privileges:true"],
        "cap_drop": ["ALL"],
        "cap_add": list(agent.capabilities) or None,
        "read_only": True,
        "tmpfs": {"/tmp": "rw,nosuid,nodev,size=256m", "/run": "rw,nosuid,nodev,size=16m,mode=1777"},
        "pids_limit": int(res.pids),
        "mem_limit": parse_size(res.memory),
        "memswap_limit": parse_size(res.memory),  # no swap beyond the memory limit
        "nano_cpus": int(float(res.cpus) * 1e9),
        "network_mode": network,
        "mounts": mounts,
        # bounded engine-side logs; older output is archived under .crowd/logs/ on removal
        "log_config": {"type": "json-file", "config": {"max-size": LOG_MAX_SIZE, "max-file": "3"}},
        "detach": True,
    }
    if runner.working_dir:
        config["working_dir"] = runner.working_dir
    # the persona and skills are files, not settings: they count as configuration too
    hashed = {**config, "persona": agent.persona, "skills": agent.skills}
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True, default=str).encode()).hexdigest()
    config["labels"] = {**config["labels"], CONFIG_LABEL: digest[:16]}
    return config


def config_hash(workspace: Workspace, agent: AgentDef, files: Any = None) -> str:
    """The hash a container created from ``agent`` now would carry (secrets not included)."""
    return container_config(workspace, agent, files)["labels"][CONFIG_LABEL]


def prepare_host(workspace: Workspace, agent: AgentDef, findings: list | None = None) -> None:
    """Create the folders and files the container mounts, writable by the agent user.

    The agent's home and IPC folder are the agent's: everything in them is made through
    :class:`crowdtui.agent_folder.AgentFolder`, which never follows what the agent placed
    (a link where ``.claude`` should be is replaced, not chowned through). What stood in
    the way is appended to ``findings``.
    """
    ws = workspace
    name = check_name(agent.name)
    agent = effective(agent, ws.config)
    runner = runner_for(agent)
    persona_rel = home_relative(runner.persona_target)
    persona = persona_dir(ws, name)
    disk = ensure_home_disk(ws, name, agent.resources.disk)
    if disk.startswith("unlimited") and agent.resources.disk != "none":
        log.warning("agent %s: home %s", name, disk)
    home, ipc = home_folder(ws, name), ipc_folder(ws, name)
    try:
        ipc.ensure_dir("")
        home.ensure_dir("")
        home.ensure_dir(".claude")
        # The bind-mount targets inside the home: created here, owned by the agent, so the
        # engine never makes root-owned placeholders in a folder the agent must own.
        if "/" in persona_rel:
            home.ensure_dir(persona_rel.rsplit("/", 1)[0])
        home.ensure_file(persona_rel)
        if agent.skills:
            home.ensure_dir(".claude/skills")
        runner.seed_home(home, agent, runner_settings(ws.config, runner.name))
    finally:
        if findings is not None:
            findings.extend(home.findings + ipc.findings)
    if agent.workspace_mode == "rw":  # the workspace is the agent's too: guard the roster
        roster = ws.agents_dir
        if os.path.islink(roster) or (os.path.lexists(roster) and not roster.is_dir()):
            raise ContainerFailed(f"agent {name}: {roster} is not a plain folder (a link or a file "
                                  "an agent with a writable workspace may have left); replace it "
                                  "with the roster folder before starting agents")
        roster.mkdir(exist_ok=True)
    for folder in (persona, empty_dir(ws)):  # ours: never mounted writable
        folder.mkdir(parents=True, exist_ok=True)
    _write_in_place(persona / runner.persona_file, agent.persona)
    skills = persona / "skills"
    if agent.skills:
        skills.mkdir(exist_ok=True)
        for skill, text in agent.skills.items():
            (skills / skill).mkdir(exist_ok=True)
            _write_in_place(skills / skill / "SKILL.md", text)
    for m in agent.mounts:
        source = Path(m.source).expanduser()
        if not source.is_absolute():
            source = ws.root / source
        if not source.exists():
            raise ContainerFailed(
                f"agent {name}: mount source {source} does not exist; create it or fix "
                f"'mounts' in agents/{agent.rel_path}/AGENT.md"
            )
    for path in (persona, empty_dir(ws)):
        os.chmod(path, 0o755)

# ---- engine lookups (blocking; called in threads)


def home_relative(target: str) -> str:
    """``/home/agent/.claude/CLAUDE.md`` -> ``.claude/CLAUDE.md`` (a runner's persona path)."""
    rel = target.removeprefix(HOME + "/")
    if rel == target or not rel or ".." in rel.split("/"):
        raise ContainerFailed(f"the persona path {target!r} is not inside {HOME}")
    return rel


def _write_in_place(path: Path, text: str) -> None:
    """Rewrite a file keeping its inode, so a running container's file mount sees the change."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o644)
