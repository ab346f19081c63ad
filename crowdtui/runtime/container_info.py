"""An agent's container as the engine reports it, and the names it goes by.

:class:`ContainerInfo` (state, exit, OOM) read from ``docker inspect`` output, the
runtime's errors, the container's name and the agent-name check. Pure: touches no engine.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from crowdtui.errors import CrowdError
from crowdtui.runtime import labels
from crowdtui.workspace import Workspace
from qms.names import NAME_RE, OPERATOR

CONFIG_LABEL = "crowdtui.config"  # hash of the container's configuration

#: the states a ContainerInfo reports
STATES = ("created", "running", "exited", "crashed", "stopped")


class UnknownAgent(CrowdError):
    """A name that is neither in the roster nor has a container."""


class NoContainer(CrowdError):
    """The agent has no container (it was never started or has been removed)."""


class ContainerFailed(CrowdError):
    """The engine refused to create or start the container."""


@dataclass(frozen=True)
class ContainerInfo:
    """One agent's container as the engine reports it."""

    name: str  # the agent
    container_id: str
    state: str  # created | running | exited | crashed | stopped
    exit_code: int | None
    oom_killed: bool
    image: str
    started_at: str | None
    finished_at: str | None = None
    container_name: str = ""
    config: str = ""  # hash of the configuration it was created with (see Runtime.config_hash)
    engine: str = "local"  # the engine it runs on (crowd.toml [engines.NAME], or local)
    node: str = ""  # on a swarm engine: the engine of the node that runs it now

    @property
    def id(self) -> str:
        return self.container_id

    @property
    def short_id(self) -> str:
        return self.container_id[:12]

    @property
    def running(self) -> bool:
        return self.state == "running"

    def where(self) -> str:
        """``local``, ``far``, or ``sw/n2`` (a swarm and the node that runs it)."""
        return f"{self.engine}/{self.node}" if self.node and self.node != self.engine else self.engine

    def describe(self) -> str:
        """A few words for people: ``running``, ``crashed (exit 3)``, ``crashed (out of memory)``."""
        if self.state == "crashed":
            return "crashed (out of memory)" if self.oom_killed else f"crashed (exit {self.exit_code})"
        return self.state

    def state_detail(self) -> dict[str, Any]:
        """What the registry records beside the state (same for every process, so no duplicates)."""
        detail: dict[str, Any] = {"container": self.short_id}
        if self.state in ("exited", "crashed", "stopped"):
            detail["exit_code"] = self.exit_code
        if self.oom_killed and self.state == "crashed":
            detail["oom_killed"] = True
            detail["reason"] = "killed: out of memory"
        return detail

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _slug(text: str, limit: int = 24) -> str:
    slug = re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-._")
    return slug[:limit].strip("-._") or "ws"


def container_name(workspace: Workspace, agent: str) -> str:
    """``crowd-<workspace name>-<agent>-<workspace id>``: unique per workspace and agent."""
    return f"crowd-{_slug(workspace.name)}-{agent}-{workspace.id[:6]}"


def parse_size(text: str) -> int:
    """``512m`` / ``2g`` / ``1048576b`` -> bytes."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([bkmg]?)b?\s*", str(text), re.IGNORECASE)
    if not m:
        raise CrowdError(f"{text!r} is not a size; use e.g. 512m or 2g")
    unit = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]
    return int(float(m.group(1)) * unit)


def state_of(attrs: dict[str, Any], stop_requested_for: str | None = None) -> tuple[str, int | None, bool]:
    """(state, exit code, OOM-killed) from ``docker inspect`` output.

    ``stop_requested_for`` is the container id the operator asked to stop (if any): its
    exit is "stopped", never a crash.
    """
    st = attrs.get("State", {})
    status = st.get("Status", "")
    oom = bool(st.get("OOMKilled"))
    code = st.get("ExitCode")
    if status in ("running", "paused", "restarting"):
        return "running", None, False
    if status == "created":
        return "created", None, False
    if stop_requested_for and stop_requested_for == attrs.get("Id"):
        return "stopped", code, False
    if oom or (code not in (None, 0)):
        return "crashed", code, oom
    return "exited", code, False


def info_from_attrs(attrs: dict[str, Any], stop_requested_for: str | None = None) -> ContainerInfo:
    state, code, oom = state_of(attrs, stop_requested_for)
    st = attrs.get("State", {})
    cfg = attrs.get("Config", {})
    lbl = cfg.get("Labels") or {}
    started = st.get("StartedAt")
    finished = st.get("FinishedAt")
    zero = "0001-01-01T00:00:00Z"
    return ContainerInfo(
        name=lbl.get(labels.AGENT, ""),
        container_id=attrs.get("Id", ""),
        state=state,
        exit_code=code,
        oom_killed=oom,
        image=cfg.get("Image", ""),
        started_at=None if not started or started == zero else started,
        finished_at=None if not finished or finished == zero or state == "running" else finished,
        container_name=attrs.get("Name", "").lstrip("/"),
        config=lbl.get(CONFIG_LABEL, ""),
        engine=lbl.get(labels.ENGINE, "local"),
    )


def check_name(name: str) -> str:
    """An agent name is safe as a folder, label and container name; anything else is refused."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name == OPERATOR:
        shown = repr(name.encode("unicode_escape").decode()) if isinstance(name, str) else repr(name)
        raise UnknownAgent(f"{shown} is not an agent name (a-z, 0-9, '_' and '-', up to 63); check the name")
    return name
