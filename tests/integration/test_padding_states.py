"""docs/experiments/padding_states.py: what of a word the generator's padding carries, padded with "!" or with the
end-of-text token (docs/data/padding_states.csv)."""

import importlib.util
from pathlib import Path

import pytest
import torch

from vwlib.models.tokenizer import BOS_ID, EOS_ID

SCRIPT = Path(__file__).parents[2] / "docs" / "experiments" / "padding_states.py"


def _module():
    spec = importlib.util.spec_from_file_location("padding_states", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_padded_rewrites_only_what_follows_the_first_end_of_text_token():
    ids = torch.tensor([[BOS_ID, 5, EOS_ID, 0, 0], [BOS_ID, 5, 6, EOS_ID, 0]])
    out = _module().padded(ids, EOS_ID)
    assert out.tolist() == [[BOS_ID, 5, EOS_ID, EOS_ID, EOS_ID], [BOS_ID, 5, 6, EOS_ID, EOS_ID]]
    assert torch.equal(_module().padded(out, 0), ids)


@pytest.mark.slow  # trains 4 tiny generation words and 4 text-only words, then encodes them 4 times
def test_the_end_of_text_state_does_not_depend_on_the_padding(tmp_path):
    """The encoder is causal: each kind's end-of-text purities are the same under both paddings; the padding's are
    computed from the padded prompts."""
    rows = _module().padding_rows(str(tmp_path / "store"), "mini-objects", 0.5, steps=2, profile="tiny", concepts=2)
    assert [(r["kind"], r["padding"]) for r in rows] == [(k, p) for k in ("inversion", "text_only")
                                                         for p in ("!", "<|endoftext|>")]
    for kind in ("inversion", "text_only"):
        bang, eos = (r for r in rows if r["kind"] == kind)
        assert (bang["eos_by_concept"], bang["eos_by_anchor"]) == (eos["eos_by_concept"], eos["eos_by_anchor"])
        assert bang["cos_eos_pad"] != eos["cos_eos_pad"]
        assert all(0 <= r[k] <= 1 for r in (bang, eos) for k in r if k.endswith(("concept", "anchor")))
