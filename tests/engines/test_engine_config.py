"""crowd.toml's [engines.NAME] and [placement]: what is accepted, what is refused and how,
and `engine add|rm` editing the file's text without disturbing the rest of it."""

from __future__ import annotations

import tomllib

import pytest

from crowdtui.engine_config import (
    EngineConfigError,
    EngineSpec,
    Placement,
    add_engine_text,
    choose,
    engines_of,
    parse_engine,
    remove_engine_text,
)

TLS = {"tls_ca": "ca.pem", "tls_cert": "cert.pem", "tls_key": "key.pem"}


@pytest.mark.parametrize("name, table, said", [
    ("local", {"url": "unix:///x.sock"}, "always has"),
    ("Big", {"url": "unix:///x.sock"}, "not an engine name"),
    ("b", {"url": "tcp://h:2376"}, "needs tls_ca, tls_cert and tls_key"),
    ("b", {"url": "tcp://h", **TLS}, "host and port"),
    ("b", {"url": "ssh://me@h"}, "port is required"),
    ("b", {"url": "ssh://me@h:22/var/run/docker.sock"}, "no socket path"),
    ("b", {"url": "http://h:80"}, "not unix://, tcp:// or ssh://"),
    ("b", {"url": "unix:///x", "context": "c"}, "one of them"),
    ("b", {}, "one of them"),
    ("b", {"url": "unix:///x", "colour": "red"}, "unknown key 'colour'"),
    ("b", {"url": "unix:///x", "mode": "k8s"}, "mode 'k8s'"),
    ("b", {"url": "unix:///x", "labels": "gpu"}, "labels must be a list"),
    ("b", {"url": "unix:///x", "relay_network": "br0 --privileged"}, "not a docker network name"),
    ("b", {"url": "unix:///x", "relay_network": 7}, "relay_network must be text"),
    ("b", {"url": "unix:///x", "relay_address": "10.0.0.1"}, "is not HOST:PORT"),
    ("b", {"url": "unix:///x", "relay_address": "10.0.0.1:0"}, "is not HOST:PORT"),
    ("b", {"url": "unix:///x", "relay_address": "10.0.0.1:70000"}, "is not HOST:PORT"),
    ("b", {"url": "unix:///x", "relay_address": "h:1 --x"}, "is not HOST:PORT"),
    ("b", {"url": "unix:///x", "relay_address": "0.0.0.0:7443"}, "no relay can connect to"),
    ("b", {"url": "unix:///x", "relay_address": 7443}, "relay_address must be text"),
    ("b", {"url": "unix:///x", "mode": "swarm", "relay_address": "h:7443"}, "each node's own"),
    ("b", {"url": "ssh://me@h:22", **TLS}, "TLS files are for tcp://"),
    ("b", {"url": "tcp://h:2376", "tls_cert": "c.pem", "tls_ca": "ca.pem"}, "go together"),
])
def test_a_bad_engine_entry_says_what_to_fix(name, table, said):
    with pytest.raises(EngineConfigError, match=said):
        parse_engine(name, table)


