"""Put a job rendered for a cluster's workspace onto the cluster, unchanged; the spec defaults a
cluster supplies.

In: a ``RenderedJob`` written locally with the remote workspace's paths inside (``render_job``
with ``into``) and a runner on the cluster. Out: the same files at those paths there (scripts
executable, ``logs/`` and ``output/`` created), written atomically. Nothing is rewritten.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from ptq_validators.launch.render import MANIFEST, RenderedJob
from ptq_validators.launch.runner import Runner
from ptq_validators.launch.workspace import Workspace
from ptq_validators.remote.config import Cluster


def upload_job(runner: Runner, job: RenderedJob) -> Workspace:
    """Upload ``job``; the remote workspace."""
    assert job.manifest is not None  # render_job always writes it
    manifest = json.loads(job.manifest.read_text(encoding="utf-8"))
    remote = Workspace(PurePosixPath(manifest["workspace"]))  # type: ignore[arg-type]
    for sub in (remote.scripts, remote.logs, remote.output):
        runner.mkdir(sub)
    for local in job.files:
        executable = local.suffix in (".sh", ".sbatch")
        runner.write_text(
            remote.scripts / local.name,
            local.read_text(encoding="utf-8"),
            mode=0o755 if executable else 0o644,
        )
    runner.write_text(remote.path / MANIFEST, job.manifest.read_text(encoding="utf-8"))
    return remote


def cluster_defaults(cluster: Cluster, spec_path: Path) -> dict[str, Any]:
    """Spec keys the cluster supplies when the spec leaves them out: its default partition and
    account, and its container image."""
    data = yaml.safe_load(spec_path.read_text(encoding="utf-8")) if spec_path.is_file() else {}
    data = data if isinstance(data, dict) else {}
    defaults = {
        "partition": cluster.partition,
        "account": cluster.account,
        "container": cluster.container_image,
    }
    return {k: v for k, v in defaults.items() if v and not data.get(k)}
