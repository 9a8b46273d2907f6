"""The paramiko transport against a real sshd on 127.0.0.1: commands, exit codes, large output,
timeouts, host keys, no-prompt auth, ProxyJump and ssh_config aliases with Include."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path, PurePosixPath

import pytest

from ptq_validators.errors import RemoteError
from ptq_validators.launch.runner import CommandTimeout
from ptq_validators.remote.config import load_cluster
from ptq_validators.remote.connect import connect
from ptq_validators.remote.paramiko_transport import ParamikoRunner
from tests.remote.conftest import loop_cluster, ptqv, write_clusters

pytestmark = pytest.mark.infra


def runner_for(home: Path, name: str = "loop", accept_new: bool = False) -> ParamikoRunner:
    runner = connect(load_cluster(name), accept_new_host_key=accept_new)
    assert isinstance(runner, ParamikoRunner)
    return runner


def test_exit_code_output_and_one_connection(cluster_home: Path) -> None:
    with runner_for(cluster_home) as runner:
        done = runner.run(["bash", "-c", 'echo "$1"; echo err >&2; exit 7', "_", "a b'c"])
        assert (done.returncode, done.stdout, done.stderr) == (7, "a b'c\n", "err\n")
        first = runner._clients[-1]
        assert runner.run(["true"]).returncode == 0
        assert runner._clients[-1] is first  # the connection is reused across calls
        assert runner.which("bash") and runner.which("no-such-tool-xyz") is None


def test_five_mib_on_each_stream_completes(cluster_home: Path) -> None:
    script = "head -c 5242880 /dev/zero | tr '\\0' o; head -c 5242880 /dev/zero | tr '\\0' e >&2; exit 3"
    with runner_for(cluster_home) as runner:
        start = time.monotonic()
        done = runner.run(["bash", "-c", script], timeout=60)
    assert done.returncode == 3
    assert len(done.stdout) == len(done.stderr) == 5 * 2**20
    assert set(done.stdout) == {"o"} and set(done.stderr) == {"e"}
    assert time.monotonic() - start < 30


def test_timeout_is_exit_4_naming_the_command_and_kills_it(cluster_home: Path) -> None:
    with runner_for(cluster_home) as runner:
        start = time.monotonic()
        with pytest.raises(CommandTimeout, match="sleep 41"):
            runner.run(["sleep", "41"], timeout=1)
        assert time.monotonic() - start < 5
        time.sleep(2.5)  # the far side's `timeout` stops it a second after ours
        assert "sleep 41" not in runner.run(["ps", "-eo", "args"]).stdout
    done = ptqv("remote", "run", "loop", "--timeout", "1", "--", "sleep", "42")
    assert done.returncode == 4 and "`sleep 42`" in done.stderr


def test_files_over_sftp(cluster_home: Path, ssh_infra: dict[str, str]) -> None:
    base = PurePosixPath(ssh_infra["PTQV_SSH_HOME"]) / "ptqv-files"
    with runner_for(cluster_home) as runner:
        runner.mkdir(base / "sub")
        runner.write_text(base / "a.txt", "one\ntwo\nthree\n", mode=0o755)
        assert runner.read_text(base / "a.txt") == "one\ntwo\nthree\n"
        assert runner.read_text(base / "a.txt", max_bytes=6) == "three\n"
        assert runner.read_text(base / "missing") is None
        st = runner.stat(base / "a.txt")
        assert st is not None and st.size == 14 and abs(st.mtime - time.time()) < 120
        assert runner.stat(base / "missing") is None
        assert runner.list_dir(base) == ["a.txt", "sub"]
        assert runner.run(["test", "-x", str(base / "a.txt")]).returncode == 0


def test_remote_run_cli_passes_the_exit_code_and_json(cluster_home: Path) -> None:
    done = ptqv("remote", "run", "loop", "--", "bash", "-c", "echo hi; exit 9")
    assert (done.returncode, done.stdout) == (9, "hi\n")
    done = ptqv("remote", "run", "loop", "--json", "--cwd", "/tmp", "--", "pwd")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["exit_code"], data["stdout"], data["cluster"]) == (0, "/tmp\n", "loop")


def test_unknown_host_key_refused_unless_accepted(home: Path, ssh_infra: dict[str, str]) -> None:
    write_clusters(home / ".config" / "modelopt" / "clusters.yaml", {"loop": loop_cluster(ssh_infra)})
    marker = f"{ssh_infra['PTQV_SSH_HOME']}/ran-unknown-key"
    done = ptqv("remote", "run", "loop", "--", "touch", marker)
    assert done.returncode == 4
    assert "not in" in done.stderr and "--accept-new-host-key" in done.stderr and "SHA256:" in done.stderr
    done = ptqv(
        "remote", "run", "loop", "--accept-new-host-key", "--", "bash", "-c", f"rm -f {marker}; echo ok"
    )
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr
    recorded = (home / ".ssh" / "known_hosts").read_text()
    assert recorded.startswith(f"[127.0.0.1]:{ssh_infra['PTQV_SSH_PORT']} ssh-ed25519 ")
    assert ptqv("remote", "run", "loop", "--", "true").returncode == 0  # known now


def test_changed_host_key_always_refused(home: Path, ssh_infra: dict[str, str]) -> None:
    write_clusters(home / ".config" / "modelopt" / "clusters.yaml", {"loop": loop_cluster(ssh_infra)})
    other = home / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    fake = other.with_suffix(".pub").read_text().split()[:2]
    (home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{ssh_infra['PTQV_SSH_PORT']} {' '.join(fake)}\n")
    for extra in ([], ["--accept-new-host-key"]):
        done = ptqv("remote", "run", "loop", *extra, "--", "touch", "/tmp/ptqv-should-not-run")
        assert done.returncode == 4
        assert (
            "CHANGED" in done.stderr and done.stderr.count("SHA256:") == 2 and "ssh-keygen -R" in done.stderr
        )
        assert len(done.stderr.strip().splitlines()) == 2  # one error line and one fix line
    assert not Path("/tmp/ptqv-should-not-run").exists()


def test_hashed_known_hosts_entry_is_matched(home: Path, ssh_infra: dict[str, str]) -> None:
    write_clusters(home / ".config" / "modelopt" / "clusters.yaml", {"loop": loop_cluster(ssh_infra)})
    known = home / ".ssh" / "known_hosts"
    shutil.copy(ssh_infra["PTQV_SSH_KNOWN_HOSTS"], known)
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    assert known.read_text().startswith("|1|")
    assert ptqv("remote", "run", "loop", "--", "true").returncode == 0


def test_password_server_is_refused_without_prompt(cluster_home: Path, ssh_infra: dict[str, str]) -> None:
    port = int(ssh_infra["PTQV_SSH_PASSWORD_PORT"])
    write_clusters(
        cluster_home / ".config" / "modelopt" / "clusters.yaml", {"pw": loop_cluster(ssh_infra, port=port)}
    )
    done = subprocess.run(  # stdin is a terminal-less pipe: a prompt would hang until the timeout
        ["python", "-c", "from ptq_validators.cli import main; main()", "remote", "run", "pw", "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.PIPE,
        env={**__import__("os").environ},
        check=False,
    )
    assert done.returncode == 4, done.stderr
    assert "password" in done.stderr and "never prompts" in done.stderr and "openssh" in done.stderr


def test_unreachable_host_retries_then_exit_4(cluster_home: Path, ssh_infra: dict[str, str]) -> None:
    write_clusters(
        cluster_home / ".config" / "modelopt" / "clusters.yaml", {"dead": loop_cluster(ssh_infra, port=1)}
    )
    runner = connect(load_cluster("dead"))
    assert isinstance(runner, ParamikoRunner)
    runner.retries = 1
    start = time.monotonic()
    with pytest.raises(RemoteError, match="after 2 attempts"):
        runner.run(["true"])
    assert 0.9 < time.monotonic() - start < 10  # one backoff of 1 s


@pytest.mark.parametrize(
    ("greeting", "reason"),
    [
        (b"HTTP/1.0 400 Bad Request\r\n\r\n", "no SSH banner"),
        (b"SSH-2.0-OpenSSH_9.6\r\n" + b"\x00\x00\x00\x0cnot a packet" * 3, "closed the connection"),
    ],
    ids=["not-ssh", "banner-then-garbage"],
)
def test_a_login_node_that_is_no_ssh_server(home: Path, greeting: bytes, reason: str) -> None:
    """A real TCP server on 127.0.0.1 that answers, but not as SSH: one error line with the
    reason, and none of paramiko's own tracebacks from its transport thread."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = server.accept()
                with connection:
                    connection.sendall(greeting)

    threading.Thread(target=serve, daemon=True).start()
    cluster = {"login_node": "127.0.0.1", "port": port, "user": "nobody", "workspace": "/tmp/ws"}
    write_clusters(home / ".config" / "modelopt" / "clusters.yaml", {"odd": cluster})
    try:
        done = ptqv("env", "--cluster", "odd")
    finally:
        server.close()
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr and "Exception (client)" not in done.stderr, done.stderr
    (error, fix) = done.stderr.splitlines()
    assert reason in error and error.startswith(f"ptqv: error: cannot connect to nobody@127.0.0.1:{port}"), (
        error
    )
    assert fix.startswith("ptqv: fix: ")


