"""Cluster definitions from ``clusters.yaml`` (ModelOpt's layout plus a few keys of our own).

In: an optional ``--clusters FILE``, the environment and the working directory. Out: the file
that applies and the ``Cluster`` asked for. Lookup order (the first file found wins):
``--clusters FILE``, ``$PTQV_CLUSTERS``, ``~/.config/modelopt/clusters.yaml``, then
``.agents/clusters.yaml`` and ``.claude/clusters.yaml`` in the working directory or the nearest
parent. Errors name the file, the cluster and the field.

File layout::

    default_cluster: dgx
    clusters:
      dgx:
        login_node: dgx-login       # a host name or an ~/.ssh/config alias
        user: alice                 # optional (else ssh_config, else the local user)
        ssh_key: ~/.ssh/id_ed25519  # optional: only this key is offered
        ssh_proxy: "ssh -W %h:%p bastion"   # optional ProxyCommand
        workspace: /lustre/alice/ptq        # absolute: `~` does not expand over SFTP
        gpu_type: H100
        slurm: {default_account: acct, default_partition: batch}
        container_image: nvcr.io/nvidia/pytorch:25.01-py3
        env_type: slurm             # slurm, docker or bare
        # ours:
        transport: paramiko         # or openssh (reuses a live ControlMaster: the MFA path)
        control_path: ~/.ssh/cm-%C  # openssh: the ControlPath of the master
        port: 22
        proxy_jump: jumpuser@bastion:22,second-hop
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ptq_validators.errors import InputError, UsageError

ENV_VAR = "PTQV_CLUSTERS"
TRANSPORTS = ("paramiko", "openssh")
ENV_TYPES = ("slurm", "docker", "bare")
_STRING_KEYS = (
    "login_node",
    "user",
    "ssh_key",
    "ssh_proxy",
    "workspace",
    "gpu_type",
    "container_image",
    "env_type",
    "transport",
    "control_path",
    "proxy_jump",
)
_KNOWN_KEYS = {*_STRING_KEYS, "port", "slurm"}


@dataclass(frozen=True)
class Cluster:
    """One cluster entry. ``source`` is the file it came from."""

    name: str
    source: str
    login_node: str
    user: str | None = None
    ssh_key: str | None = None
    ssh_proxy: str | None = None
    workspace: str | None = None
    gpu_type: str | None = None
    container_image: str | None = None
    env_type: str | None = None
    transport: str = "paramiko"
    control_path: str | None = None
    port: int | None = None
    proxy_jump: str | None = None
    slurm: dict[str, str] = field(default_factory=dict)

    @property
    def partition(self) -> str | None:
        return self.slurm.get("default_partition")

    @property
    def account(self) -> str | None:
        return self.slurm.get("default_account")


@dataclass(frozen=True)
class ClusterFile:
    path: str
    clusters: dict[str, Cluster]
    default_cluster: str | None


def candidate_paths(cwd: Path, home: Path) -> list[Path]:
    """The lookup locations after ``--clusters`` and ``$PTQV_CLUSTERS``, in order."""
    paths = [home / ".config" / "modelopt" / "clusters.yaml"]
    for sub in (".agents", ".claude"):
        paths += [d / sub / "clusters.yaml" for d in (cwd, *cwd.parents)]
    return paths


def find_file(
    explicit: Path | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
    cwd: Path | None = None,
    home: Path | None = None,
) -> Path | None:
    """The clusters file that applies, or None when there is none."""
    if explicit is not None:
        if not explicit.is_file():
            raise InputError(f"{explicit}: no such clusters file", hint="check the --clusters path")
        return explicit
    if environ.get(ENV_VAR):
        path = Path(environ[ENV_VAR]).expanduser()
        if not path.is_file():
            raise InputError(
                f"{path}: no such clusters file (from ${ENV_VAR})", hint=f"fix or unset {ENV_VAR}"
            )
        return path
    cwd = Path.cwd() if cwd is None else cwd
    home = Path(environ.get("HOME") or Path.home()) if home is None else home
    return next((p for p in candidate_paths(cwd, home) if p.is_file()), None)


def load_file(path: Path) -> ClusterFile:
    """Parse and validate one clusters file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}", hint="fix the YAML") from None
    if not isinstance(data, dict) or not isinstance(data.get("clusters"), dict):
        raise InputError(f"{path}: no 'clusters:' mapping", hint="see `ptqv remote --help` for the layout")
    clusters = {str(name): _cluster(path, str(name), spec) for name, spec in data["clusters"].items()}
    default = data.get("default_cluster")
    if default is not None and str(default) not in clusters:
        raise InputError(
            f"{path}: default_cluster {default!r} is not one of the clusters ({', '.join(clusters)})",
            hint="fix default_cluster",
        )
    return ClusterFile(str(path), clusters, None if default is None else str(default))


