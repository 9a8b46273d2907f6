"""The scenarios of evals/evals.json, executed: each runs the command sequence a skill prescribes.

The commands come from the skills' own ``<!-- runnable: ID -->`` blocks, never retyped here;
placeholders in capitals are bound to fixtures; each step checks the outcome the skill promises
(exit code, what the output says, what was written). The quantizer is a stand-in (there is no
GPU): tests/launch/stand_in.py records the phases it was run for, and
tests/skills/export_stand_in.py delivers the real ModelOpt export of the tiny llama for the --qformat asked.
Cluster cases (``needs: cluster``) run against the loopback sshd and SLURM: their fixtures and
the stand-in are uploaded to the cluster first, as a user's files would already be there.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import FIXTURES, ROOT
from tests.skills.pack import SKILLS, all_runnable

if TYPE_CHECKING:
    from ptq_validators.remote.shell import ShellRunner

EVALS = json.loads((ROOT / "evals" / "evals.json").read_text(encoding="utf-8"))["evals"]
HERE = Path(__file__).resolve().parent


def _handed(work: Path, fixture: str, name: str) -> str:
    """A fixture handed to the agent as ./NAME in its working directory (so what it reads does
    not depend on where the checkout lies)."""
    shutil.copytree(FIXTURES / fixture, work / "session" / name)
    return name


class Cluster:
    """The loopback cluster ``loop`` as a scenario sees it: files put there before the agent
    starts (under one folder of the cluster's workspace, removed afterwards)."""

    name = "loop"

    def __init__(self, runner: ShellRunner, root: PurePosixPath) -> None:
        self.runner = runner
        self.root = root

    def put(self, local: Path, relative: str) -> str:
        """Copy a file or a directory tree to ``root/relative``; returns its path there."""
        dest = self.root / relative
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        for path in files:
            target = dest if local.is_file() else dest / path.relative_to(local).as_posix()
            self.runner.mkdir(target.parent)
            self.runner.write_bytes(target, path.read_bytes())
        return str(dest)


def _cluster_setup(name: str, work: Path, cluster: Cluster) -> dict[str, str]:
    """Cluster cases: what lies on the cluster (and the agent's local copies), as placeholders."""
    values = {"CLUSTER": cluster.name}
    if name == "cluster-listed":
        # the job reads the model where the cluster keeps it; inspect and plan read a local copy
        values["MODEL"] = _handed(work, "src-llama", "src-llama")
        values["CLUSTER_MODEL"] = cluster.put(FIXTURES / "src-llama", "models/src-llama")
        # the export stand-in finds the committed export beside it, as in the checkout
        values["CLUSTER_STAND_IN"] = cluster.put(
            HERE / "export_stand_in.py", "tests/skills/export_stand_in.py"
        )
        for export in ("modelopt-nvfp4-llama", "modelopt-nvfp4mlp-llama"):
            cluster.put(FIXTURES / export, f"tests/fixtures/data/{export}")
        return values
    if name == "cluster-failing":
        values["CLUSTER_STAND_IN"] = cluster.put(ROOT / "tests" / "launch" / "stand_in.py", "stand_in.py")
        return values
    if name == "cluster-handed-over":
        values["OUTPUT"] = cluster.put(FIXTURES / "modelopt-fp8-llama", "llama-fp8")
        values["SOURCE"] = cluster.put(FIXTURES / "src-llama", "llama")
        return values
    raise AssertionError(f"unknown cluster setup {name!r}")


def _setup(name: str, work: Path) -> dict[str, str]:
    """The fixtures a scenario starts from, as placeholder values."""
    if name == "broken-export":
        # the chat template and tokenizer config were lost on export
        out = shutil.copytree(FIXTURES / "modelopt-nvfp4-llama", work / "session" / "export")
        (out / "chat_template.jinja").unlink()
        (out / "tokenizer_config.json").unlink()
        return {"OUTPUT": "export", "SOURCE": _handed(work, "src-llama", "source")}
    if name == "handed-over":
        return {
            "OUTPUT": _handed(work, "llmc-nvfp4-llama", "export"),
            "SOURCE": _handed(work, "src-llama", "source"),
        }
    if name == "fp8-source":
        return {"MODEL": str(FIXTURES / "hf-fp8-llama")}
    if name == "llmc-export":
        return {"EXPORT": str(FIXTURES / "llmc-nvfp4-llama"), "MODEL": str(FIXTURES / "src-llama")}
    if name == "listed":
        return {"MODEL": str(FIXTURES / "src-llama")}
    if name == "unlisted":
        # the tiny llama relabelled as an architecture transformers knows but ModelOpt does not list
        model = shutil.copytree(FIXTURES / "src-llama", work / "tiny-mistral")
        config = json.loads((model / "config.json").read_text())
        config.update(model_type="mistral", architectures=["MistralForCausalLM"])
        (model / "config.json").write_text(json.dumps(config, indent=2))
        return {"MODEL": str(model)}
    if name == "remote-code-vlm":
        # the tiny llava with its own modelling code; importing that code would leave a marker
        model = shutil.copytree(FIXTURES / "src-vlm", work / "tiny-vlm")
        config = json.loads((model / "config.json").read_text())
        config["auto_map"] = {"AutoModelForImageTextToText": "modeling_tiny_vlm.TinyVlm"}
        (model / "config.json").write_text(json.dumps(config, indent=2))
        marker = work / "model-code-ran"
        (model / "modeling_tiny_vlm.py").write_text(
            f"open({str(marker)!r}, 'w').close()\n"
            "from transformers import LlavaForConditionalGeneration\n\n\n"
            "class TinyVlm(LlavaForConditionalGeneration):\n    pass\n"
        )
        return {"MODEL": str(model), "MARKER": str(marker)}
    raise AssertionError(f"unknown setup {name!r}")


def _bind(text: str, values: dict[str, str]) -> str:
    """Replace each placeholder word (capitals) that has a value; the rest stay as written."""
    if not values:
        return text
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(values, key=len, reverse=True))) + r")\b")
    return pattern.sub(lambda m: values[m.group(1)], text)


