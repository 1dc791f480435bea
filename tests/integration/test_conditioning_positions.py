"""`GenerationTask.mixed_conditioning`: which positions of the conditioning carry a word (what the UNet reads)."""

import pytest
import torch

from vwlib.runner import build_task, load_models
from vwlib.tasks import make_batch
from vwlib.trials import Trial


@pytest.fixture(scope="module")
def task():
    return build_task("tiny", "generation", "mini-objects", load_models("tiny", roles=("generation",)), scorer=False)


def test_each_choice_takes_exactly_its_positions_from_the_word_prompt(task):
    trials = [Trial("tiny", "generation", "mini-objects", c, a, "inf") for c, a in (("star", "heart"), ("moon", "ring"))]
    batch = make_batch(task, trials)
    g = torch.Generator().manual_seed(0)
    words = torch.randn(len(trials), task.text.embedding.weight.shape[1], generator=g)
    word, anchor = task.text_output(words, batch), task.text_output(None, batch)
    at = int((task.prompt_ids(batch)[0] == batch.anchor_ids[0]).nonzero())
    differs = (word - anchor).abs().amax(-1) > 1e-6  # [T, L]: the word changes its own position and every later one
    assert not differs[:, :at].any() and differs[:, at:].all()
    expected = {"word": [at], "end_of_text": [at + 1], "padding": list(range(at + 2, word.shape[1])),
                "after_word": list(range(at + 1, word.shape[1]))}
    for positions, rows in expected.items():
        mixed = task.mixed_conditioning(words, batch, positions)
        from_word = torch.isclose(mixed, word).all(-1) & differs  # [T, L]
        assert from_word[0].nonzero().flatten().tolist() == rows, positions
        assert torch.equal(from_word[0], from_word[1])
        assert torch.equal(torch.where(from_word[..., None], anchor, mixed), anchor)  # the rest is the anchor's


def test_an_unknown_choice_is_refused(task):
    batch = make_batch(task, [Trial("tiny", "generation", "mini-objects", "star", "heart", "inf")])
    with pytest.raises(ValueError, match="positions must be one of"):
        task.mixed_conditioning(torch.zeros(1, task.text.embedding.weight.shape[1]), batch, "eot")
