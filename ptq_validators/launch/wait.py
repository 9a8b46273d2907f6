"""``ptqv jobs wait``: poll a job until it ends, reporting only changes, and turn its outcome
into an exit code (what an agent's polling loop would do, done once, right).

In: a runner, a job record, a timeout and how many polls in a row may fail. Out: 0 succeeded,
1 failed (or cancelled, or lost), 4 unreachable (``max_failures`` polls in a row failed), 124
timed out. Polls back off from 1 s to 30 s; a failed poll keeps the last known states.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ptq_validators.errors import RemoteError
from ptq_validators.launch.jobs import JobRecord, refresh
from ptq_validators.launch.runner import Runner

SUCCEEDED, FAILED, UNREACHABLE, TIMED_OUT = 0, 1, 4, 124
FIRST_POLL_S, MAX_POLL_S = 1.0, 30.0
DONE = {"succeeded": SUCCEEDED, "failed": FAILED, "cancelled": FAILED, "lost": FAILED}


def describe(record: JobRecord) -> str:
    """One line: the overall status and each step's state (and exit code once known)."""
    steps = " ".join(
        f"{s.name}={s.state}" + ("" if s.exit_code is None else f"({s.exit_code})") for s in record.steps
    )
    return f"{record.id} {record.status} {steps}"


def wait(
    runner: Runner,
    record: JobRecord,
    *,
    timeout: float | None,
    max_failures: int,
    report: Callable[[str], None],
    max_interval: float = MAX_POLL_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Poll ``record`` until it ends; ``report`` gets each new state line and each failure.
    Polls back off from 1 s to ``max_interval``."""
    deadline = None if timeout is None else clock() + timeout
    interval, last = min(FIRST_POLL_S, max_interval), ""
    while True:
        try:
            record = refresh(runner, record)
        except RemoteError as exc:
            report(
                f"{record.id} poll {record.failed_polls}/{max_failures} failed: {exc.message} "
                f"(last known: {record.status}, unknown since {record.unknown_since})"
            )
            if record.failed_polls >= max_failures:
                return UNREACHABLE
        else:
            line = describe(record)
            if line != last:
                report(line)
                last, interval = line, min(FIRST_POLL_S, max_interval)
            if record.status in DONE:
                return DONE[record.status]
        if deadline is not None and clock() >= deadline:
            report(f"{record.id} still {record.status} after {timeout:g} s")
            return TIMED_OUT
        pause = interval if deadline is None else max(0.0, min(interval, deadline - clock()))
        sleep(pause)
        interval = min(interval * 2, max_interval)
