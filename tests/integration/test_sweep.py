"""Sweeps: the shipped grids, the local and Ray backends (same results), and resuming after kill -9 at several points."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from vwlib.errors import VWError
from vwlib.store import ResultStore
from vwlib.study.sweep import load_sweep, plan, run_sweep

ROOT = Path(__file__).resolve().parents[2]


def _write_sweep(path: Path, out: Path, **settings) -> Path:
    cfg = {"profile": "mini", "out": str(out), "datasets": ["mini-objects"], "tasks": ["classification"],
           "concepts": 4, "anchors": "own", "deltas": [0.1, "inf"], "steps": 30, "group_size": 2, "transfer": False}
    path.write_text(yaml.safe_dump({**cfg, **settings}))
    return path


@pytest.mark.parametrize("name, words", [("paper-sec4", 1200), ("paper-sec5", 4800), ("mini", 4500)])
def test_shipped_sweeps_expand_to_the_papers_word_counts(name, words):
    cfg = load_sweep(ROOT / "sweeps" / f"{name}.yaml")
    trials = cfg.trials()  # planning needs no model and no image
    assert len(trials) == words
    assert len({t.key() for t in trials}) == words  # every trial its own key


def test_bad_sweep_files_name_the_problem(tmp_path):
    with pytest.raises(VWError, match="unknown setting.*learning_rate.*known:"):
        load_sweep(_write_sweep(tmp_path / "a.yaml", tmp_path / "runs", learning_rate=0.1))
    with pytest.raises(VWError, match="group_size must be a whole number >= 1, or one per task"):
        load_sweep(_write_sweep(tmp_path / "b.yaml", tmp_path / "runs", group_size=0))
    with pytest.raises(VWError, match=r"group_size .* got \{'segmentation': 2\}"):
        load_sweep(_write_sweep(tmp_path / "b.yaml", tmp_path / "runs", group_size={"segmentation": 2}))
    with pytest.raises(VWError, match="no sweep file"):
        load_sweep(tmp_path / "missing.yaml")
    with pytest.raises(VWError, match="unknown concept|not a single token|unknown dataset"):
        run_sweep(load_sweep(_write_sweep(tmp_path / "c.yaml", tmp_path / "runs", datasets=["mini-nothing"])),
                  progress=False)
    assert not (tmp_path / "runs").exists()  # nothing written


def test_plan_groups_trials_into_batched_jobs(tmp_path):
    cfg = load_sweep(_write_sweep(tmp_path / "s.yaml", tmp_path / "runs", tasks=["classification", "detection"],
                                  group_size=3))
    trials, jobs = plan(cfg, ResultStore(cfg.study.out))
    assert len(trials) == 16 and sum(map(len, jobs)) == 16
    assert max(map(len, jobs)) == 3
    for job in jobs:  # a job shares one forward pass: one task model and dataset
        assert len({(t.task, t.dataset, t.steps) for t in job}) == 1


def test_group_size_per_task(tmp_path):
    """GPU memory bounds generation passes far below the text-only tasks (SD 2.1 at 768 px: 2 trials per 80 GB)."""
    cfg = load_sweep(_write_sweep(tmp_path / "s.yaml", tmp_path / "runs", tasks=["classification", "detection"],
                                  group_size={"classification": 3, "detection": 1}))
    _, jobs = plan(cfg, ResultStore(cfg.study.out))
    sizes = {task: [len(j) for j in jobs if j[0].task == task] for task in ("classification", "detection")}
    assert max(sizes["classification"]) == 3 and sum(sizes["classification"]) == 8
    assert sizes["detection"] == [1] * 8


def _state(store: ResultStore) -> dict:
    """{trial dir name: (inode, mtime_ns) of its config.json}, after checking every finished trial is whole."""
    out = {}
    for d in store.trial_dirs():
        config = json.loads((d / "config.json").read_text())
        assert config["status"] == "ok"
        assert store.load_vector(d).shape == (1, 64)
        assert json.loads((d / f"eval-{config['task']}.json").read_text())["accuracy"] >= 0
        stat = (d / "config.json").stat()
        out[d.name] = (stat.st_ino, stat.st_mtime_ns)
    return out


def _sweep_process(config: Path, backend: str, env: dict) -> subprocess.Popen:
    # A session of its own, so that kill -9 of its process group also takes a local Ray cluster's processes down.
    return subprocess.Popen([sys.executable, "-m", "vwlib", "sweep", str(config), "--backend", backend, "--quiet"],
                            cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _kill_processes_mentioning(text: str) -> None:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def _kill_when(proc: subprocess.Popen, store: ResultStore, finished: int, timeout: float = 240) -> None:
    t0 = time.time()
    while len(store.trial_dirs()) < finished and proc.poll() is None and time.time() - t0 < timeout:
        time.sleep(0.05)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("backend", ["local", pytest.param("ray", marks=pytest.mark.slow)])  # ray: 48 s
def test_kill_9_at_several_points_then_resume_finishes_every_trial_exactly_once(tmp_path, backend, request):
    if backend == "ray":
        pytest.importorskip("ray")
    store = ResultStore(tmp_path / "runs")
    config = _write_sweep(tmp_path / "s.yaml", store.root, concepts=5, group_size=1)  # 10 one-trial jobs
    ray_tmp = Path("/tmp") / f"vwr{os.getpid()}"  # short: Ray's socket paths live under it
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_TMPDIR": str(ray_tmp)}
    request.addfinalizer(lambda: _kill_processes_mentioning(str(ray_tmp)))  # a killed Ray cluster's orphans
    total = 10
    for finished in (0, 1, 4):  # before any trial, right after the first, mid-way
        before = _state(store)
        _kill_when(_sweep_process(config, backend, env), store, finished)
        after = _state(store)
        assert {k: after[k] for k in before} == before  # nothing finished was redone or rewritten
        assert len(after) < total or finished == 4  # the kill came before the end (the last may race it)
    before = _state(store)
    proc = _sweep_process(config, backend, env)
    output = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, output
    summary = json.loads(output.strip().splitlines()[-1])
    after = _state(store)
    assert len(after) == total and summary["trials"] == total
    # A Ray worker may finish its in-flight job after the driver is killed: that trial is then simply done.
    assert summary["trained"] + summary["already_done"] == total and summary["already_done"] >= len(before)
    assert {k: after[k] for k in before} == before
    leftovers = [p.name for p in store.root.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # the killed writers' temporary dirs were cleaned up


@pytest.mark.slow  # 23 s: the optional Ray backend
def test_ray_backend_gives_the_local_backends_results(tmp_path):
    ray = pytest.importorskip("ray")
    local = load_sweep(_write_sweep(tmp_path / "l.yaml", tmp_path / "local", tasks=["classification", "detection"]))
    remote = load_sweep(_write_sweep(tmp_path / "r.yaml", tmp_path / "ray", tasks=["classification", "detection"]))
    assert run_sweep(local, progress=False)["trained"] == 16
    os.environ.setdefault("RAY_TMPDIR", str(Path("/tmp") / f"vwr{os.getpid()}"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_sweep(remote, backend="ray", progress=False)
    finally:
        ray.shutdown()
    assert summary["trained"] == 16 and summary["failed"] == 0
    a, b = ResultStore(tmp_path / "local"), ResultStore(tmp_path / "ray")
    assert [d.name for d in a.trial_dirs()] == [d.name for d in b.trial_dirs()]
    for da, db in zip(a.trial_dirs(), b.trial_dirs()):
        assert torch.allclose(a.load_vector(da), b.load_vector(db), atol=1e-5)
        for e in da.glob("eval-*.json"):
            ma, mb = json.loads(e.read_text()), json.loads((db / e.name).read_text())
            assert ma == pytest.approx(mb, abs=1e-4)
