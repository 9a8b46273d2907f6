"""`ptqv remote run` and `ptqv remote sync`: commands and files on a cluster from clusters.yaml.

The shared options (``--clusters``, ``--accept-new-host-key``) and ``open_cluster`` are used by
the other ``--cluster`` commands too (launch, jobs, env, scan, gate).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from ptq_validators.cli.epilogs import epilog
from ptq_validators.cli.options import ACCEPT_NEW_OPTION, CLUSTERS_OPTION

REMOTE_NOTE = "Exit 4: unreachable host, refused host key or login, no live ControlMaster, or a timeout."

remote_app = typer.Typer(
    help="Run commands and copy files on a cluster from clusters.yaml.",
    epilog=epilog(
        "ptqv remote run dgx -- squeue -u alice",
        "ptqv remote sync dgx ./recipes /lustre/alice/ptq/recipes --dry-run",
        note=REMOTE_NOTE,
    ),
    no_args_is_help=True,
)


def open_cluster(
    name: str | None, clusters: Path | None, accept_new_host_key: bool = False
) -> tuple[Any, Any]:
    """(the ``Cluster``, its runner)."""
    from ptq_validators.remote.config import load_cluster
    from ptq_validators.remote.connect import connect

    cluster = load_cluster(name, clusters)
    return cluster, connect(cluster, accept_new_host_key=accept_new_host_key)


def emit_json(data: Any) -> None:
    from ptq_validators.envelope import render_json

    typer.echo(render_json(data), nl=False)


@remote_app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog=epilog(
        "ptqv remote run dgx -- squeue -u alice",
        note="The exit code is the remote command's own; ptqv's codes below apply when it could not run. "
        + REMOTE_NOTE,
    ),
)
def remote_run(
    ctx: typer.Context,
    cluster: str = typer.Argument(..., help="Cluster name in clusters.yaml."),
    clusters: Path | None = CLUSTERS_OPTION,
    accept_new_host_key: bool = ACCEPT_NEW_OPTION,
    cwd: str | None = typer.Option(
        None, help="Run in this remote directory [the cluster's workspace, created if missing; else home]."
    ),
    timeout: float = typer.Option(600, help="Seconds before the command is stopped (exit 4)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON: stdout, stderr, exit code."),
) -> None:
    """Run one command on the cluster's login node; its exit code becomes ptqv's.

    The words after `--` are the command, passed as argv (each word quoted): use
    `bash -c '...'` for pipes. Nothing prompts: a login that wants a password or MFA fails with
    exit 4 (use `transport: openssh` and open a ControlMaster first).
    """
    from pathlib import PurePosixPath

    from ptq_validators.errors import UsageError

    argv = list(ctx.args)
    if not argv:
        raise UsageError("no command given", hint="put it after `--`: ptqv remote run CLUSTER -- CMD ...")
    spec, runner = open_cluster(cluster, clusters, accept_new_host_key)
    where = PurePosixPath(cwd) if cwd else (PurePosixPath(spec.workspace) if spec.workspace else None)
    if where is not None and cwd is None:
        runner.mkdir(where)
    done = runner.run(argv, cwd=where, timeout=timeout)
    if json_out:
        emit_json(
            {
                "schema_version": 1,
                "kind": "ptqv-remote-run",
                "cluster": spec.name,
                "host": runner.host,
                "argv": argv,
                "exit_code": done.returncode,
                "stdout": done.stdout,
                "stderr": done.stderr,
            }
        )
    else:
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
    raise typer.Exit(done.returncode)


def _progress(done: int, total: int, name: str) -> None:
    width = 30
    filled = width * done // total
    sys.stderr.write(f"\rptqv sync [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {name[:40]:<40}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


@remote_app.command(
    "sync",
    epilog=epilog("ptqv remote sync dgx ./my-recipes /lustre/alice/ptq/recipes --dry-run", note=REMOTE_NOTE),
)
def remote_sync(
    cluster: str = typer.Argument(..., help="Cluster name in clusters.yaml."),
    local: Path = typer.Argument(..., help="Local directory to copy."),
    remote: str = typer.Argument(..., help="Absolute directory on the cluster (created if missing)."),
    clusters: Path | None = CLUSTERS_OPTION,
    accept_new_host_key: bool = ACCEPT_NEW_OPTION,
    exclude: list[str] | None = typer.Option(None, help="Another pattern to leave out (repeatable)."),
    no_default_excludes: bool = typer.Option(False, help="Do not leave out .git, __pycache__, *.pyc, ..."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be copied, copy nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON: each file and whether it was copied."),
) -> None:
    """Copy LOCAL to REMOTE on the cluster over SFTP; files with the same size and mtime there
    are skipped, nothing there is deleted. Leaves out .git, __pycache__, *.pyc, .claude,
    node_modules and *.egg-info unless --no-default-excludes.
    """
    from pathlib import PurePosixPath

    from ptq_validators.errors import UsageError
    from ptq_validators.remote.sync import DEFAULT_EXCLUDES, plan_sync, run_sync

    if not remote.startswith("/"):
        raise UsageError(f"REMOTE {remote!r} is not absolute", hint="`~` does not expand over SFTP")
    excludes = [*([] if no_default_excludes else DEFAULT_EXCLUDES), *(exclude or [])]
    spec, runner = open_cluster(cluster, clusters, accept_new_host_key)
    target = PurePosixPath(remote)
    items = plan_sync(runner, local, target, excludes)
    if not dry_run:
        run_sync(runner, items, local, target, _progress if sys.stderr.isatty() and not json_out else None)
    copied = [i for i in items if i.upload]
    if json_out:
        emit_json(
            {
                "schema_version": 1,
                "kind": "ptqv-remote-sync",
                "cluster": spec.name,
                "remote": remote,
                "dry_run": dry_run,
                "files": [
                    {"path": i.path, "size": i.size, "copied": i.upload and not dry_run, "changed": i.upload}
                    for i in items
                ],
                "bytes_copied": 0 if dry_run else sum(i.size for i in copied),
            }
        )
        return
    for item in copied:
        typer.echo(f"{'would copy' if dry_run else 'copied'}\t{item.path}\t{item.size}")
    print(
        f"ptqv: {len(copied)} of {len(items)} file(s) {'to copy' if dry_run else 'copied'}", file=sys.stderr
    )


def register(app: typer.Typer) -> None:
    app.add_typer(remote_app, name="remote")