def test_engines_local_first_and_relative_tls_files(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/other.sock")
    engines = engines_of({"engines": {"far": {"url": "tcp://10.0.0.5:2376", **TLS, "labels": ["big"]},
                                      "lap": {"context": "laptop"}}}, tmp_path)
    assert list(engines) == ["local", "far", "lap"]
    assert engines["local"].url == "unix:///run/other.sock"
    assert engines["far"].tls_ca == str(tmp_path / "ca.pem") and engines["far"].labels == ("big",)
    assert engines["lap"].where() == "context laptop"
    assert engines["far"].relay_network == "bridge"
    assert parse_engine("n", {"context": "c", "relay_network": "host"}).relay_network == "host"
    assert engines["far"].relay_address == "" and engines["far"].to_json()["relay_address"] is None
    spec = parse_engine("n", {"context": "c", "relay_address": " hub.example.org:7443 "})
    assert spec.relay_address == "hub.example.org:7443" and spec.to_json()["relay_address"] == "hub.example.org:7443"


def test_placement_candidates_and_choice():
    engines = engines_of({"engines": {"a": {"url": "unix:///a", "labels": ["big"]},
                                      "b": {"url": "unix:///b", "labels": ["big", "gpu"]}}})
    local, spread = Placement(), Placement.from_config({"placement": {"policy": "spread"}})
    assert local.candidates(engines, ()) == ["local"]
    assert local.candidates(engines, ("big",)) == ["a", "b"]  # labels asked: only those that have them
    assert spread.candidates(engines, ()) == ["local", "a", "b"]
    assert spread.candidates(engines, ("gpu",)) == ["b"]
    assert choose(["local", "a", "b"], {"local": 10, "a": 30, "b": 30}) == "a"  # ties: configured order
    assert choose(["local", "a"], {"local": None, "a": 1}) == "a"  # no answer: skipped
    assert choose(["local"], {"local": None}) is None
    with pytest.raises(EngineConfigError, match="local.*spread"):
        Placement.from_config({"placement": {"policy": "random"}})


def test_add_and_remove_keep_the_rest_of_the_file():
    text = "# my workspace\n[workspace]\nname = \"w\"  # shown in the title\n\n[hub]\nhttp_port = 0\n"
    spec = EngineSpec(name="far", url="tcp://10.0.0.5:2376", tls_ca="/c/ca.pem", tls_cert="/c/cert.pem",
                      tls_key="/c/key.pem", labels=("big",))
    added = add_engine_text(text, spec)
    assert added.startswith(text) and tomllib.loads(added)["engines"]["far"]["labels"] == ["big"]
    with pytest.raises(EngineConfigError, match="already"):
        add_engine_text(added, spec)
    both = add_engine_text(added, EngineSpec(name="lap", context="laptop"))
    removed = remove_engine_text(both, "far")
    assert "far" not in tomllib.loads(removed)["engines"] and "lap" in tomllib.loads(removed)["engines"]
    assert removed.startswith(text)
    assert remove_engine_text(removed, "lap").rstrip() == text.rstrip()
    with pytest.raises(EngineConfigError, match="no engine 'gone'"):
        remove_engine_text(text, "gone")


def test_add_writes_the_relay_keys_that_differ_from_the_defaults():
    spec = EngineSpec(name="far", url="ssh://me@h:22", relay_network="host", relay_address="10.0.0.1:7443")
    added = tomllib.loads(add_engine_text("", spec))["engines"]["far"]
    assert (added["relay_network"], added["relay_address"]) == ("host", "10.0.0.1:7443")
    plain = tomllib.loads(add_engine_text("", EngineSpec(name="far", url="ssh://me@h:22")))["engines"]["far"]
    assert "relay_network" not in plain and "relay_address" not in plain


def test_each_engine_s_relay_gets_its_own_hub_address(workspace):
    """``[engines.NAME] relay_address`` overrides the hub's one address for that engine's relay; a
    listening address (``0.0.0.0``) is refused as a relay's destination, saying what to set."""
    from crowdtui.host_relay import relay_addresses
    from crowdtui.runtime.container_info import ContainerFailed
    from crowdtui.runtime.relay_container import RelayHookup, relay_container_config
    from crowdtui.workspace import load_workspace

    cfg = workspace.root / "crowd.toml"
    cfg.write_text(cfg.read_text() + "\n[engines.a]\nurl = \"ssh://me@10.0.1.2:22\"\nrelay_address = \"10.0.1.1:7443\"\n"
                   "\n[engines.b]\nurl = \"ssh://me@10.0.2.2:22\"\n"
                   "\n[engines.s]\nurl = \"ssh://me@10.0.3.2:22\"\nmode = \"swarm\"\n")
    ws = load_workspace(workspace.root)
    assert relay_addresses(ws) == {"a": "10.0.1.1:7443"}
    door = RelayHookup("0.0.0.0:7443", lambda engine: None, addresses=relay_addresses(ws))
    assert (door.address_for("a"), door.address_for("b")) == ("10.0.1.1:7443", "0.0.0.0:7443")
    config = relay_container_config(ws, "a", door.address_for("a"), image="img")
    assert config["environment"]["CROWD_RELAY_HUB"] == "10.0.1.1:7443"
    with pytest.raises(ContainerFailed, match=r"set \[engines.b\] relay_address"):
        relay_container_config(ws, "b", door.address_for("b"), image="img")


def test_engine_add_takes_the_relay_options(workspace, capsys):
    import json

    from crowdtui.cli import main

    root = str(workspace.root)
    assert main(["engine", "add", "--json", "-w", root, "far", "--url", "ssh://me@10.0.1.2:22",
                 "--relay-network", "host", "--relay-address", "10.0.1.1:7443"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["relay_network"], row["relay_address"]) == ("host", "10.0.1.1:7443")
    table = tomllib.loads((workspace.root / "crowd.toml").read_text())["engines"]["far"]
    assert (table["relay_network"], table["relay_address"]) == ("host", "10.0.1.1:7443")
    assert main(["engine", "add", "--json", "-w", root, "near", "--url", "ssh://me@10.0.2.2:22",
                 "--relay-address", "0.0.0.0:7443"]) != 0
    error = json.loads(capsys.readouterr().out)["error"]
    assert "no relay can connect to" in error and "near" in error
    assert "near" not in tomllib.loads((workspace.root / "crowd.toml").read_text())["engines"]
    assert main(["engine", "ls", "--json", "-w", root]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["far"]["relay_address"] == "10.0.1.1:7443" and rows["local"]["relay_address"] is None


def test_an_engine_added_after_start_is_named_with_what_to_do(workspace):
    """``crowdtui engine add`` while a console runs: a start placed there says to restart,
    not that the engine does not exist."""
    from crowdtui.engine_config import EngineConfigError, EngineSpec, add_engine_text
    from crowdtui.runtime.engines import Engines

    engines = Engines(workspace, local_client=object())
    with pytest.raises(EngineConfigError, match="no engine 'later'"):
        engines.spec("later")
    cfg = workspace.root / "crowd.toml"
    cfg.write_text(add_engine_text(cfg.read_text(), EngineSpec(name="later", url="ssh://me@10.0.0.9:22")))
    with pytest.raises(EngineConfigError, match="added to crowd.toml after this process started.*restart"):
        engines.spec("later")
