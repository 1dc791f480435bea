"""A killed mini training started again goes on from its last save and ends with the weights of an unbroken run."""

import pytest
import torch

import vwlib.mini.common as common
from vwlib.mini.train_owl import train_owl

SMALL = dict(steps=4, batch=2, pool_size=8, pretrain_steps=4, pretrain_pool=16, log_every=1)


def _weights(loaded):
    return {k: v.clone() for k, v in loaded.model.state_dict().items()}


@pytest.mark.parametrize("stage", ["towers", "detection"])
def test_a_killed_owl_training_resumes_to_the_same_weights(stage, tmp_path, monkeypatch):
    monkeypatch.setattr(common, "SAVE_EVERY", 1)
    whole, curve = train_owl(**SMALL)
    # the same run, killed in the middle of `stage` (its third step), then started again with the same arguments
    target = {"towers": "vwlib.mini.contrastive.multi_positive_clip_loss",
              "detection": "vwlib.mini.train_owl.sigmoid_focal_loss"}[stage]
    module, name = target.rsplit(".", 1)
    real, calls = getattr(__import__(module, fromlist=[name]), name), []

    def dies_on_the_third_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, dies_on_the_third_step)
    with pytest.raises(KeyboardInterrupt):
        train_owl(**SMALL, resume_dir=tmp_path)
    monkeypatch.setattr(target, real)
    assert (tmp_path / "towers.pt").is_file()
    resumed, resumed_curve = train_owl(**SMALL, resume_dir=tmp_path)
    a, b = _weights(whole), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed_curve == curve
