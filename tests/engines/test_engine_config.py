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
