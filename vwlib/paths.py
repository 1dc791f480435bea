"""Where vwlib reads and writes, and the environment variables that move it. A leaf: imports nothing of vwlib.

| name                  | default                                   | what                                              |
|-----------------------|-------------------------------------------|---------------------------------------------------|
| `VWLIB_MODELS_DIR`    | unset                                     | a folder of `<org>/<name>` copies of hub models   |
| `VWLIB_CACHE`         | `~/.cache/vwlib`                          | materialised mini checkpoints, MiniLM vectors      |
| `VWLIB_FIGURES_DIR`   | the checkout's `figures/`, else ./figures | where `vwlib.save` writes figures                 |
| `VWLIB_DATA_DIR`      | unset                                     | the paper's datasets (see vwlib.data.datasets)    |
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent  # the checkout (when vwlib is installed editable, as `make install` does)
CHECKPOINTS = PACKAGE_DIR / "checkpoints"
REFERENCE_DIR = PACKAGE_DIR / "reference"  # the paper's plotted numbers, shipped with the package
BENCH_RESULTS = REPO_ROOT / "bench" / "results"  # the engine benchmark's measurements (the GPU bill reads them)
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
BUILD_DIR = REPO_ROOT / "build" / "notebooks"

MODELS_DIR_ENV = "VWLIB_MODELS_DIR"
CACHE_ENV = "VWLIB_CACHE"
FIGURES_ENV = "VWLIB_FIGURES_DIR"
DATA_DIR_ENV = "VWLIB_DATA_DIR"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "vwlib")


def figures_dir() -> Path:
    """$VWLIB_FIGURES_DIR, else the checkout's `figures/` (where the README gallery points), else ./figures."""
    if os.environ.get(FIGURES_ENV):
        return Path(os.environ[FIGURES_ENV])
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / "figures"
    return Path("figures")
