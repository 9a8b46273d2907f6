"""Run a function in a forked child while the caller goes on, and collect its result later.

The gate's inputs are read by CPU-bound Python; on a machine with two or more cores, reading
the source (or decoding the export's scales) in a child halves the wait. The child inherits the
caller's memory, so nothing is serialized on the way in; the result comes back pickled through
a pipe between these two processes of ours (never from a file). Where fork is missing, or for
inputs too small to repay a fork, the function simply runs when its result is asked for.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Inputs with fewer weight bytes than this are processed in the calling process.
PARALLEL_THRESHOLD_BYTES = 8 << 30


def can_fork() -> bool:
    return hasattr(os, "fork") and (os.cpu_count() or 1) > 1


def start(fn: Callable[[], T], *, data_bytes: int) -> Callable[[], T]:
    """Start ``fn`` in a child when the data it reads (``data_bytes`` of weights) is large; the
    returned callable waits for it and returns its result, raising what it raised (a
    ``PtqvError`` keeps its message and fix)."""
    if data_bytes < PARALLEL_THRESHOLD_BYTES or not can_fork():
        return fn
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, send, leave without running the parent's cleanup
        os.close(read_end)
        try:
            payload = pickle.dumps((True, fn()), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:
            payload = pickle.dumps((False, exc), protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(payload)
        os._exit(0)
    os.close(write_end)

    def result() -> T:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        os.waitpid(pid, 0)
        ok, value = pickle.loads(data)  # our own child's bytes, never a file's
        if not ok:
            raise value
        return value

    return result
