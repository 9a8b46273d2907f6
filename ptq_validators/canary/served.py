"""Start vLLM as a child process group on 127.0.0.1, wait for it, and always stop it.

``VllmServer`` is a context manager: entering starts ``PY -m vllm.entrypoints.openai.api_server``
in a new session (its own process group) with the format's flags and the offline/loopback
environment, and waits for ``/health`` under a deadline while echoing the log to stderr; leaving
sends SIGTERM to the group, waits, then SIGKILLs it. The log file is kept. A start that fails, or
an engine that dies at its first request, is classified from the log with the engine data file's
patterns: ``incompatible`` (the engine refuses this checkpoint on any hardware) or ``hardware``
(this build cannot run the format here).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from ptq_validators.errors import InputError

START_DEADLINE_S = 600.0
STOP_GRACE_S = 20.0
# Keep internal queues on loopback, stay offline, and keep the KV cache small (GiB, CPU builds).
ENGINE_ENV = {
    "VLLM_HOST_IP": "127.0.0.1",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}
SERVED_NAME = "canary"


class StartFailed(Exception):
    """The engine exited or missed its deadline before it was healthy."""

    def __init__(self, kind: str, message: str, log_path: Path) -> None:
        super().__init__(message)
        self.kind = kind  # "incompatible", "hardware" or "unknown"
        self.message = message
        self.log_path = log_path


@dataclass
class VllmServer:
    """One vLLM server for one checkpoint. ``patterns`` maps a failure kind to log substrings."""

    checkpoint: str
    python: str
    log_path: Path
    flags: list[str] = field(default_factory=list)
    patterns: dict[str, list[str]] = field(default_factory=dict)
    deadline_s: float = START_DEADLINE_S
    echo: bool = True
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    #: The process group of the last start (kept after stop, so callers can check it is gone).
    pgid: int | None = None
    #: Seconds from the start to a healthy server.
    ready_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            self.python, "-m", "vllm.entrypoints.openai.api_server",
            "--model", self.checkpoint, "--served-model-name", SERVED_NAME,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--max-model-len", "512", "--enforce-eager", "--generation-config", "vllm", "--seed", "0",
            *self.flags,
        ]  # fmt: skip

    def __enter__(self) -> VllmServer:
        if not Path(self.checkpoint, "config.json").is_file():
            raise InputError(
                f"{self.checkpoint}: no config.json", hint="pass a Hugging Face checkpoint directory"
            )
        self.port = self.port or _free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            try:
                self.process = subprocess.Popen(
                    self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env={**os.environ, **ENGINE_ENV}, start_new_session=True,
                )  # fmt: skip
            except OSError as exc:
                raise InputError(
                    f"cannot start {self.python}: {exc.strerror}", hint="pass --engine-python PY"
                ) from None
        self.pgid = self.process.pid
        started = time.monotonic()
        try:
            self._wait_healthy()
            self.ready_s = round(time.monotonic() - started, 1)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _wait_healthy(self) -> None:
        assert self.process is not None
        stop_echo = threading.Event()
        echo = (
            threading.Thread(target=_tail, args=(self.log_path, stop_echo), daemon=True)
            if self.echo
            else None
        )
        if echo:
            echo.start()
        try:
            give_up = time.monotonic() + self.deadline_s
            while time.monotonic() < give_up:
                if self.process.poll() is not None:
                    raise self._failure(
                        f"the engine exited with code {self.process.returncode} before it was ready"
                    )
                if _healthy(self.url):
                    return
                time.sleep(1.0)
            raise self._failure(f"not healthy after {self.deadline_s:.0f} s")
        finally:
            stop_echo.set()
            if echo:
                echo.join(timeout=2)

    def _failure(self, what: str) -> StartFailed:
        """The start failure, classified from the log (InputError when the Python has no vLLM)."""
        text = self.log_path.read_text("utf-8", "replace")
        if "No module named 'vllm'" in text:  # the wrong Python: nothing about the checkpoint
            raise InputError(
                f"{self.python} cannot import vllm (log: {self.log_path})",
                hint="pass --engine-python with the Python of a venv that has vllm installed",
            )
        known = classify_log(text, self.patterns)
        if known is not None:
            return StartFailed(*known, self.log_path)
        last = [ln for ln in text.splitlines() if ln.strip()][-1:] or ["(empty log)"]
        return StartFailed("unknown", f"{what}: {_engine_line(last[0])}", self.log_path)

    def known_failure(self) -> tuple[str, str] | None:
        """``classify_log`` of the log so far (for an engine whose requests failed after it started)."""
        return classify_log(self.log_path.read_text("utf-8", "replace"), self.patterns)

    def stop(self) -> None:
        """SIGTERM the whole group, wait, then SIGKILL whatever is left."""
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_GRACE_S)
        # Workers may outlive the leader: kill the group until none is left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_GRACE_S)
        _wait_group_gone(process.pid)
        self.process = None


@contextlib.contextmanager
def sigterm_stops() -> Iterator[None]:
    """While the engine runs, SIGTERM to ptqv raises SystemExit(143) instead of killing it on the
    spot, so the ``with VllmServer`` block still stops the engine's process group."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_group_gone(pgid: int, timeout: float = STOP_GRACE_S) -> None:
    give_up = time.monotonic() + timeout
    while group_alive(pgid) and time.monotonic() < give_up:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        time.sleep(0.2)


def classify_log(text: str, patterns: dict[str, list[str]]) -> tuple[str, str] | None:
    """The first known failure in an engine log: (``incompatible`` or ``hardware``, the engine's
    line without its prefix), the refusals looked for first; None when no pattern occurs."""
    lines = text.splitlines()
    for kind in ("incompatible", "hardware"):
        for pattern in patterns.get(kind, []):
            line = next((ln for ln in lines if pattern in ln), None)
            if line is not None:
                return kind, _engine_line(line)
    return None


def _engine_line(line: str) -> str:
    """A log line without vLLM's ``(APIServer pid=…) ERROR date [file:line]`` prefix."""
    text = line.strip()
    if "] " in text and text.startswith("("):
        text = text.split("] ", 1)[1]
    return text[:400]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, stop: threading.Event) -> None:
    """Copy new log lines to stderr until ``stop`` is set (the live log of a starting engine)."""
    position = 0
    while True:
        finished = stop.wait(0.5)
        with contextlib.suppress(OSError), open(path, "rb") as handle:
            handle.seek(position)
            chunk = handle.read()
            position += len(chunk)
            if chunk:
                sys.stderr.write(
                    "".join(f"[vllm] {ln}\n" for ln in chunk.decode("utf-8", "replace").splitlines())
                )
                sys.stderr.flush()
        if finished:
            return
