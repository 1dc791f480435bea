"""Are the generator's words off their names' states because textual inversion fits its eight training images? (#32)

The paper draws 8 training images per concept, and so does the study. Here the grid's generation words of one dataset
at one δ (10 concepts x 10 anchors) are trained with the paper's loss and the study's engine (`vwlib.engine.
train_words`), at `--steps`, on `--images` training images per concept instead, then generated and scored by the
study's evaluator and probed as Fig. 7 probes them (5-NN purity of the end-of-text state, by concept and by anchor,
at layer 1 and at the last layer; and the share nearest their own name's state there). Nothing is stored. If more
images move the words onto their names' states, the eight-image fit is what keeps them off.

Usage: python docs/experiments/inversion_images.py --images 64 [--dataset mini-objects] [--delta 0.5]
           [--steps 1000] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import time

import torch

from vwlib.data.datasets import load_dataset, own_anchor
from vwlib.engine import train_words
from vwlib.models.probes import evenly_spaced_layers, knn_purity, pooled_activations
from vwlib.models.tokenizer import single_token_id
from vwlib.runner import model
from vwlib.study.config import StudyConfig
from vwlib.tasks import PROMPTS, make_batch, make_task, task_kwargs_for


def measure(images: int, dataset: str = "mini-objects", delta=0.5, steps: int = 1000, lr: float = 5e-3,
            profile: str = "mini", concepts: int = 10) -> dict:
    """{"images", "steps", "delta", "words", "accuracy", "layer1_purity_anchor", "last_purity_concept",
    "last_near_name", "seconds"} for the grid's words trained on `images` images per concept."""
    t0 = time.time()
    models = {}
    kwargs = task_kwargs_for(profile, "generation", None) | {"scorer": model(models, profile, "scorer")}
    task = make_task("generation", model(models, profile, "generation"), load_dataset(dataset, n_train=images),
                     **kwargs)
    trials = StudyConfig(profile=profile, datasets=(dataset,), tasks=("generation",), deltas=(delta,),
                         concepts=concepts, anchors="grid", steps=steps).trials()
    words, _ = train_words(task, make_batch(task, trials), [t.delta for t in trials], steps, lr, progress=True)
    accuracy = [float(m["accuracy"]) for m in task.evaluate(words, make_batch(task, trials))]
    text, tok = task.text, task.loaded.tokenizer
    layers = evenly_spaced_layers(text.num_layers)
    first, last = layers[0], layers[-1]
    anchor_ids = torch.tensor([single_token_id(tok, t.anchor) for t in trials])
    acts = pooled_activations(text, text.ids([PROMPTS["generation"].format(t.anchor) for t in trials]), anchor_ids,
                              words, [first, last])
    names = sorted({own_anchor(dataset, t.concept) for t in trials})
    name_acts = pooled_activations(text, text.ids([PROMPTS["generation"].format(n) for n in names]),
                                   layers=[last])[last]
    concept_codes = [names.index(own_anchor(dataset, t.concept)) for t in trials]  # each concept's name's index
    anchor_codes = [sorted({t.anchor for t in trials}).index(t.anchor) for t in trials]
    return {"images": images, "steps": steps, "delta": str(delta), "words": len(trials),
            "accuracy": round(sum(accuracy) / len(accuracy), 4),
            "layer1_purity_anchor": round(knn_purity(acts[first], anchor_codes), 4),
            "last_purity_concept": round(knn_purity(acts[last], concept_codes), 4),
            "last_near_name": round(float((torch.cdist(acts[last], name_acts).argmin(1)
                                           == torch.tensor(concept_codes)).float().mean()), 4),
            "seconds": round(time.time() - t0, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--dataset", default="mini-objects")
    p.add_argument("--delta", default="0.5")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--csv")
    args = p.parse_args()
    row = measure(args.images, args.dataset, args.delta, args.steps)
    print(row)
    if args.csv:
        import pandas as pd

        pd.DataFrame([row]).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
