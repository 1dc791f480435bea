"""How far can a word inside the δ-ball move a text tower's output? A first-order measure, per model.

For an anchor word a with token row y(a), the pooled text feature f(v) (unit; the task's prompt with v in the
anchor's place: CLIP's text feature, OWL's query embedding, the generator's end-of-text state after the final norm)
and its Jacobian J = ∂f/∂v at v = y(a) [E, D]:

| quantity | what |
|---|---|
| `reach` | 0.5 · d_nn(a) · σ_max(J): how far f can move, to first order, inside the δ = 0.5 ball |
| `gap` | min over the other concept names c of ‖f(y(a)) − f(y(c))‖: how far the nearest other concept sits |
| `reach_over_gap` | reach / gap; the paper's δ curve (chance at 0.1, saturated at 0.5) needs about 2 |
| `toward` | for each other concept c: 0.5 · d_nn(a) · ‖Jᵀ u‖ / ‖f(c) − f(a)‖, u the unit direction from f(a) to f(c) |

Each is the median over the anchors (the 10 shape names, the anchors of mini-objects and mini-scenes) or, for
`toward`, over (anchor, target) pairs. First-order only: it measures the tower, not what training will find.

Usage:
    sensitivity(load_model("mini", "classification"), "classification")
    # {"reach_over_gap": 0.98, "toward": 0.61, "sigma_max": 3.9, "d_nn": 0.27, "gap": 0.62, "anchors": 10}
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data.world import SHAPES
from ..engine import nearest_word_distance
from ..models.text import TextSide
from ..models.tokenizer import first_eos, single_token_id
from ..tasks import PROMPTS

DELTA = 0.5  # the ball whose reach is measured
TARGET = 1.5  # the mini world v3 target on reach_over_gap (#21): a word inside δ = 0.5 can reach another concept


def pooled_feature(text: TextSide, anchor_id: int, prompt: str):
    """f: v [D] -> the unit pooled feature [E] of `prompt` with v in place of the anchor's row."""
    ids = text.ids([prompt])
    eos = int(first_eos(ids[0]))
    anchor = torch.tensor([anchor_id], device=ids.device)

    def f(v: torch.Tensor) -> torch.Tensor:
        out = text.encode(ids, anchor, v[None]).float()
        if out.dim() == 3:  # the generator conditions on every position: read the end-of-text state
            out = out[:, eos]
        return F.normalize(out[0], dim=-1)

    return f


def sensitivity(loaded, task: str, words: tuple = SHAPES) -> dict:
    """The medians of the table above for one loaded model playing `task` (its prompt template)."""
    text = TextSide(loaded)
    table = text.embedding.weight.detach()
    ids = {w: single_token_id(loaded.tokenizer, w) for w in words}
    return sensitivity_of(lambda w: pooled_feature(text, ids[w], PROMPTS[task].format(w)), table,
                          text.known_ids().to(table.device), ids)


def sensitivity_of(feature_of, table: torch.Tensor, known: torch.Tensor, ids: dict[str, int]) -> dict:
    """The medians of the table above for any text tower: `feature_of(word)` is f: v [D] -> unit [E] (the word's
    prompt with v in its row's place), `table` [V, D] its token table, `known` its known ids, `ids` word -> id."""
    words = list(ids)
    with torch.no_grad():
        feats = {w: feature_of(w)(table[ids[w]].float()) for w in words}
    rows, toward = [], []
    for w in words:
        jac = torch.autograd.functional.jacobian(feature_of(w), table[ids[w]].float().clone(), vectorize=True)  # [E, D]
        d_nn = nearest_word_distance(table, known, ids[w])
        others = [o for o in words if o != w]
        dist = torch.stack([(feats[o] - feats[w]).norm() for o in others])
        toward += [float(DELTA * d_nn * (jac.t() @ ((feats[o] - feats[w]) / d)).norm() / d)
                   for o, d in zip(others, dist)]
        sigma = float(torch.linalg.matrix_norm(jac, ord=2))
        rows.append({"sigma_max": sigma, "d_nn": d_nn, "gap": float(dist.min()),
                     "reach_over_gap": DELTA * d_nn * sigma / float(dist.min()),
                     "d_nn_over_norm": d_nn / float(table[ids[w]].float().norm())})
    out = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
    return out | {"toward": float(np.median(toward)), "anchors": len(rows), "target": TARGET}