def _bind_spec(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return values.get(value, value)
    if isinstance(value, list):
        return [_bind_spec(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _bind_spec(v, values) for k, v in value.items()}
    return value


class Session:
    """One agent session: a working directory, the commands it ran and the characters it read."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work = work
        self.env = env
        self.commands = 0
        self.read = 0
        self.log: list[tuple[str, int]] = []

    def run(self, line: str) -> subprocess.CompletedProcess[str]:
        argv = shlex.split(line)
        assert argv[0] == "ptqv", line
        done = subprocess.run(
            [sys.executable, "-m", "ptq_validators", *argv[1:]],
            capture_output=True,
            text=True,
            cwd=self.work,
            env=self.env,
            timeout=300,  # `jobs wait` on SLURM backs off up to 30 s between polls
            check=False,
        )
        self.commands += 1
        self.read += len(done.stdout) + len(done.stderr)
        self.log.append((line, len(done.stdout) + len(done.stderr)))
        return done


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CLAUDE_CODE_SESSION_ID", "CODEX_THREAD_ID", "PTQV_WORKSPACES")
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return env


def _step(session: Session, values: dict[str, str], step: dict[str, Any]) -> None:
    lines = all_runnable()[step["block"]]
    for line in lines:
        bound = _bind(line, values)
        done = session.run(bound)
        shown = f"{bound}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        assert done.returncode == step["exit"], shown
        for text in step.get("stdout_contains", []):
            assert text in done.stdout, f"{text!r} missing from the output of {shown}"
        for text in step.get("stdout_lacks", []):
            assert text not in done.stdout, f"{text!r} in the output of {shown}"
        for var, key in step.get("capture_json", {}).items():
            values[var] = json.loads(done.stdout)[key]
        if "capture_stdout" in step:
            values[step["capture_stdout"]] = done.stdout.strip()
        for var, pattern in step.get("capture_stderr", {}).items():
            found = re.search(pattern, done.stderr)
            assert found, f"{pattern!r} not in the stderr of {shown}"
            values[var] = found.group(1)


def _phases_in_order(workspace: Path) -> None:
    """The smoke phase ran with 4 calibration samples, and before the full run."""
    smoke = json.loads((workspace / "output" / "smoke" / "stand_in.json").read_text())
    full = json.loads((workspace / "output" / "checkpoint" / "stand_in.json").read_text())
    calib = smoke["argv"][smoke["argv"].index("--calib_size") + 1]
    assert calib == "4", smoke["argv"]
    assert smoke["time"] < full["time"]


@pytest.fixture
def loop(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The loopback cluster with SLURM, in a private HOME whose clusters.yaml names it (with
    the gpu_type its fake GPU stands for, and a workspace of this case's own); what the case
    put or ran there is removed afterwards."""
    from ptq_validators.remote.config import load_cluster
    from ptq_validators.remote.connect import connect
    from tests.remote.conftest import loop_cluster, write_clusters

    home = request.getfixturevalue("cluster_home")
    ssh = request.getfixturevalue("ssh_infra")
    request.getfixturevalue("slurm_infra")
    root = PurePosixPath(ssh["PTQV_SSH_HOME"]) / "ptqv-ws" / f"sk-{uuid.uuid4().hex[:8]}"
    entry = loop_cluster(ssh, gpu_type="H100", workspace=str(root / "ws"))
    write_clusters(home / ".config" / "modelopt" / "clusters.yaml", {"loop": entry})
    with connect(load_cluster("loop")) as runner:
        yield Cluster(runner, root)
        runner.run(["rm", "-rf", str(root)])


CASES = [
    pytest.param(case, id=case["name"], marks=[pytest.mark.infra] if case["run"].get("needs") else [])
    for case in EVALS
]


@pytest.mark.parametrize("case", CASES)
def test_scenario(case: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest) -> None:
    run = case["run"]
    values: dict[str, str] = {
        "PYTHON": sys.executable,
        "STAND_IN": str(ROOT / "tests" / "launch" / "stand_in.py"),
        "EXPORT_STAND_IN": str(HERE / "export_stand_in.py"),
    }
    if run.get("needs") == "slurm":
        infra = request.getfixturevalue("slurm_infra")
        values["PARTITION"] = infra["PTQV_SLURM_PARTITION"]
    work = tmp_path / "session"
    work.mkdir()
    if run.get("needs") == "cluster":
        values |= _cluster_setup(run["setup"], tmp_path, request.getfixturevalue("loop"))
    else:
        values |= _setup(run["setup"], tmp_path)
    values |= run.get("vars", {})
    if "job" in run:
        (work / "job.yaml").write_text(json.dumps(_bind_spec(run["job"], values)), encoding="utf-8")
    session = Session(work, _env())
    # what the agent reads first: the whole SKILL.md (the skill list's descriptions are not counted)
    session.read += len((SKILLS / case["skill"] / "SKILL.md").read_text(encoding="utf-8"))
    for step in run["steps"]:
        _step(session, values, step)
    for name in run.get("files_exist", []):
        assert (work / name).is_file(), name
    if "MARKER" in values:
        assert not Path(values["MARKER"]).exists(), "the model's own code was run"
    if run.get("smoke_before_full"):
        _phases_in_order(Path(values["WORKSPACE"]))
    # shown by -s: what the agent ran and how much each command printed
    print(f"{case['name']}: {session.commands} commands, {session.read} characters read", session.log)
    budget = run.get("budget")
    if budget:
        assert session.commands <= budget["commands"], session.commands
        assert session.read <= budget["characters"], session.read


QUANTIZE_PATH = ["env", "inspect", "plan", "render", "launch", "wait", "gate"]


def _path(case: dict[str, Any]) -> list[str]:
    """The step names of a case, a cluster variant (``launch-cluster``) named as its step."""
    return [step["block"].split("#")[1].removesuffix("-cluster") for step in case["run"]["steps"]]


def test_quantize_cases_take_the_whole_path_once() -> None:
    """A "quantize and tell me" case goes env → inspect → plan → render → launch → wait → gate,
    each once (a step run twice would be a wrong turn or a polling loop), within its budget."""
    cases = [c for c in EVALS if c["skill"] == "ptq" and _path(c)[-1:] == ["gate"]]
    assert {c["name"] for c in cases} >= {"quantize-listed-model-locally", "quantize-on-cluster"}
    for case in cases:
        assert _path(case) == QUANTIZE_PATH, case["name"]
        assert case["run"]["budget"] == {"commands": 12, "characters": 15000}, case["name"]


def test_gate_cases_hold_the_gate_budget() -> None:
    """Handed an export, the gate skill answers in at most 2 commands and 4,000 characters."""
    cases = [c for c in EVALS if c["skill"] == "ptq-gate"]
    assert {c["run"]["needs"] for c in cases if "needs" in c["run"]} == {"cluster"}
    for case in cases:
        assert case["run"]["budget"] == {"commands": 2, "characters": 4000}, case["name"]


def test_every_runnable_block_is_exercised() -> None:
    used = {step["block"] for case in EVALS for step in case["run"]["steps"]}
    assert set(all_runnable()) == used, set(all_runnable()) ^ used


def test_cases_carry_the_eval_format_fields() -> None:
    for case in EVALS:
        assert {"id", "prompt", "expected_output", "files", "assertions"} <= set(case), case["name"]
        assert (SKILLS / case["skill"] / "SKILL.md").is_file()
        for path in case["files"]:
            assert (ROOT / path).exists(), path


def test_trigger_queries_are_balanced() -> None:
    queries = json.loads((ROOT / "evals" / "triggers.json").read_text(encoding="utf-8"))["queries"]
    skills = {q["skill"] for q in queries}
    assert skills - {None} == {d.name for d in SKILLS.iterdir() if d.is_dir()}
    negatives = sum(q["skill"] is None for q in queries)
    assert len(queries) >= 20 and negatives >= len(queries) // 4
