"""Docker engines as configuration: ``[engines.NAME]`` in crowd.toml, and where agents go.

An *engine* is a Docker endpoint crowdtui drives: the local one (always there, named
``local``: ``DOCKER_HOST`` or the local socket) and any number of others named in
crowd.toml::

    [engines.build1]
    url = "tcp://10.0.0.5:2376"          # unix:// | tcp:// (TLS files below) | ssh://user@host:port
    tls_ca = "certs/ca.pem"              # relative paths are relative to the workspace
    tls_cert = "certs/cert.pem"
    tls_key = "certs/key.pem"
    labels = ["gpu", "big"]              # matched by AGENT.md's engine_labels
    mode = "engine"                      # or "swarm"
    relay_network = "bridge"             # the docker network the engine's relay joins ("host": its host's)
    relay_address = "10.0.0.1:7443"      # where this engine's relay reaches the hub's relay door
                                         # (else [hub] relay_address, else the door's listening address)

    [engines.laptop]
    context = "laptop"                   # a docker context by name (`docker context ls`)

    [placement]
    policy = "local"                     # or "spread": by free memory over the engines whose
                                         # labels hold the agent's engine_labels

An agent runs where its ``engine:`` says; without one, where the placement policy puts it.
Pure: reads text and configuration, touches no engine (the connections are
:mod:`crowdtui.runtime.engines`). Also edits crowd.toml's text for ``crowdtui engine add|rm``
(keeping the rest of the file, comments included).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crowdtui.errors import CrowdError

LOCAL = "local"
MODES = ("engine", "swarm")
POLICIES = ("local", "spread")
ENGINE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=-]{0,62}")
KEYS = ("url", "context", "tls_ca", "tls_cert", "tls_key", "tls_verify", "labels", "mode", "relay_network",
        "relay_address")
_NETWORK_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ADDRESS_RE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,252}):([0-9]{1,5})")
WILDCARDS = ("0.0.0.0", "::", "[::]", "*")  # listening addresses no relay can connect to
_SSH_RE = re.compile(r"ssh://(?:[A-Za-z0-9_.-]+@)?[A-Za-z0-9_.-]+:[0-9]{1,5}")
_TCP_RE = re.compile(r"tcp://[A-Za-z0-9_.\[\]:-]+:[0-9]{1,5}")


class EngineConfigError(CrowdError):
    """An ``[engines.NAME]`` entry (or ``[placement]``) that cannot be used; says what to fix."""


@dataclass(frozen=True)
class EngineSpec:
    """One engine as configured (``local`` included)."""

    name: str
    url: str = ""  # empty with a context
    context: str = ""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_verify: bool = True
    labels: tuple[str, ...] = ()
    mode: str = "engine"
    relay_network: str = "bridge"  # the docker network the engine's relay container joins
    relay_address: str = ""  # HOST:PORT its relay reaches the hub at; empty: the hub's own setting

    @property
    def local(self) -> bool:
        return self.name == LOCAL

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert or self.tls_ca)

    def where(self) -> str:
        """The address for people: the URL, or ``context NAME``."""
        return self.url or f"context {self.context}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url or None, "context": self.context or None,
                "tls": self.tls, "labels": list(self.labels), "mode": self.mode,
                "relay_network": self.relay_network, "relay_address": self.relay_address or None}


def local_url() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _where(name: str) -> str:
    return f"crowd.toml [engines.{name}]"


def check_relay_address(text: str, where: str) -> str:
    """``HOST:PORT`` a relay can connect to (a host name or IPv4 address, a port 1-65535), else
    ``EngineConfigError`` saying so under ``where``."""
    m = _ADDRESS_RE.fullmatch(text)
    if m is None or not 0 < int(m.group(2)) < 65536:
        raise EngineConfigError(f"{where}: relay_address {text!r} is not HOST:PORT (a host name or IPv4 "
                                "address the engine reaches the hub at, and the port of [hub] relay_port)")
    if m.group(1) in WILDCARDS:
        raise EngineConfigError(f"{where}: relay_address {text!r} is a listening address no relay can "
                                "connect to; give the hub's address as that engine reaches it")
    return text


def parse_engine(name: str, table: Any, root: Path | None = None) -> EngineSpec:
    """One ``[engines.NAME]`` table -> :class:`EngineSpec` (``EngineConfigError`` naming the key)."""
    if not isinstance(name, str) or not ENGINE_NAME_RE.fullmatch(name):
        raise EngineConfigError(f"{name!r} is not an engine name; use 1-32 characters a-z, 0-9, '_' or '-'")
    if name == LOCAL:
        raise EngineConfigError(f"{_where(name)}: 'local' is the engine crowdtui always has "
                                "(DOCKER_HOST or the local socket); give the other engine another name")
    if not isinstance(table, dict):
        raise EngineConfigError(f"{_where(name)} must be a table of keys ({', '.join(KEYS)})")
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise EngineConfigError(f"{_where(name)}: unknown key {unknown[0]!r}; the keys are {', '.join(KEYS)}")
    for key in ("url", "context", "tls_ca", "tls_cert", "tls_key", "mode", "relay_network", "relay_address"):
        if key in table and not isinstance(table[key], str):
            raise EngineConfigError(f"{_where(name)}: {key} must be text")
    url, context = table.get("url", "").strip(), table.get("context", "").strip()
    if bool(url) == bool(context):
        raise EngineConfigError(f"{_where(name)}: give url (unix://, tcp://, ssh://) or context, one of them")
    if url:
        if url.startswith("unix://"):
            if not url.startswith("unix:///"):
                raise EngineConfigError(f"{_where(name)}: {url!r} needs an absolute socket path (unix:///…)")
        elif url.startswith("tcp://"):
            if not _TCP_RE.fullmatch(url):
                raise EngineConfigError(f"{_where(name)}: {url!r} needs host and port (tcp://HOST:2376)")
        elif url.startswith("ssh://"):
            if not _SSH_RE.fullmatch(url):
                raise EngineConfigError(f"{_where(name)}: {url!r} must be ssh://user@host:port (the port is "
                                        "required and no socket path is allowed)")
        else:
            raise EngineConfigError(f"{_where(name)}: {url!r} is not unix://, tcp:// or ssh://")
    files = {}
    for key in ("tls_ca", "tls_cert", "tls_key"):
        text = table.get(key, "").strip()
        if text and root is not None and not Path(text).expanduser().is_absolute():
            text = str(root / text)
        files[key] = str(Path(text).expanduser()) if text else ""
    if (files["tls_cert"] or files["tls_key"]) and not (files["tls_cert"] and files["tls_key"]):
        raise EngineConfigError(f"{_where(name)}: tls_cert and tls_key go together")
    if any(files.values()) and not url.startswith("tcp://"):
        raise EngineConfigError(f"{_where(name)}: TLS files are for tcp:// engines")
    if url.startswith("tcp://") and not files["tls_cert"]:
        raise EngineConfigError(f"{_where(name)}: a tcp:// engine needs tls_ca, tls_cert and tls_key "
                                "(an engine on the network without TLS is root for anyone who reaches it)")
    verify = table.get("tls_verify", True)
    if not isinstance(verify, bool):
        raise EngineConfigError(f"{_where(name)}: tls_verify must be true or false")
    labels = table.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) and LABEL_RE.fullmatch(x) for x in labels):
        raise EngineConfigError(f"{_where(name)}: labels must be a list of words like [\"gpu\", \"zone=eu\"]")
    mode = table.get("mode", "engine")
    if mode not in MODES:
        raise EngineConfigError(f"{_where(name)}: mode {mode!r} is not one of {', '.join(MODES)}")
    address = table.get("relay_address", "").strip()
    if address:
        check_relay_address(address, _where(name))
        if mode == "swarm":
            raise EngineConfigError(f"{_where(name)}: relay_address is for engines with a relay; a Swarm's "
                                    "relays run on its nodes: set it on each node's own [engines.NAME]")
    network = table.get("relay_network", "bridge")
    if not _NETWORK_RE.fullmatch(network):
        raise EngineConfigError(f"{_where(name)}: relay_network {network!r} is not a docker network name "
                                "(\"bridge\", \"host\" or a network made on that engine)")
    return EngineSpec(name=name, url=url, context=context, tls_verify=verify, labels=tuple(labels),
                      mode=mode, relay_network=network, relay_address=address, **files)


def engines_of(config: dict, root: Path | None = None) -> dict[str, EngineSpec]:
    """Every engine of a workspace's configuration, ``local`` first."""
    engines = {LOCAL: EngineSpec(name=LOCAL, url=local_url())}
    tables = config.get("engines", {})
    if not isinstance(tables, dict):
        raise EngineConfigError("crowd.toml: [engines] must hold tables like [engines.NAME]")
    for name, table in tables.items():
        engines[name] = parse_engine(name, table, root)
    return engines


