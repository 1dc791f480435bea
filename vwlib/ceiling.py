"""The encoder's own ceiling (`vw probe --text-only`, #32): words trained with no image and no model downstream,
only to bring a prompt's end-of-text state at the encoder's last layer onto a target (their concept's name's), each
kept within δ of its anchor by the study's own δ-ball and Adam loop (`vwlib.engine`); and where such words sit,
layer by layer (the probes of paper Fig. 7). High last-layer purity here beside low purity of a model's trained
words says the model reading the encoder, not the encoder, keeps them off their names' states; grouping by concept
already at layer 1 says the encoder decides a word's meaning at its input rather than over its depth.

Usage:
    rows = layer_ceiling(TextSide(loaded), "a photo of {}", anchors, concepts, names, delta=0.5, steps=100, lr=5e-3)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .engine import masked_adam, nearest_word_distance, project
from .models.probes import evenly_spaced_layers, knn_purity, pooled_activations, pooled_states
from .models.text import TextSide
from .models.tokenizer import single_token_id


def text_only_words(text: TextSide, ids: torch.Tensor, anchor_ids: torch.Tensor, target: torch.Tensor, delta: float,
                    steps: int, lr: float) -> tuple[torch.Tensor, float]:
    """Words trained with no image and no model downstream (the encoder's own ceiling, `vw probe --text-only`):
    row t, within delta · d_nn of anchor_ids[t]'s row, brings the end-of-text state of its prompt `ids[t]` (the word
    in the anchor's place) after the encoder's last block and final norm onto `target[t]` (cosine). `text`: a TextSide;
    ids [T, L], anchor_ids [T], target [T, D]. Returns (words [T, D] fp32, their mean final cosine).

    Usage: words, cosine = text_only_words(text, ids, anchor_ids, name_states, 0.5, steps=100, lr=5e-3)"""
    table = text.embedding.weight.detach()
    anchors = table[anchor_ids.to(table.device)].float().clone()
    radii = torch.tensor([delta * nearest_word_distance(table, text.known_ids(), int(a)) for a in anchor_ids],
                         device=table.device)  # inf · d_nn = inf: unconstrained
    target = target.to(table.device).float()
    for module in text.loaded.adapter.frozen_modules():
        module.requires_grad_(False)

    def losses(words):  # [T]: minus each word's cosine with its target
        state = pooled_states(text, ids, anchor_ids, words, [text.num_layers])[text.num_layers].float()
        return -torch.nn.functional.cosine_similarity(state, target, dim=-1)

    words, info = masked_adam(anchors, losses, steps, lr, after_step=lambda w: project(w, anchors, radii))
    return words, -float(torch.tensor(info["final_loss"]).mean())


def layer_ceiling(text: TextSide, prompt: str, anchors: list[str], concepts: list[int], names: list[str],
                  delta: float, steps: int, lr: float,
                  score: Callable[[torch.Tensor], dict] | None = None) -> list[dict]:
    """`vw probe --text-only` for any text encoder (the tower lab's too): word t starts at `anchors[t]` and is
    trained (`text_only_words`) toward the last-layer end-of-text state of its concept's name prompt
    (`names[concepts[t]]` in `prompt`); then per layer 5-NN purity by concept and by anchor, and the share nearest
    their own name. [{"layer", "words", "purity_concept", "purity_anchor", "near_name", "cosine"}], each row also
    holding what `score(words [T, D])` returns (e.g. the words' scores in the model that reads the encoder).

    Usage: rows = layer_ceiling(text, "a photo of {}", ["heart", ...], [0, ...], ["star", ...], 0.5, 100, 5e-3)"""
    layers = evenly_spaced_layers(text.num_layers)
    name_acts = pooled_activations(text, text.ids([prompt.format(n) for n in names]), layers=layers)
    anchor_ids = torch.tensor([single_token_id(text.loaded.tokenizer, a) for a in anchors])
    ids = text.ids([prompt.format(a) for a in anchors])
    own_name = torch.tensor(concepts)
    words, cosine = text_only_words(text, ids, anchor_ids, name_acts[text.num_layers][own_name], delta, steps, lr)
    acts = pooled_activations(text, ids, anchor_ids, words, layers)
    anchor_codes = label_codes(anchors)
    scores = score(words) if score else {}
    return [{"layer": k, "words": len(anchors), "purity_concept": knn_purity(x, concepts),
             "purity_anchor": knn_purity(x, anchor_codes),
             "near_name": float((torch.cdist(x, name_acts[k]).argmin(1) == own_name).float().mean()), "cosine": cosine}
            | scores for k, x in acts.items()]


def label_codes(labels: list[str]) -> list[int]:
    """Integer codes of string labels (sorted order), as the purity measures take them."""
    index = {label: i for i, label in enumerate(sorted(set(labels)))}
    return [index[label] for label in labels]
