"""Shared test set-up: never touch the network; share the machine's cores between the parallel test workers
(`make test` runs pytest-xdist, one worker per core), so that no worker's torch threads compete with another's."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# Under xdist each worker gets its share of the cores; the notebook kernels and `vw` processes a test starts read
# OMP_NUM_THREADS. Alone (plain pytest): 2 threads, as on the project's 2-core machines.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, min(2, (os.cpu_count() or 1) // WORKERS))
if WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
torch.set_num_threads(THREADS)


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="module")
def tiny_models():
    """{role: Loaded}: random tiny models of the paper's four classes (generation, detection, classification, scorer),
    built once per test module."""
    from vwlib import build_tiny

    families = {"generation": "sd", "detection": "owl", "classification": "open_clip", "scorer": "hf_clip"}
    return {role: build_tiny(family) for role, family in families.items()}


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache and no $VWLIB_MODELS_DIR: the paper models are missing."""
    import huggingface_hub.constants as hc

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("VWLIB_MODELS_DIR", raising=False)
    return cache
