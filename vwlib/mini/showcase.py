"""Pictures of the mini world: the datasets at a glance, and a 10-second check of the three trained mini models.

Usage:
    fig = dataset_grid()                  # one row per dataset, one column per concept
    fig, result = model_check()           # one generation, one detection, one classification
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

from ..data.datasets import MINI_DATASETS, load_dataset
from ..metrics import text_features
from ..models.profiles import load_model
from ..models.vision import clip_image_features
from .evaluate import PROMPT, detect
from .train_sd import generate


def dataset_grid(per_concept: int = 1):
    """Training images of every mini dataset: rows = datasets (x per_concept), columns = the 10 concepts."""
    rows = len(MINI_DATASETS) * per_concept
    fig, axes = plt.subplots(rows, 10, figsize=(12, 1.45 * rows))
    for r, name in enumerate(MINI_DATASETS):
        ds = load_dataset(name)
        for c, concept in enumerate(ds.concepts):
            for k, example in enumerate(ds.train_of(concept)[:per_concept]):
                ax = axes[r * per_concept + k, c]
                ax.imshow(example.image)
                for x0, y0, x1, y1 in example.boxes:
                    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1, ec="magenta"))
                ax.set_xticks([]), ax.set_yticks([])
                if k == 0:
                    ax.set_title(concept.replace("_", "\n"), fontsize=7)
        axes[r * per_concept, 0].set_ylabel(name, fontsize=8)
    fig.suptitle("the mini world: training images of each dataset (boxes: the concept)", fontsize=10)
    fig.tight_layout()
    return fig


def model_check(concept: str = "red_striped_heart", seed: int = 0):
    """Generate `concept` with mini-sd, detect it with mini-owl, classify both with mini-clip (and the scorer)."""
    ds = load_dataset("mini-instances")
    names = [ds.display_name(c) for c in ds.concepts]
    target = ds.concept_index(concept)
    sd, owl, clip = (load_model("mini", r) for r in ("generation", "detection", "classification"))
    generated = generate(sd, [PROMPT.format(names[target])], seed=seed)[0]
    scene = next(e for e in ds.val if e.label == target)
    scores, boxes = detect(owl, [scene.image], [f"a {names[target]}"])
    best = int(scores[0, :, 0].argmax())
    txt = text_features(clip, [PROMPT.format(n) for n in names])
    img = clip_image_features(clip, [generated, scene.image])
    probs = (100 * img @ txt.t()).softmax(-1)
    result = {"prompt": PROMPT.format(names[target]), "detection_score": float(scores[0, best, 0]),
              "detection_box": boxes[0, best].tolist(), "gt_box": scene.boxes[0],
              "clip_on_generation": names[int(probs[0].argmax())], "clip_on_real": names[int(probs[1].argmax())]}

    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    axes[0].imshow(generated)
    axes[0].set_title(f"mini-sd: {result['prompt']!r}", fontsize=8)
    axes[1].imshow(scene.image)
    x0, y0, x1, y1 = result["detection_box"]
    axes[1].add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=2, ec="magenta"))
    axes[1].set_title(f"mini-owl: 'a {names[target]}' (score {result['detection_score']:.2f})", fontsize=8)
    top = torch.topk(probs[1], 3)
    axes[2].barh([names[i] for i in top.indices.flip(0)], top.values.flip(0).numpy(), color="tab:blue")
    axes[2].set_xlim(0, 1)
    axes[2].set_title("mini-clip: 10-way zero-shot on the real image", fontsize=8)
    for ax in axes[:2]:
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig, result
