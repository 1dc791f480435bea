"""vwlib: learn one new word for a visual concept inside a model's text encoder, and ask whether it transfers.

Reproduces "Understanding Visual Concepts Across Models" (Trabucco et al., 2024); see README.md and docs/spec.md.
Everything a notebook needs is here, as `vw.<name>`; `import vwlib` itself loads neither matplotlib nor papermill
(the figure functions load on first use).

Usage:
    import vwlib as vw
    vw.model_table("mini")                       # which models play which role, and are they here?
    clf = vw.load_model("tiny", "classification")  # Loaded(family="open_clip", model=..., tokenizer=...)
    scores = vw.run_study(vw.StudyConfig(datasets=("mini-objects",), concepts=3))
    vw.save(vw.delta_curves(scores), "fig6")     # figures/fig6.png and .pdf
"""

import importlib as _importlib
import os as _os

# Library progress bars and hub chatter are noise in notebooks and logs; vwlib prints its own progress.
_os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
_os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
_os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

# name -> the module that defines it, imported on first access (PEP 562)
_API = {
    # models
    "Loaded": "models.loaders", "build_tiny": "models.loaders", "load_from_dir": "models.loaders",
    "save_model": "models.loaders", "PROFILES": "models.profiles", "ROLES": "roles", "get_spec": "models.profiles",
    "load_model": "models.profiles", "model_table": "models.profiles", "parameter_breakdown": "models.profiles",
    "clip_tokenizer": "models.tokenizer", "single_token_id": "models.tokenizer",
    "load_dataset": "data.datasets", "own_anchor": "data.datasets", "VWError": "errors",
    "MissingModelError": "errors",
    # the study
    "StudyConfig": "study.config", "run_study": "study.config", "training_curves": "study.config",
    "anchor_grid": "study.figure_data", "truncation_row": "study.figure_data", "layer_panels_data": "study.figure_data",
    "transfer_gallery": "study.inspector", "WordInspector": "study.inspector", "WordBrowser": "study.browser",
    "fidelity": "study.fidelity", "reading": "study.readings", "ResultStore": "store", "Trial": "trials", "TransferMap": "transfer",
    "map_table": "transfer", "modality_gap_table": "cones", "export_word": "export", "load_word": "export",
    # statistics and the paper's numbers
    "headline": "stats", "summary": "stats", "bootstrap_ci": "stats", "paper_reference": "stats",
    # figures (matplotlib)
    "save": "plots.plotting", "save_table": "plots.plotting", "delta_curves": "plots.figures",
    "unconstrained_bars": "plots.figures", "transfer_matrix": "plots.figures", "image_grid": "plots.figures",
    "layer_panels": "plots.figures", "truncation_figure": "plots.figures", "modality_gap_plot": "plots.figures",
    "fidelity_figure": "plots.figures", "training_curves_figure": "plots.figures",
    "transfer_gallery_figure": "plots.figures",
    "dataset_grid": "mini.showcase", "model_check": "mini.showcase",
}

__all__ = sorted(_API)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _API:
        value = getattr(_importlib.import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'vwlib' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))
