"""Job-state rules: sacct -P parsing, every terminal state, the result file winning, unknown-since,
and `jobs wait`'s exit codes.

The loopback SLURM cannot produce PREEMPTED, NODE_FAIL, OUT_OF_MEMORY, BOOT_FAIL or DEADLINE, nor
an outage of slurmdbd on demand, so these tests answer `sacct`/`squeue` from a scripted runner (a
stand-in for the scheduler's command line, in sacct's own -P output format); the real SLURM
cases (COMPLETED, FAILED, TIMEOUT, CANCELLED) run in test_jobs.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath

import pytest

from ptq_validators.errors import RemoteError
from ptq_validators.launch import slurm
from ptq_validators.launch.jobs import JobRecord, Step, refresh
from ptq_validators.launch.runner import Completed
from ptq_validators.launch.wait import wait


class ScriptedScheduler:
    """Answers sacct/squeue with fixed text, serves result files from a dict; ``down`` = unreachable."""

    host = "login1"

    def __init__(self, sacct: str = "", squeue: str = "", sacct_rc: int = 0) -> None:
        self.sacct, self.squeue, self.sacct_rc = sacct, squeue, sacct_rc
        self.files: dict[str, str] = {}
        self.down = False
        self.calls: list[str] = []

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: PurePath | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> Completed:
        if self.down:
            raise RemoteError(f"cannot connect to {self.host}")
        self.calls.append(argv[0])
        if argv[0] == "sacct":
            assert "-P" in argv and "-X" in argv and "-D" in argv
            return Completed(self.sacct_rc, self.sacct if self.sacct_rc == 0 else "", "")
        if argv[0] == "squeue":
            return Completed(0, self.squeue, "")
        raise AssertionError(argv)

    def read_text(self, path: PurePath, *, max_bytes: int | None = None) -> str | None:
        if self.down:
            raise RemoteError(f"cannot connect to {self.host}")
        return self.files.get(str(path))


def record(tmp_path: Path, *ids: str) -> JobRecord:
    steps = [
        Step(f"s{i}", [], f"/r/{i}.log", rc_file=f"/r/{i}.result", slurm_id=i, state="PENDING") for i in ids
    ]
    return JobRecord(
        "j1", "slurm", "slurm", "/r", "now", host="login1", cluster="c", steps=steps, record_dir=str(tmp_path)
    )


def test_parse_sacct_whole_states_and_exit_codes() -> None:
    out = "12|CANCELLED by 1001|0:15|00:00:05|vm|None|/r\n13|OUT_OF_MEMORY|0:125|00:01:00|vm|None|/r\n14|COMPLETED|0:0|00:00:01|vm|None|/r\n"
    infos = slurm.parse_sacct(out)
    assert infos["12"].state == "CANCELLED" and infos["12"].exit_code == 128 + 15
    assert infos["13"].state == "OUT_OF_MEMORY" and infos["14"].exit_code == 0
    assert slurm.parse_squeue("15|PENDING|Resources|\n")["15"].reason == "Resources"


@pytest.mark.parametrize("state", sorted(slurm.TERMINAL - {"COMPLETED", "CANCELLED"}))
def test_every_failing_terminal_state_ends_the_job_as_failed(tmp_path: Path, state: str) -> None:
    scheduler = ScriptedScheduler(sacct=f"7|{state}|0:0|00:00:09|vm|None|/r\n")
    done = refresh(scheduler, record(tmp_path, "7"))  # type: ignore[arg-type]
    assert done.steps[0].state == state and done.status == "failed"
    assert wait(scheduler, done, timeout=10, max_failures=3, report=lambda _: None, sleep=lambda _: None) == 1  # type: ignore[arg-type]


def test_an_older_job_of_the_same_number_is_not_ours(tmp_path: Path) -> None:
    # a controller whose state was reset numbers from 1 again; slurmdbd still holds the old job 7,
    # and until the new job 7 reaches it, sacct -D answers with the old one only
    old = "7|COMPLETED|0:0|00:00:09|vm|None|/home/u/ptqv-ws/manual-20261101-000000-aaaaaa/old-fp8\n"
    scheduler = ScriptedScheduler(sacct=old, squeue="7|RUNNING|None|vm\n")
    step = refresh(scheduler, record(tmp_path, "7")).steps[0]  # type: ignore[arg-type]
    assert (step.state, step.source) == ("RUNNING", "squeue")
    # once it has, the row from our workspace is the one read, wherever it sits among the others
    ours = "7|FAILED|3:0|00:00:02|vm|None|/r\n"
    scheduler = ScriptedScheduler(sacct=ours + old)
    step = refresh(scheduler, record(tmp_path, "7")).steps[0]  # type: ignore[arg-type]
    assert (step.state, step.exit_code, step.source) == ("FAILED", 3, "sacct")


def test_a_symlinked_home_still_matches_the_workspace() -> None:
    # sbatch records its working directory resolved; the record holds the path ptqv used
    workspace = PurePath("/home/u/ptqv-ws/manual-20261204-120000-b80cbd/m-fp8")
    assert slurm.same_directory("/lustre/home/u/ptqv-ws/manual-20261204-120000-b80cbd/m-fp8", workspace)
    assert not slurm.same_directory("/lustre/home/u/ptqv-ws/manual-20261101-000000-aaaaaa/m-fp8", workspace)
    assert not slurm.same_directory("", workspace)


def test_completing_is_not_terminal_and_sacct_lag_defers_to_squeue(tmp_path: Path) -> None:
    scheduler = ScriptedScheduler(
        sacct="7|RUNNING|0:0|00:00:09|vm|None|/r\n", squeue="7|COMPLETING|None|vm\n"
    )
    assert refresh(scheduler, record(tmp_path, "7")).status == "running"  # type: ignore[arg-type]
    scheduler = ScriptedScheduler(sacct="7|PENDING|0:0|00:00:00||None|/r\n", squeue="7|COMPLETED|None|vm\n")
    assert refresh(scheduler, record(tmp_path, "7")).steps[0].state == "COMPLETED"  # type: ignore[arg-type]


def test_no_accounting_falls_back_to_squeue(tmp_path: Path) -> None:
    scheduler = ScriptedScheduler(sacct_rc=1, squeue="7|PENDING|Priority|\n")
    step = refresh(scheduler, record(tmp_path, "7")).steps[0]  # type: ignore[arg-type]
    assert (step.state, step.reason) == ("PENDING", "Priority")


def test_result_file_wins(tmp_path: Path) -> None:
    scheduler = ScriptedScheduler(
        sacct="7|COMPLETED|0:0|00:00:09|vm|None|/r\n8|RUNNING|0:0|00:00:09|vm|None|/r\n"
    )
    scheduler.files = {"/r/7.result": "3 1796126767\n", "/r/8.result": "0 1796126767\n"}
    done = refresh(scheduler, record(tmp_path, "7", "8"))  # type: ignore[arg-type]
    # COMPLETED by the scheduler but the script said 3: failed; the script said 0: done, whatever squeue lags
    assert [(s.state, s.exit_code) for s in done.steps] == [("FAILED", 3), ("COMPLETED", 0)]
    scheduler.calls.clear()
    refresh(scheduler, done)  # type: ignore[arg-type]
    assert scheduler.calls == []  # final states are not asked again


def test_unreachable_keeps_the_last_state_and_says_since_when(tmp_path: Path) -> None:
    scheduler = ScriptedScheduler(sacct="7|RUNNING|0:0|00:00:09|vm|None|/r\n")
    job = refresh(scheduler, record(tmp_path, "7"))  # type: ignore[arg-type]
    scheduler.down = True
    for polls in (1, 2):
        with pytest.raises(RemoteError):
            refresh(scheduler, job)  # type: ignore[arg-type]
        assert (job.steps[0].state, job.status, job.failed_polls) == ("RUNNING", "running", polls)
        assert job.unknown_since
    scheduler.down = False
    job = refresh(scheduler, job)  # type: ignore[arg-type]
    assert (job.unknown_since, job.failed_polls) == (None, 0)


def test_wait_exit_codes_and_only_changes_reported(tmp_path: Path) -> None:
    scheduler = ScriptedScheduler(sacct="7|RUNNING|0:0|00:00:09|vm|None|/r\n")
    lines: list[str] = []
    clock = iter(range(0, 10_000, 5))
    code = wait(
        scheduler,
        record(tmp_path, "7"),
        timeout=60,
        max_failures=3,
        report=lines.append,
        sleep=lambda _: None,
        clock=lambda: float(next(clock)),
    )  # type: ignore[arg-type]
    assert code == 124 and len([line for line in lines if "RUNNING" in line]) == 1
    scheduler.down = True
    lines.clear()
    code = wait(
        scheduler,
        record(tmp_path, "7"),
        timeout=None,
        max_failures=3,
        report=lines.append,
        sleep=lambda _: None,
    )  # type: ignore[arg-type]
    assert code == 4 and len(lines) == 3 and "poll 3/3 failed" in lines[-1]
    scheduler = ScriptedScheduler(sacct="7|COMPLETED|0:0|00:00:09|vm|None|/r\n")
    assert (
        wait(
            scheduler,
            record(tmp_path, "7"),
            timeout=None,
            max_failures=3,
            report=lines.append,
            sleep=lambda _: None,
        )
        == 0
    )  # type: ignore[arg-type]
