"""A supervised process's state, read from a real supervisor: its rc file and whether it lives.

`refresh` reads the rc file, then asks whether the process lives. A process that ends between
those two reads wrote its code first and is gone by the second: it must count as ended with that
code, never as LOST. The runner below makes that interleaving happen every time, with a real
process, by letting it finish only inside the liveness check.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from ptq_validators.launch.jobs import JobRecord, Step, refresh
from ptq_validators.launch.runner import LocalRunner, process_start_time


class EndsDuringTheLivenessCheck(LocalRunner):
    """Creates ``go`` (which lets the waiting command exit) when asked whether it lives, waits
    until the process is gone, then answers as the real runner would."""

    def __init__(self, go: Path) -> None:
        super().__init__()
        self.go = go

    def alive(self, pid: int, start_time: str) -> bool:
        self.go.touch()
        deadline = time.monotonic() + 20
        while process_start_time(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        return super().alive(pid, start_time)


def test_a_process_that_ends_between_the_two_reads_keeps_its_exit_code(tmp_path: Path) -> None:
    go = tmp_path / "go"
    runner = EndsDuringTheLivenessCheck(go)
    argv = ["sh", "-c", f"while [ ! -e {shlex.quote(str(go))} ]; do sleep 0.02; done; exit 3"]
    log, rc_file = tmp_path / "step.log", tmp_path / "step.rc"
    spawned = runner.spawn(argv, cwd=tmp_path, log=log, rc_file=rc_file)
    step = Step("full", argv, str(log), pid=spawned.pid, start_time=spawned.start_time, rc_file=str(rc_file))
    job = JobRecord("j1", "direct", "bare", str(tmp_path), "now", steps=[step], record_dir=str(tmp_path))
    assert not rc_file.exists()  # the command waits for `go`: the first read finds no code
    done = refresh(runner, job)
    assert (done.steps[0].state, done.steps[0].exit_code, done.status) == ("FAILED", 3, "failed")