def engine_names(config: dict) -> tuple[str, ...]:
    """The engine names only (no checks beyond the table's presence): for the roster."""
    tables = config.get("engines", {})
    return (LOCAL, *(tables if isinstance(tables, dict) else ()))


@dataclass(frozen=True)
class Placement:
    """``[placement] policy``: ``local`` (every agent without ``engine:`` on the local
    engine) or ``spread`` (over the engines whose labels hold the agent's engine_labels,
    the one with the most free memory first)."""

    policy: str = "local"

    @classmethod
    def from_config(cls, config: dict) -> "Placement":
        table = config.get("placement", {})
        if not isinstance(table, dict) or set(table) - {"policy"}:
            raise EngineConfigError("crowd.toml [placement] has one key: policy = \"local\" | \"spread\"")
        policy = table.get("policy", "local")
        if policy not in POLICIES:
            raise EngineConfigError(f"crowd.toml [placement] policy {policy!r} is not one of {', '.join(POLICIES)}")
        return cls(policy=policy)

    def candidates(self, engines: dict[str, EngineSpec], wanted_labels: tuple[str, ...]) -> list[str]:
        """The engines an agent with ``wanted_labels`` may go to, in the configured order."""
        if self.policy == "local" and not wanted_labels:
            return [LOCAL]
        return [n for n, spec in engines.items() if set(wanted_labels) <= set(spec.labels)]