def _cluster(path: Path, name: str, spec: Any) -> Cluster:
    where = f"{path}: cluster {name!r}"
    if not isinstance(spec, dict):
        raise InputError(f"{where}: not a mapping", hint="give login_node, workspace, ...")
    unknown = sorted(set(spec) - _KNOWN_KEYS)
    if unknown:
        raise InputError(
            f"{where}: unknown field(s) {', '.join(unknown)}", hint=f"known: {', '.join(sorted(_KNOWN_KEYS))}"
        )
    values: dict[str, Any] = {}
    for key in _STRING_KEYS:
        value = spec.get(key)
        if value is not None and not isinstance(value, str):
            raise InputError(
                f"{where}: field {key!r} must be a string, not {type(value).__name__}",
                hint=f"quote the value of {key}",
            )
        if value is not None:
            values[key] = value
    if not values.get("login_node"):
        raise InputError(
            f"{where}: field 'login_node' is missing", hint="set it to a host name or ~/.ssh/config alias"
        )
    for key in ("login_node", "user"):
        value = values.get(key)
        # ssh reads a leading '-' as one of its own options (-oProxyCommand=... runs a command),
        # and no host or user name holds whitespace or control characters
        if value is not None and (
            value.startswith("-") or not value.isprintable() or any(c.isspace() for c in value)
        ):
            raise InputError(
                f"{where}: field {key!r} is {value!r}, not a {'host' if key == 'login_node' else 'user'} name",
                hint="give a plain name (no leading '-', no spaces); ssh options go in ~/.ssh/config",
            )
    if values.get("transport", "paramiko") not in TRANSPORTS:
        raise InputError(
            f"{where}: field 'transport' is {values['transport']!r}",
            hint=f"use one of {', '.join(TRANSPORTS)}",
        )
    if values.get("env_type") not in (None, *ENV_TYPES):
        raise InputError(
            f"{where}: field 'env_type' is {values['env_type']!r}", hint=f"use one of {', '.join(ENV_TYPES)}"
        )
    workspace = values.get("workspace")
    if workspace is not None and not workspace.startswith("/"):
        raise InputError(
            f"{where}: field 'workspace' is {workspace!r}, not an absolute path",
            hint="`~` and relative paths do not expand over SFTP; give the absolute path",
        )
    port = spec.get("port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
        raise InputError(
            f"{where}: field 'port' must be a port number, not {port!r}", hint="give a number from 1 to 65535"
        )
    slurm = spec.get("slurm") or {}
    if not isinstance(slurm, dict) or not all(isinstance(v, str) for v in slurm.values()):
        raise InputError(
            f"{where}: field 'slurm' must map default_account/default_partition to strings",
            hint="e.g. slurm: {default_account: my-acct, default_partition: batch}",
        )
    return Cluster(
        name=name, source=str(path), port=port, slurm={str(k): v for k, v in slurm.items()}, **values
    )


def select(clusters: ClusterFile, name: str | None) -> Cluster:
    """The cluster ``name``; without a name, the only cluster. Several clusters and no name is a
    usage error that lists them: an agent must ask which one (``default_cluster`` is shown, not
    taken silently)."""
    if name is not None:
        if name not in clusters.clusters:
            raise UsageError(
                f"no cluster {name!r} in {clusters.path}",
                hint=f"clusters there: {', '.join(clusters.clusters) or 'none'}",
            )
        return clusters.clusters[name]
    if len(clusters.clusters) == 1:
        return next(iter(clusters.clusters.values()))
    default = f" (default_cluster: {clusters.default_cluster})" if clusters.default_cluster else ""
    raise UsageError(
        f"{clusters.path} defines {len(clusters.clusters)} clusters: {', '.join(clusters.clusters)}{default}",
        hint="name one (ask the user which); ptqv does not pick default_cluster silently",
    )


def load_cluster(name: str | None, clusters_file: Path | None = None, **lookup: Any) -> Cluster:
    """Find the clusters file (``find_file``) and the cluster ``name`` in it."""
    path = find_file(clusters_file, **lookup)
    if path is None:
        raise InputError(
            "no clusters.yaml found",
            hint="pass --clusters FILE, set $PTQV_CLUSTERS, or write ~/.config/modelopt/clusters.yaml",
        )
    return select(load_file(path), name)
