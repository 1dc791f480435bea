import math

import pytest
import torch

from vwlib import VWError
from vwlib.engine import nearest_word_distance, project
from vwlib.trials import Trial, parse_delta


def test_projection_onto_the_delta_ball():
    anchors = torch.zeros(3, 4)
    v = torch.tensor([[3.0, 4, 0, 0], [0.1, 0, 0, 0], [30, 40, 0, 0]])
    project(v, anchors, torch.tensor([1.0, 1.0, math.inf]))
    assert torch.allclose(v[0], torch.tensor([0.6, 0.8, 0, 0]))  # rescaled onto the sphere
    assert torch.allclose(v[1], torch.tensor([0.1, 0, 0, 0]))  # inside: untouched
    assert torch.allclose(v[2], torch.tensor([30.0, 40, 0, 0]))  # δ = inf: unconstrained


def test_nearest_word_distance_uses_known_rows_only():
    table = torch.tensor([[0.0, 0], [1, 0], [0, 3], [0.1, 0]])
    assert nearest_word_distance(table, torch.tensor([0, 1, 2, 3]), 0) == pytest.approx(0.1)
    assert nearest_word_distance(table, torch.tensor([0, 1, 2]), 0) == pytest.approx(1.0)  # row 3 unknown


@pytest.mark.parametrize("bad", [0, -0.5, "0", "abc"])
def test_delta_must_be_positive(bad):
    with pytest.raises(VWError, match="δ must be"):
        parse_delta(bad)


def test_trial_keys_are_stable_and_distinct():
    a = Trial("mini", "classification", "mini-objects", "star", "heart", 0.5)
    assert a.key() == Trial("mini", "classification", "mini-objects", "star", "heart", "0.5").key()
    assert a.key() != Trial("mini", "classification", "mini-objects", "star", "heart", math.inf).key()
    assert Trial.from_dict(a.to_dict()) == a
    with pytest.raises(VWError, match="unknown task 'segmentation'"):
        Trial("mini", "segmentation", "mini-objects", "star", "star")
