"""The set-up a new user relies on: pinned installs, the conda file, the two README commands, CI."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_matches_pyproject():
    project = _pyproject()["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert sorted(pip) == sorted(wanted)
    assert "python=3.11" in env["dependencies"]


def test_torch_pair_is_pinned_exactly():
    deps = _pyproject()["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps


def test_readme_has_exactly_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Set-up on a fresh machine\n(.*?)\n## ", readme, re.S).group(1)
    commands = re.findall(r"^\s*(make [\w-]+)\s*(?:#.*)?$", block, re.M)
    assert commands == ["make figures", "make test"]


def test_ci_runs_make_test_and_default_run_skips_slow():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    test_recipe = re.search(r"^test: .*\n\t(.*)$", makefile, re.M).group(1)
    assert '-m "not slow and not gpu"' in test_recipe
    assert "ipykernel install --sys-prefix --name vwlib" in makefile


def test_make_candidate_measures_in_a_clone_and_refuses_a_missing_argument():
    if not shutil.which("make"):
        pytest.skip("no make")
    dry = subprocess.run(["make", "-n", "candidate", "ROLE=sd", "TASK=generation", "NAME=x",
                          f"CKPT={ROOT / 'vwlib/checkpoints/mini/sd'}"], cwd=ROOT, capture_output=True, text=True)
    # the candidate replaces the shipped model in a clone only: the checkout's own checkpoints are never written
    assert "git clone -q . runs/candidate-x/clone" in dry.stdout
    assert "cp -r" in dry.stdout and "runs/candidate-x/clone/vwlib/checkpoints/mini/sd" in dry.stdout
    assert "--working --delta" in dry.stdout and "fidelity --out ../store --concepts 10 --task generation" in dry.stdout
    bad = subprocess.run(["make", "-o", "install", "candidate", "ROLE=sd"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "give ROLE=" in bad.stdout
