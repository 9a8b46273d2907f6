"""clusters.yaml: every lookup location, validation errors naming file/cluster/field, selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptq_validators.errors import InputError, UsageError
from ptq_validators.remote.config import find_file, load_cluster, load_file
from ptq_validators.remote.ssh_config import resolve
from tests.remote.conftest import write_clusters

ONE = {"c1": {"login_node": "login1", "workspace": "/w"}}


def test_lookup_order(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / "proj" / "a" / "b"
    deep.mkdir(parents=True)
    claude = write_clusters(tmp_path / "proj" / ".claude" / "clusters.yaml", ONE)
    assert find_file(cwd=deep) == claude  # .claude/ found walking up
    agents = write_clusters(tmp_path / "proj" / "a" / ".agents" / "clusters.yaml", ONE)
    assert find_file(cwd=deep) == agents  # .agents/ before .claude/
    modelopt = write_clusters(home / ".config" / "modelopt" / "clusters.yaml", ONE)
    assert find_file(cwd=deep) == modelopt  # ~/.config/modelopt before both
    env_file = write_clusters(tmp_path / "env.yaml", ONE)
    monkeypatch.setenv("PTQV_CLUSTERS", str(env_file))
    assert find_file(cwd=deep) == env_file  # $PTQV_CLUSTERS before the files
    explicit = write_clusters(tmp_path / "explicit.yaml", ONE)
    assert find_file(explicit, cwd=deep) == explicit  # --clusters first
    monkeypatch.setenv("PTQV_CLUSTERS", str(tmp_path / "missing.yaml"))
    with pytest.raises(InputError, match=r"missing\.yaml.*PTQV_CLUSTERS"):
        find_file(cwd=deep)


def test_nothing_found(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_file(cwd=tmp_path) is None
    with pytest.raises(InputError, match=r"no clusters\.yaml"):
        load_cluster("x")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"workspace": "/w"}, "cluster 'bad': field 'login_node' is missing"),
        ({"login_node": "h", "workspace": "~/ws"}, "field 'workspace' is '~/ws', not an absolute path"),
        ({"login_node": "h", "port": "22"}, "field 'port' must be a port number"),
        ({"login_node": "h", "transport": "mosh"}, "field 'transport' is 'mosh'"),
        ({"login_node": "h", "gpus": 8}, "unknown field\\(s\\) gpus"),
        ({"login_node": 7}, "field 'login_node' must be a string"),
        # ssh would read these as its own options (-oProxyCommand=... runs a command)
        (
            {"login_node": "-oProxyCommand=touch /tmp/x"},
            "field 'login_node' is '-oProxyCommand=touch /tmp/x'",
        ),
        ({"login_node": "h", "user": "-F/tmp/cfg"}, "field 'user' is '-F/tmp/cfg'"),
        ({"login_node": "two words"}, "field 'login_node' is 'two words'"),
        ({"login_node": "h", "slurm": 5}, "field 'slurm' must map"),
    ],
)
def test_errors_name_file_cluster_and_field(tmp_path: Path, entry: dict, message: str) -> None:
    path = write_clusters(tmp_path / "clusters.yaml", {"bad": entry})
    with pytest.raises(InputError, match=message) as info:
        load_file(path)
    assert str(path) in str(info.value)
    assert info.value.hint, "every clusters.yaml error says the fix"


def test_a_missing_ssh_key_is_named_before_connecting(tmp_path: Path) -> None:
    path = write_clusters(
        tmp_path / "c.yaml", {"c": {"login_node": "h", "ssh_key": str(tmp_path / "no_key")}}
    )
    with pytest.raises(InputError, match=f"cluster 'c': ssh_key {tmp_path / 'no_key'} does not exist"):
        resolve(load_cluster("c", path))


def test_several_clusters_and_none_named_lists_them(tmp_path: Path) -> None:
    path = write_clusters(
        tmp_path / "c.yaml", {"a": {"login_node": "x"}, "b": {"login_node": "y"}}, default="b"
    )
    with pytest.raises(UsageError, match=r"2 clusters: a, b \(default_cluster: b\)"):
        load_cluster(None, path)
    assert load_cluster("a", path).login_node == "x"
    with pytest.raises(UsageError, match="no cluster 'z'"):
        load_cluster("z", path)
    single = write_clusters(tmp_path / "one.yaml", ONE)
    assert load_cluster(None, single).name == "c1"


def test_ssh_config_include_alias_and_multi_hop_jump(home: Path, tmp_path: Path) -> None:
    ssh = home / ".ssh"
    (ssh / "extra.conf").write_text(
        "Host gpu\n  HostName gpu.example.org\n  User alice\n  Port 2200\n"
        "  IdentityFile ~/.ssh/id_gpu\n  ProxyJump hop1,bob@hop2:2022\n\nHost hop1\n  HostName 10.0.0.1\n  User carol\n"
    )
    (ssh / "config").write_text("Include extra.conf\n")
    path = write_clusters(
        tmp_path / "c.yaml",
        {"g": {"login_node": "gpu"}, "h": {"login_node": "gpu", "user": "dave", "port": 22}},
    )
    endpoint = resolve(load_cluster("g", path))
    assert (endpoint.hostname, endpoint.port, endpoint.user) == ("gpu.example.org", 2200, "alice")
    assert endpoint.identity_files == (str(home / ".ssh" / "id_gpu"),)
    assert [(j.hostname, j.user, j.port) for j in endpoint.jumps] == [
        ("10.0.0.1", "carol", 22),
        ("hop2", "bob", 2022),
    ]
    assert endpoint.known_hosts_name == "[gpu.example.org]:2200"
    override = resolve(load_cluster("h", path))  # clusters.yaml wins over ssh_config
    assert (override.user, override.port, override.known_hosts_name) == ("dave", 22, "gpu.example.org")
