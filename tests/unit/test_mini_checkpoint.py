import json

import pytest
import torch

from vwlib.mini.checkpoint import save_compact
from vwlib.mini.models import SEEDS, build_mini
from vwlib.mini.vocab import known_token_ids
from vwlib.models.compact import is_compact, known_ids, materialise
from vwlib.models.loaders import load_from_dir
from vwlib.paths import CHECKPOINTS


def test_compact_checkpoint_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("VWLIB_CACHE", str(tmp_path / "cache"))
    m = build_mini("clip")
    with torch.no_grad():  # a trained special row must survive although it is not a known word
        m.token_embedding().weight[49407] += 1.0
    compact = save_compact(m, tmp_path / "clip", seed=SEEDS["clip"])
    assert is_compact(compact)
    assert torch.equal(known_ids(compact), known_token_ids())
    size = sum(f.stat().st_size for f in compact.rglob("*"))
    assert size < 0.45 * 49408 * 64 * 4  # far smaller than the fp32 table alone
    folder = materialise(compact)
    assert materialise(compact) == folder  # built once, then reused
    loaded = load_from_dir("open_clip", folder)
    a, b = m.token_embedding().weight, loaded.token_embedding().weight
    assert torch.allclose(a, b, atol=2e-3)
    unknown = torch.ones(49408, dtype=torch.bool)
    unknown[known_token_ids()] = False
    unknown[49407] = False
    assert torch.equal(a[unknown], b[unknown])  # regenerated from the seed, bit for bit
    assert torch.allclose(a[49407], b[49407], atol=2e-3)


def test_shipped_mini_checkpoints_fit_the_40_mb_budget():
    from vwlib.paths import CHECKPOINTS

    files = [p for p in (CHECKPOINTS / "mini").rglob("*") if p.is_file()]
    assert {p.parent.name for p in files if p.name == "vwlib_compact.json"} == {"clip", "scorer", "owl", "sd"}
    # Issue #13's target was 30 MB (v2: 30.67 MB; the scorer's attention pool alone is 6.4 MB, and every model stores
    # its 12.6k frozen MiniLM rows); #32 allows 40 MB for a rebuilt world. Mini-sd v5's 12-block encoder brings the
    # four to 31.3 MB: this guards growth beyond #32's budget.
    assert sum(p.stat().st_size for p in files) <= 40_000_000


def test_materialised_mini_sd_is_a_complete_diffusers_folder(tmp_path, monkeypatch):
    """A stock StableDiffusionPipeline loads it with nothing passed in: the tokenizer is written when it is
    materialised (the shipped checkpoint stays small), so load_textual_inversion works on it too."""
    from diffusers import StableDiffusionPipeline

    from vwlib.paths import CHECKPOINTS

    monkeypatch.setenv("VWLIB_CACHE", str(tmp_path / "cache"))
    shipped = CHECKPOINTS / "mini" / "sd"
    assert not (shipped / "tokenizer").exists()
    pipe = StableDiffusionPipeline.from_pretrained(materialise(shipped), safety_checker=None,
                                                   requires_safety_checker=False, local_files_only=True)
    # mini-sd v5 (#32) pads its captions with the end-of-text token, as SD 1.x's tokenizer does (SD 2.1's pads with
    # "!"): its UNet reads the padding's states, so the stock pipeline must pad the same way
    assert pipe.tokenizer.pad_token == "<|endoftext|>" and len(pipe.tokenizer) == 49408
    width = pipe.text_encoder.get_input_embeddings().weight.shape[1]
    pipe.load_textual_inversion({"<w>": torch.zeros(width)}, token="<w>")
    assert pipe.tokenizer.convert_tokens_to_ids("<w>") == 49408


@pytest.mark.slow  # builds, saves and loads a mini-sd (2 s)
def test_a_mini_sd_trained_on_end_of_text_padding_is_read_back_padding_so(tmp_path, monkeypatch):
    """The UNet reads the padding's states, so a mini-sd trained on captions padded with the end-of-text token
    (train_sd(pad_token=...), as mini-sd v5 is) must be prompted padded so after a round trip through its compact
    checkpoint, whose tokenizer is not shipped."""
    from vwlib.mini.models import build_sd
    from vwlib.models.compact import MARKER
    from vwlib.models.text import TextSide
    from vwlib.models.tokenizer import EOS_ID

    monkeypatch.setenv("VWLIB_CACHE", str(tmp_path / "cache"))
    compact = save_compact(build_sd(pad_token="<|endoftext|>"), tmp_path / "sd", seed=SEEDS["sd"])
    assert json.loads((compact / MARKER).read_text())["pad_token"] == "<|endoftext|>"
    text = TextSide(load_from_dir("sd", materialise(compact)))
    ids = text.ids(["a photo of a star"])[0]
    assert text.pad_id == EOS_ID and ids[6] == EOS_ID and ids[7:].eq(EOS_ID).all()
    shipped = TextSide(load_from_dir("sd", materialise(CHECKPOINTS / "mini" / "sd")))  # v5 is trained so
    assert shipped.pad_id == EOS_ID and shipped.ids(["a star"])[0, 3:].eq(EOS_ID).all()
