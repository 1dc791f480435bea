"""Shared test set-up: never touch the network, keep torch to the machine's 2 cores."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


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
