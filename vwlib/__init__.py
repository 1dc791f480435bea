"""vwlib: learn one new word for a visual concept inside a model's text encoder, and ask whether it transfers.

Reproduces "Understanding Visual Concepts Across Models" (Trabucco et al., 2024); see README.md and SPEC decisions.

Usage:
    import vwlib as vw
    vw.model_table("mini")                       # which models play which role, and are they here?
    clf = vw.load_model("tiny", "classification")  # Loaded(family="open_clip", model=..., tokenizer=...)
"""

import os as _os

# Library progress bars and hub chatter are noise in notebooks and logs; vwlib prints its own progress.
_os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
_os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
_os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from .datasets import load_dataset  # noqa: E402
from .errors import MissingModelError, VWError  # noqa: E402
from .loaders import Loaded, build_tiny, load_from_dir, save_model  # noqa: E402
from .plotting import save, save_table  # noqa: E402
from .profiles import PROFILES, ROLES, get_spec, load_model, model_table, parameter_breakdown  # noqa: E402
from .tokenizer import clip_tokenizer, single_token_id  # noqa: E402

__all__ = [
    "Loaded", "MissingModelError", "PROFILES", "ROLES", "VWError", "build_tiny", "clip_tokenizer", "get_spec",
    "load_dataset",
    "load_from_dir", "load_model", "model_table", "parameter_breakdown", "save", "save_model", "save_table", "single_token_id",
]
__version__ = "0.1.0"
