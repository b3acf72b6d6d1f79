"""The developer tooling (issue 28): the commit hooks check what `make lint` checks, with the
ruff this project pins, and run without downloading anything."""

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_the_pre_commit_config_is_valid_and_uses_the_pinned_ruff_from_the_venv():
    config = ROOT / ".ci" / "pre-commit-config.yaml"
    checked = subprocess.run(
        [BIN / "pre-commit", "validate-config", config], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    hooks = [hook for repo in yaml.safe_load(config.read_text())["repos"] for hook in repo["hooks"]]
    assert {repo["repo"] for repo in yaml.safe_load(config.read_text())["repos"]} == {"local"}
    entries = [hook["entry"].split() for hook in hooks]
    assert [entry[:2] for entry in entries] == [
        [".venv/bin/ruff", "check"],
        [".venv/bin/ruff", "format"],
    ]
    pinned = next(
        dep
        for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]["dev"]
        if dep.startswith("ruff")
    )
    version = subprocess.run([BIN / "ruff", "--version"], capture_output=True, text=True).stdout
    assert pinned == f"ruff=={version.split()[1]}"


def test_make_lint_is_what_make_test_runs_first():
    makefile = (ROOT / "Makefile").read_text()
    (test_rule,) = [line for line in makefile.splitlines() if line.startswith("test:")]
    assert test_rule.split()[-1] == "lint"
    dry = subprocess.run(["make", "-n", "lint"], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert "ruff check ." in dry.stdout and "ruff format --check ." in dry.stdout