def choose(candidates: list[str], free_memory: dict[str, int | None]) -> str | None:
    """The candidate with the most free memory (engines that did not answer are skipped);
    ties keep the configured order. None when none answered."""
    best, best_free = None, -1
    for name in candidates:
        free = free_memory.get(name)
        if free is not None and free > best_free:
            best, best_free = name, free
    return best


# --------------------------------------------------------------------------- crowd.toml's text


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def add_engine_text(text: str, spec: EngineSpec) -> str:
    """crowd.toml's text with ``[engines.NAME]`` appended (``EngineConfigError`` if it exists)."""
    config = tomllib.loads(text) if text.strip() else {}
    if spec.name in config.get("engines", {}):
        raise EngineConfigError(f"engine {spec.name!r} is already in crowd.toml; "
                                f"remove it first (`crowdtui engine rm {spec.name}`)")
    lines = [f"[engines.{spec.name}]"]
    if spec.url:
        lines.append(f"url = {_toml_str(spec.url)}")
    if spec.context:
        lines.append(f"context = {_toml_str(spec.context)}")
    for key in ("tls_ca", "tls_cert", "tls_key"):
        if getattr(spec, key):
            lines.append(f"{key} = {_toml_str(getattr(spec, key))}")
    if not spec.tls_verify:
        lines.append("tls_verify = false")
    if spec.labels:
        lines.append("labels = [" + ", ".join(_toml_str(x) for x in spec.labels) + "]")
    if spec.mode != "engine":
        lines.append(f"mode = {_toml_str(spec.mode)}")
    if spec.relay_network != "bridge":
        lines.append(f"relay_network = {_toml_str(spec.relay_network)}")
    if spec.relay_address:
        lines.append(f"relay_address = {_toml_str(spec.relay_address)}")
    new = (text.rstrip("\n") + "\n\n" if text.strip() else "") + "\n".join(lines) + "\n"
    engines_of(tomllib.loads(new))  # what was written reads back
    return new


_HEADER_RE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def remove_engine_text(text: str, name: str) -> str:
    """crowd.toml's text without ``[engines.NAME]`` (its header and keys up to the next table)."""
    config = tomllib.loads(text) if text.strip() else {}
    if name not in config.get("engines", {}):
        raise EngineConfigError(f"no engine {name!r} in crowd.toml; `crowdtui engine ls` lists them")
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        m = _HEADER_RE.match(line)
        if m:
            key = m.group(1).replace('"', "").replace(" ", "")
            skipping = key == f"engines.{name}"
            if skipping:
                continue
        if not skipping:
            out.append(line)
    new = re.sub(r"\n{3,}", "\n\n", "".join(out))
    if name in tomllib.loads(new).get("engines", {}):
        raise EngineConfigError(f"could not take [engines.{name}] out of crowd.toml (written another way); "
                                "edit the file")
    return new