def test_ssh_config_alias_include_and_proxyjump(cluster_home: Path, ssh_infra: dict[str, str]) -> None:
    ssh = cluster_home / ".ssh"
    (ssh / "conf.d").mkdir()
    (ssh / "config").write_text("Include conf.d/*.conf\n\nHost *\n  ServerAliveInterval 30\n")
    (ssh / "conf.d" / "hosts.conf").write_text(
        f"Host jumpbox\n  HostName 127.0.0.1\n  Port {ssh_infra['PTQV_SSH_JUMP_PORT']}\n"
        f"  User {ssh_infra['PTQV_SSH_USER']}\n  IdentityFile {ssh_infra['PTQV_SSH_KEY']}\n\n"
        f"Host gpu-login\n  HostName 127.0.0.1\n  Port {ssh_infra['PTQV_SSH_PORT']}\n"
        f"  User {ssh_infra['PTQV_SSH_USER']}\n  IdentityFile {ssh_infra['PTQV_SSH_KEY']}\n  ProxyJump jumpbox\n"
    )
    write_clusters(
        cluster_home / ".config" / "modelopt" / "clusters.yaml", {"alias": {"login_node": "gpu-login"}}
    )
    cluster = load_cluster("alias")
    runner = connect(cluster)
    assert isinstance(runner, ParamikoRunner)
    endpoint = runner.endpoint
    assert (endpoint.hostname, endpoint.port, endpoint.user) == (
        "127.0.0.1",
        int(ssh_infra["PTQV_SSH_PORT"]),
        ssh_infra["PTQV_SSH_USER"],
    )
    assert [j.port for j in endpoint.jumps] == [int(ssh_infra["PTQV_SSH_JUMP_PORT"])]
    jump_log = Path(ssh_infra["PTQV_SSH_KEY"]).parents[1] / "logs" / "sshd-jump.log"
    before = jump_log.read_text().count("direct-tcpip") if jump_log.exists() else 0
    with runner:
        assert runner.run(["echo", "through the jump"]).stdout == "through the jump\n"
    assert jump_log.read_text().count("direct-tcpip") > before or "Accepted publickey" in jump_log.read_text()


