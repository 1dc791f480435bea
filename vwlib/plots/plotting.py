"""The one way figures and tables leave a notebook: `save(fig, name)` writes PNG and PDF into the figures folder,
and the numbers the figure draws beside them as CSV; `save_table(df, name)` a table alone.

Usage:
    from vwlib.plots.plotting import save, save_table
    save(fig, "models_mini")          # -> figures/models_mini.png and .pdf
    save_table(df, "cones_modality_gap_mini")   # -> figures/cones_modality_gap_mini.csv
"""

from __future__ import annotations

import os
from pathlib import Path

from ..paths import figures_dir


def save(fig, name: str, out_dir: str | os.PathLike | None = None, dpi: int = 150, numbers=None) -> Path:
    """Write `fig` as `<name>.png` and `<name>.pdf` (written to a temporary name, then renamed: never half a file),
    and the numbers it draws as `<name>.csv`: `numbers` (a DataFrame), else those the vwlib figure function attached
    (`fig.numbers`); `make figures` compares them with the committed ones (vwlib.plots.compare)."""
    numbers = numbers if numbers is not None else getattr(fig, "numbers", None)
    if numbers is not None:
        save_table(numbers, name, out_dir)
    out = Path(out_dir) if out_dir else figures_dir()
    out.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "pdf"):
        tmp = out / f".{name}.tmp.{ext}"
        # no creation date in the PDF: the same figure gives the same file, so re-runs leave git clean
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", metadata={"CreationDate": None} if ext == "pdf" else None)
        os.replace(tmp, out / f"{name}.{ext}")
    return out / f"{name}.png"


def save_table(table, name: str, out_dir: str | os.PathLike | None = None) -> Path:
    """Write a pandas DataFrame as `<name>.csv` beside the figures (atomically, like `save`)."""
    out = Path(out_dir) if out_dir else figures_dir()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{name}.tmp.csv"
    table.to_csv(tmp, index=False, float_format="%.4f")
    os.replace(tmp, out / f"{name}.csv")
    return out / f"{name}.csv"
