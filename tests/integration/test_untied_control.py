"""The δ = 0 control in the classifier: a word that *is* an unrelated anchor's row ties exactly with that anchor's own
name in the 10-way vote; the name leaves the vote instead of argmax settling the tie by the classes' order."""

import torch

from vwlib.metrics import zero_shot_votes
from vwlib.models.text import TextSide
from vwlib.models.tokenizer import single_token_id
from vwlib.runner import build_task
from vwlib.tasks import make_batch
from vwlib.trials import Trial


def test_the_anchor_row_is_scored_without_its_own_name_in_the_vote(tiny_models):
    task = build_task("tiny", "classification", "mini-objects", dict(tiny_models))
    concepts = task.ds.concepts
    text = TextSide(task.loaded)
    # both orders of a pair: the anchor's class before the target's, and after it
    pairs = [(concepts[0], concepts[3]), (concepts[3], concepts[0])]
    trials = [Trial("tiny", "classification", "mini-objects", c, a, 0.5) for c, a in pairs]
    rows = text.embedding.weight.detach()[[single_token_id(task.loaded.tokenizer, a) for _, a in pairs]].float()
    scores = [m["accuracy"] for m in task.evaluate(rows, make_batch(task, trials))]
    names = task.name_features()
    feats = task._val_feats
    for (concept, anchor), score in zip(pairs, scores):
        c, a = concepts.index(concept), concepts.index(anchor)
        classes = names.clone()
        classes[c] = names[a]  # the anchor's row stands in for the target's name: an exact copy of a's name
        left_out = torch.zeros(len(concepts), dtype=torch.bool)
        left_out[a] = True
        expected = (zero_shot_votes(feats, classes, left_out) == c)[task.val_labels == c].float().mean()
        assert abs(score - float(expected)) < 1e-6
        tied = (zero_shot_votes(feats, classes) == c)[task.val_labels == c].float().mean()
        if c > a:  # argmax settles a tie by order: the earlier class, a's name, would take every image
            assert float(tied) == 0.0
    assert max(scores) > 0  # the untied vote gives the anchor word the images it wins against the other names
