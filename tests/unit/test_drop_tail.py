"""mini-sd's tail dropout (`train_sd(tail_dropout=)`): the chosen captions keep their words' own states and take the
empty caption's from their end-of-text token on; the others are untouched."""

import torch

from vwlib.mini.train_sd import drop_tail
from vwlib.models.tokenizer import EOS_ID


def test_chosen_rows_take_the_empty_captions_states_from_their_end_of_text_on():
    ids = torch.tensor([[49406, 7, 8, EOS_ID, 0, 0],   # end-of-text at 3
                        [49406, 7, EOS_ID, 0, 0, 0],   # at 2
                        [49406, 5, 6, 7, EOS_ID, 0]])  # at 4, not chosen
    cond = torch.randn(3, 6, 4)
    empty = torch.randn(1, 6, 4)
    out = drop_tail(cond, ids, empty, torch.tensor([True, True, False]))
    assert torch.equal(out[0, :3], cond[0, :3]) and torch.equal(out[0, 3:], empty[0, 3:])
    assert torch.equal(out[1, :2], cond[1, :2]) and torch.equal(out[1, 2:], empty[0, 2:])
    assert torch.equal(out[2], cond[2])


def test_the_first_end_of_text_token_counts_and_nothing_is_changed_in_place():
    ids = torch.tensor([[49406, EOS_ID, 9, EOS_ID]])  # a second end-of-text token later does not move the cut
    cond, empty = torch.zeros(1, 4, 2), torch.ones(1, 4, 2)
    out = drop_tail(cond, ids, empty, torch.tensor([True]))
    assert out[0, :, 0].tolist() == [0, 1, 1, 1]
    assert cond.abs().sum() == 0  # a new tensor: the encoder's output is not overwritten
