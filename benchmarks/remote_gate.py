"""Bytes, round trips and time of `ptqv gate --cluster` / `ptqv scan --cluster` on a sharded
real-tool fixture (ModelOpt NVFP4 Llama and its source, each split into --shards shards), beside
the same commands run locally on the same files. The checkpoints are uploaded to REMOTE_DIR on
the cluster first (over SFTP) and removed afterwards.

    python benchmarks/remote_gate.py --cluster loop --remote-dir /home/ptqvtest/bench [--shards 8]

Needs a clusters.yaml entry for the cluster (paramiko transport). On this repository's loopback
test sshd that is the `loop` entry the remote tests write (see tests/remote/conftest.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ptq_validators.remote.config import load_cluster  # noqa: E402
from ptq_validators.remote.connect import connect  # noqa: E402
from tests.ckpt_edit import copy_checkpoint, shard  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "data"


def ptqv(*args: str) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ptq_validators", *args, "--json"], capture_output=True, text=True, cwd=ROOT
    )
    took = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"ptqv {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return took, json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", required=True)
    parser.add_argument(
        "--remote-dir", required=True, help="absolute directory on the cluster (created, then removed)"
    )
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runner = connect(load_cluster(args.cluster))
    remote = PurePosixPath(args.remote_dir)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp)
        for name, fixture in (("export", "modelopt-nvfp4-llama"), ("source", "src-llama")):
            copy_checkpoint(FIXTURES / fixture, local / name)
            shard(local / name, args.shards)
            runner.mkdir(remote / name)
            for path in (local / name).iterdir():
                runner.write_bytes(remote / name / path.name, path.read_bytes())
        total = sum(p.stat().st_size for p in local.rglob("*") if p.is_file())
        rows = []
        commands = {
            "gate": (
                ["gate", str(local / "export"), "--source", str(local / "source"), "--qformat", "nvfp4"],
                [
                    "gate",
                    str(remote / "export"),
                    "--cluster",
                    args.cluster,
                    "--source",
                    f"{args.cluster}:{remote / 'source'}",
                    "--qformat",
                    "nvfp4",
                ],
            ),
            "scan": (
                ["scan", str(local / "export")],
                ["scan", str(remote / "export"), "--cluster", args.cluster],
            ),
        }
        for name, (here, there) in commands.items():
            local_times = [ptqv(*here)[0] for _ in range(args.repeat)]
            remote_runs = [ptqv(*there) for _ in range(args.repeat)]
            transfer = remote_runs[-1][1]["transfer"]
            rows.append(
                (name, statistics.median(local_times), statistics.median(t for t, _ in remote_runs), transfer)
            )
        runner.run(["rm", "-rf", str(remote / "export"), str(remote / "source")])
        runner.close()
    print(
        f"{args.shards} shards per checkpoint, {total} bytes on disk in all ({args.repeat} runs, medians)\n"
    )
    print("| command | local s | --cluster s | bytes transferred | round trips |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, here, there, transfer in rows:
        print(
            f"| {name} | {here:.2f} | {there:.2f} | {transfer['bytes_transferred']} | {transfer['round_trips']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
