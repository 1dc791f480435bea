"""What the generator's UNet reads of a new word: the end-of-text state, or the padding after it? (#32,
docs/results.md "mini-sd padded with its end-of-text token")

Fig. 7 reads a word's end-of-text (pooling) state; mini-sd's UNet attends to all 77 positions of the last hidden
state, 71 of them padding. The encoder is causal, so the padding's states are computed from the word too, but no
training asked them to carry the end-of-text state's meaning. For the grid's words of one dataset at one δ (the
study's inversion words from a store, and the text-only words put on their names' end-of-text states), each with its
prompt padded both ways ("!" as SD 2.1's tokenizer pads, and the end-of-text token as CLIP's own and SD 1.x's do),
one row per (kind, padding):
- cos_eos_pad: the mean cosine between a prompt's end-of-text state and its padding's states (last layer);
- {eos, pad_mean, tail}_by_{concept, anchor}: 5-nearest-neighbour purity of the end-of-text state, of the padding
  states' mean, and of every state from the end-of-text token on (flattened), by concept and by anchor.
The end-of-text state does not depend on the padding (the encoder is causal); the padding's states do.

Usage: python docs/experiments/padding_states.py --store runs/fidelity-gen-1000 --steps 1000 \
           --dataset mini-objects --delta 0.5 [--csv out.csv]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from vwlib.models.probes import knn_purity
from vwlib.models.tokenizer import EOS_ID, first_eos

sys.path.insert(0, str(Path(__file__).parent))
from inversion_vs_name_states import grid_arguments, grid_words  # noqa: E402  (a sibling script)

PADDINGS = {"!": 0, "<|endoftext|>": EOS_ID}


def padded(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """[B, L] `ids` with every position after each row's first end-of-text token set to `pad_id`."""
    after = torch.arange(ids.shape[1], device=ids.device)[None] > first_eos(ids)[:, None]
    return torch.where(after, torch.full_like(ids, pad_id), ids)


def padding_rows(store: str, dataset: str, delta, steps: int = 0, profile: str = "mini", concepts: int = 10,
                 ) -> list[dict]:
    """One dict per (kind in inversion / text_only, padding in PADDINGS); see the module's docstring."""
    grid = grid_words(store, dataset, delta, steps, profile, concepts)
    text, trials, ids = grid["task"].text, grid["trials"], grid["ids"]
    labels = {by: np.unique([getattr(t, by) for t in trials], return_inverse=True)[1] for by in ("concept", "anchor")}
    eos = first_eos(ids)
    positions = list(enumerate(eos.tolist()))  # (row, its end-of-text position)
    rows = []
    for kind in ("inversion", "text_only"):
        for pad_name, pad_id in PADDINGS.items():
            with torch.no_grad():
                h = text.encode(padded(ids, pad_id), grid["anchor_ids"], grid["words"][kind]).float()  # [T, L, D]
            views = {"eos": h[torch.arange(len(h)), eos],
                     "pad_mean": torch.stack([h[i, e + 1:].mean(0) for i, e in positions]),
                     "tail": torch.stack([h[i, e:].flatten() for i, e in positions])}
            cos = torch.stack([F.cosine_similarity(h[i, e + 1:], h[i, e][None]).mean() for i, e in positions])
            rows.append({"dataset": dataset, "delta": str(delta), "steps": steps, "kind": kind, "padding": pad_name,
                         "words": len(trials), "cos_eos_pad": round(float(cos.mean()), 3),
                         **{f"{view}_by_{by}": round(knn_purity(x, labels[by]), 3)
                            for view, x in views.items() for by in ("concept", "anchor")}})
    return rows


def main() -> None:
    args = grid_arguments(__doc__.split("\n\n")[0]).parse_args()
    rows = padding_rows(args.store, args.dataset, args.delta, args.steps)
    df = pd.DataFrame(rows)
    if args.csv:
        df.to_csv(args.csv, index=False)
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