def test_remote_sync_copies_then_skips_unchanged(
    cluster_home: Path, ssh_infra: dict[str, str], tmp_path: Path
) -> None:
    local = tmp_path / "recipes"
    (local / "sub").mkdir(parents=True)
    (local / "a.yaml").write_text("a: 1\n")
    (local / "sub" / "run.sh").write_text("echo hi\n")
    (local / "sub" / "run.sh").chmod(0o755)
    (local / "__pycache__").mkdir()
    (local / "__pycache__" / "x.pyc").write_bytes(b"\0")
    target = f"{ssh_infra['PTQV_SSH_HOME']}/sync-{tmp_path.name}"
    dry = ptqv("remote", "sync", "loop", str(local), target, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert [(f["path"], f["copied"], f["changed"]) for f in json.loads(dry.stdout)["files"]] == [
        ("a.yaml", False, True),
        ("sub/run.sh", False, True),
    ]
    first = json.loads(ptqv("remote", "sync", "loop", str(local), target, "--json").stdout)
    assert [f["copied"] for f in first["files"]] == [True, True] and first["bytes_copied"] == 13
    again = json.loads(ptqv("remote", "sync", "loop", str(local), target, "--json").stdout)
    assert [f["copied"] for f in again["files"]] == [False, False]  # same size and mtime: skipped
    (local / "a.yaml").write_text("a: 22\n")
    third = json.loads(ptqv("remote", "sync", "loop", str(local), target, "--json").stdout)
    assert [f["copied"] for f in third["files"]] == [True, False]
    done = ptqv(
        "remote",
        "run",
        "loop",
        "--",
        "bash",
        "-c",
        f"cat {target}/a.yaml; test -x {target}/sub/run.sh; ls -A {target}",
    )
    assert done.stdout == "a: 22\na.yaml\nsub\n" and done.returncode == 0


def test_ssh_proxy_command_from_clusters_yaml(cluster_home: Path, ssh_infra: dict[str, str]) -> None:
    # a ProxyCommand that only bash provides: the TCP stream to %h:%p over /dev/tcp
    proxy = "bash -c 'exec 3<>/dev/tcp/%h/%p; cat <&3 & cat >&3'"
    entry = loop_cluster(ssh_infra, ssh_proxy=proxy)
    write_clusters(cluster_home / ".config" / "modelopt" / "clusters.yaml", {"proxied": entry})
    runner = connect(load_cluster("proxied"))
    assert isinstance(runner, ParamikoRunner)
    assert runner.endpoint.proxy_command == proxy.replace("%h", "127.0.0.1").replace(
        "%p", ssh_infra["PTQV_SSH_PORT"]
    )
    with runner:
        assert runner.run(["echo", "proxied"]).stdout == "proxied\n"
        assert runner._proxy is not None
        helpers = _children(runner._proxy.process.pid)  # the background `cat`
    assert helpers
    # they end with the connection too (one left behind held the server's session open)
    deadline = time.monotonic() + 5
    while any(map(_alive, helpers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, helpers))


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.append(int(status.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"
