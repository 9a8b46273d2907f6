"""`ptqv skills install`, `ptqv docs`, the generated cli.md and the plugin manifests."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ptq_validators import __version__, cli_reference
from ptq_validators.skillpack import INSTALL_HINT, RECORD_FILE, relative_links
from tests.conftest import ROOT
from tests.skills.pack import REFERENCES, SKILLS


def test_cli_reference_is_current() -> None:
    committed = (REFERENCES / "cli.md").read_text(encoding="utf-8")
    assert committed == cli_reference.render(), "regenerate: python -m ptq_validators.cli_reference"


def test_cli_reference_covers_every_command() -> None:
    text = (REFERENCES / "cli.md").read_text(encoding="utf-8")
    for command in (
        "gate",
        "scan",
        "env",
        "inspect",
        "plan",
        "render",
        "launch",
        "jobs status",
        "skills install",
        "docs",
    ):
        assert f"## `ptqv {command}`" in text, command


def installed_links_resolve(target: Path) -> list[Path]:
    """Every installed SKILL.md, after checking that each of its links (and those of the
    references it brought along) resolves inside the target."""
    skills = sorted(target.glob("*/SKILL.md"))
    for doc in skills + sorted(target.glob("*/references/*.md")):
        for link in relative_links(doc.read_text(encoding="utf-8")):
            resolved = (doc.parent / link).resolve()
            assert resolved.is_file(), f"{doc}: {link}"
            assert resolved.is_relative_to(
                doc.parent.resolve() if doc.name == "SKILL.md" else doc.parent.parent.resolve()
            )
    return skills


def test_install_into_an_empty_folder(ptqv, tmp_path: Path) -> None:
    done = ptqv("skills", "install", "--target", tmp_path / "skills")
    assert done.code == 0, done.stderr
    installed = installed_links_resolve(tmp_path / "skills")
    assert [p.parent.name for p in installed] == ["ptq", "ptq-gate", "ptq-jobs"]
    lines = done.stdout.splitlines()
    assert all(line.startswith("write\t") for line in lines)
    assert f"write\t{tmp_path / 'skills' / 'ptq-gate' / 'references' / 'errors.md'}" in lines
    assert not [p for p in (tmp_path / "skills").rglob("*") if p.is_symlink()]
    gate = (tmp_path / "skills" / "ptq-gate" / "SKILL.md").read_text(encoding="utf-8")
    assert "](references/errors.md)" in gate and "../../references" not in gate
    # only what the skill names travels with it
    assert not (tmp_path / "skills" / "ptq-gate" / "references" / "cli.md").exists()


def test_an_installed_copy_says_how_to_run_ptqv_without_the_checkout(ptqv, tmp_path: Path) -> None:
    # The pack's paragraph installs the checkout two folders up: from ~/.claude/skills/ptq that
    # is ~/.claude. An installed copy names the Python that installed it, which has the package.
    assert ptqv("skills", "install", "--target", tmp_path / "skills").code == 0
    command = f"{shlex.quote(sys.executable)} -m ptq_validators"
    for installed in sorted((tmp_path / "skills").glob("*/SKILL.md")):
        text = installed.read_text(encoding="utf-8")
        hint = text[text.index("`ptqv: command not found`") : text.index("```bash")]
        assert f"`{command}`" in hint and "folders up" not in hint, installed
        # the rest of the skill is the pack's, word for word
        pack = (SKILLS / installed.parent.name / "SKILL.md").read_text(encoding="utf-8")
        pack = pack.replace("](../../references/", "](references/")
        assert INSTALL_HINT.sub("", pack, count=1) == INSTALL_HINT.sub("", text, count=1)
    ran = subprocess.run([*shlex.split(command), "--version"], capture_output=True, text=True, check=False)
    assert ran.returncode == 0 and __version__ in ran.stdout, ran.stderr


def test_reinstall_keeps_unchanged_files_and_refuses_edited_ones(ptqv, tmp_path: Path) -> None:
    target = tmp_path / "skills"
    assert ptqv("skills", "install", "--target", target).code == 0
    again = ptqv("skills", "install", "--target", target, "--json")
    assert {row["action"] for row in again.json()["files"]} == {"unchanged"}
    edited = target / "ptq" / "SKILL.md"
    edited.write_text(edited.read_text(encoding="utf-8") + "\nmy note\n", encoding="utf-8")
    refused = ptqv("skills", "install", "--target", target)
    assert refused.code == 2 and refused.stdout == ""
    assert f"{edited}" in refused.stderr and "--force" in refused.stderr
    assert "my note" in edited.read_text(encoding="utf-8")
    forced = ptqv("skills", "install", "--target", target, "--force", "--json")
    actions = {row["path"]: row["action"] for row in forced.json()["files"]}
    assert actions[str(edited)] == "forced"
    assert "my note" not in edited.read_text(encoding="utf-8")


def test_a_copy_ptqv_wrote_is_replaced_when_the_pack_changes(ptqv, tmp_path: Path) -> None:
    target = tmp_path / "skills"
    assert ptqv("skills", "install", "--target", target).code == 0
    record_path = target / "ptq-jobs" / RECORD_FILE
    record = json.loads(record_path.read_text())
    old = target / "ptq-jobs" / "SKILL.md"
    old.write_text("an older release of the skill\n", encoding="utf-8")  # as an earlier install wrote it
    record["files"]["SKILL.md"] = hashlib.sha256(old.read_bytes()).hexdigest()
    record_path.write_text(json.dumps(record))
    done = ptqv("skills", "install", "--target", target, "--json")
    assert done.code == 0, done.stderr
    actions = {row["path"]: row["action"] for row in done.json()["files"]}
    assert actions[str(old)] == "replace"
    assert old.read_text(encoding="utf-8").startswith("---\nname: ptq-jobs")


def test_a_file_ptqv_did_not_write_or_a_link_is_not_overwritten(ptqv, tmp_path: Path) -> None:
    target = tmp_path / "skills"
    (target / "ptq").mkdir(parents=True)
    (target / "ptq" / "SKILL.md").write_text("someone else's skill\n")
    outside = tmp_path / "outside.md"
    outside.write_text("keep me\n")
    (target / "ptq-gate").mkdir()
    (target / "ptq-gate" / "SKILL.md").symlink_to(outside)
    refused = ptqv("skills", "install", "--target", target)
    assert refused.code == 2
    assert not (target / "ptq-jobs").exists()  # nothing is written when anything conflicts
    assert ptqv("skills", "install", "--target", target, "--force").code == 0
    assert outside.read_text() == "keep me\n"  # the link was replaced, not written through
    assert not (target / "ptq-gate" / "SKILL.md").is_symlink()
    (target / "ptq-jobs" / "SKILL.md").unlink()
    (target / "ptq-jobs" / "SKILL.md").mkdir()
    blocked = ptqv("skills", "install", "--target", target, "--force")
    assert blocked.code == 2 and "is a folder" in blocked.stderr


@pytest.mark.parametrize(
    ("agent", "scope", "folder"),
    [
        ("claude", "project", "project/.claude/skills"),
        ("claude", "user", "home/.claude/skills"),
        ("codex", "project", "project/.agents/skills"),
        ("agents", "user", "home/.agents/skills"),
    ],
)
def test_agent_folders(
    ptqv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, agent: str, scope: str, folder: str
) -> None:
    (tmp_path / "project").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "project")
    done = ptqv("skills", "install", "--agent", agent, "--scope", scope, "--json")
    assert done.code == 0, done.stderr
    assert done.json()["target"] == str(tmp_path / folder)
    assert (tmp_path / folder / "ptq" / "SKILL.md").is_file()


def test_install_usage_errors(ptqv, tmp_path: Path) -> None:
    both = ptqv("skills", "install", "--target", tmp_path, "--agent", "claude")
    assert both.code == 2 and "not both" in both.stderr
    unknown = ptqv("skills", "install", "--agent", "emacs")
    assert unknown.code == 2 and "unknown agent 'emacs'" in unknown.stderr
    (tmp_path / "file").write_text("")
    not_dir = ptqv("skills", "install", "--target", tmp_path / "file")
    assert not_dir.code == 2 and "not a directory" in not_dir.stderr


def test_docs_prints_a_reference_and_lists_them(ptqv) -> None:
    errors = ptqv("docs", "errors")
    assert errors.code == 0 and errors.stdout == (REFERENCES / "errors.md").read_text(encoding="utf-8")
    listed = ptqv("docs", "--json").json()["topics"]
    assert [t["name"] for t in listed] == sorted(p.stem for p in REFERENCES.glob("*.md"))
    about = {t["name"]: t["about"] for t in listed}
    assert all(about.values()) and about["errors"].startswith("Load this when a `ptqv` check fails")
    plain = ptqv("docs").stdout.splitlines()
    assert plain[0].startswith("checkpoint-validation\tLoad this")
    missing = ptqv("docs", "nothing")
    assert missing.code == 2 and "choose one of: checkpoint-validation" in missing.stderr


MANIFESTS = [
    ".claude-plugin/plugin.json",
    ".claude-plugin/marketplace.json",
    ".codex-plugin/plugin.json",
    ".agents/plugins/marketplace.json",
]


def test_plugin_manifests_parse_and_agree() -> None:
    claude, claude_market, codex, codex_market = (json.loads((ROOT / m).read_text()) for m in MANIFESTS)
    version = __version__
    for manifest in (claude, codex):
        assert manifest["name"] == "ptq-validators" and manifest["version"] == version
        assert (ROOT / manifest["skills"]).resolve() == SKILLS
    assert [p["name"] for p in claude_market["plugins"]] == ["ptq-validators"]
    assert claude_market["owner"]["name"] and claude_market["plugins"][0]["version"] == version
    assert codex["interface"]["displayName"] and codex["interface"]["shortDescription"]
    [entry] = codex_market["plugins"]
    assert entry["source"]["source"] == "local" and entry["policy"]["installation"] == "AVAILABLE"
    assert codex_market["interface"]["displayName"]


def test_plugin_sources_point_at_the_plugin_root() -> None:
    """Both marketplaces serve this repository as the plugin: its root has the manifests and
    skills/, and nothing a skill links to lies outside it (plugins are copied into a cache)."""
    claude_market = json.loads((ROOT / ".claude-plugin/marketplace.json").read_text())
    codex_market = json.loads((ROOT / ".agents/plugins/marketplace.json").read_text())
    roots = {
        (ROOT / claude_market["plugins"][0]["source"]).resolve(),
        (ROOT / codex_market["plugins"][0]["source"]["path"]).resolve(),
    }
    assert roots == {ROOT}
    assert (ROOT / ".claude-plugin" / "plugin.json").is_file() and (
        ROOT / ".codex-plugin" / "plugin.json"
    ).is_file()
    for skill in SKILLS.glob("*/SKILL.md"):
        for link in relative_links(skill.read_text(encoding="utf-8")):
            assert (skill.parent / link).resolve().is_relative_to(ROOT)
    assert not [p for p in [*SKILLS.rglob("*"), *REFERENCES.rglob("*")] if p.is_symlink()]
