"""vwlib: learn one new word for a visual concept inside a model's text encoder, and ask whether it transfers.

Reproduces "Understanding Visual Concepts Across Models" (Trabucco et al., 2024); see README.md and SPEC decisions.
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
    "Loaded": "loaders", "build_tiny": "loaders", "load_from_dir": "loaders", "save_model": "loaders",
    "PROFILES": "profiles", "ROLES": "profiles", "get_spec": "profiles", "load_model": "profiles",
    "model_table": "profiles", "parameter_breakdown": "profiles",
    "clip_tokenizer": "tokenizer", "single_token_id": "tokenizer",
    "load_dataset": "datasets", "VWError": "errors", "MissingModelError": "errors",
    # the study
    "StudyConfig": "study", "run_study": "study", "anchor_grid": "study", "truncation_row": "study",
    "layer_panels_data": "study", "chance_note": "study", "transfer_gallery": "study", "WordInspector": "study",
    "WordBrowser": "browser", "training_curves": "study", "ResultStore": "store", "Trial": "trials",
    "TransferMap": "transfer", "map_table": "transfer", "modality_gap_table": "cones", "fidelity": "fidelity",
    "export_word": "export", "load_word": "export",
    # statistics and the paper's numbers
    "headline": "stats", "summary": "stats", "bootstrap_ci": "stats", "paper_reference": "stats",
    # figures (matplotlib)
    "save": "plotting", "save_table": "plotting", "delta_curves": "figures", "unconstrained_bars": "figures",
    "transfer_matrix": "figures", "image_grid": "figures", "layer_panels": "figures",
    "modality_gap_plot": "figures", "fidelity_figure": "figures", "training_curves_figure": "figures",
    "transfer_gallery_figure": "figures", "dataset_grid": "mini.showcase",
    "model_check": "mini.showcase",
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
