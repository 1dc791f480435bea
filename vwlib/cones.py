"""ConES in the same harness: concept embeddings learned where the text encoder's *output* would be (output space),
beside the paper's input-token words, with the same tasks, losses, evaluators and transfer evaluation.

| task           | output-space parameter, per trial                 | the text output it stands for                        |
|----------------|---------------------------------------------------|------------------------------------------------------|
| classification | the class text feature [E]                        | the CLIP text feature of "a photo of a <anchor>"      |
| detection      | the query embedding [E]                           | OWL-v2's projected query "<anchor>"                   |
| generation     | the conditioning row at the anchor's position [D] | the last hidden state of "a photo of <anchor>" [L, D] |

Each parameter starts at the anchor prompt's text output and is trained by the task's own loss (`Task.losses_from`);
no text encoder runs in a training step, and nothing bounds it (ConES has no δ: output-space trials are δ = ∞).
[decided] Generation learns one row, the anchor's position, of the 77-row conditioning (ConES's "token's positions");
the other rows stay the anchor prompt's. So in every task an output-space embedding is one vector, and transfer
between output spaces is one mechanism: a least-squares map fitted on the vocabulary's text outputs (each shared
word in the task's prompt template, read at the same place) in the two models.

Usage:
    space = OutputSpace(task, batch)
    params, info = train_output_words(task, batch, steps=200, lr=5e-3)     # params [T, E], fp32
    task.evaluate_from(space.compose(params), batch)                      # the in-domain evaluators
    maps = vwlib.transfer.fit_all_output("mini", models)                  # output-space transfer maps
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .data.datasets import load_dataset
from .engine import masked_adam
from .errors import VWError
from .metrics import NAME_PROMPT
from .models.profiles import load_model
from .models.vision import clip_image_features, owl_image_side, proposal_overlap
from .stats import bootstrap_ci
from .tasks import PROMPTS, TrialBatch, make_batch, make_task


class OutputSpace:
    """Where a batch's output-space embeddings live in their task's text output."""

    def __init__(self, task, batch: TrialBatch):
        self.task = task
        with torch.no_grad():
            self.base = task.text_output(None, batch).float()  # the anchor prompts' text outputs
        self.position = None
        if self.base.dim() == 3:  # a conditioning sequence [T, L, D]: the anchor's (first) position per row
            ids = task.prompt_ids(batch)
            hit = ids == batch.anchor_ids.to(ids.device)[:, None]
            if not hit.any(1).all():
                raise VWError("an anchor is missing from its prompt; output-space generation needs it in the prompt")
            self.position = hit.int().argmax(1)

    def init(self) -> torch.Tensor:
        """[T, E]: each row's parameter at its anchor prompt's output."""
        if self.position is None:
            return self.base.clone()
        return self.base[torch.arange(len(self.base)), self.position].clone()

    def compose(self, params: torch.Tensor) -> torch.Tensor:
        """The task's text output with `params` [T, E] in place (differentiable): [T, E] or [T, L, D]."""
        if self.position is None:
            return params
        mask = F.one_hot(self.position, self.base.shape[1]).bool()[..., None]  # [T, L, 1]
        return torch.where(mask, params[:, None, :].to(self.base.dtype), self.base)


def train_output_words(task, batch: TrialBatch, steps: int, lr: float, log_every: int = 0
                       ) -> tuple[torch.Tensor, dict]:
    """Train one output-space embedding per row of `batch` with the task's loss; returns params [T, E] and
    {"failed": {row: reason}, "final_loss": [T], "space": OutputSpace}. The engine's Adam loop, no projection (δ = ∞)."""
    space = OutputSpace(task, batch)
    params, info = masked_adam(space.init(), lambda p: task.losses_from(space.compose(p), batch), steps, lr,
                               log_every=log_every)
    return params, info | {"space": space}


# --------------------------------------------------------------------------------------------------------------
# The modality gap (ConES §4): how far a concept's text-side embedding sits from its images' embeddings
# --------------------------------------------------------------------------------------------------------------

@torch.no_grad()
def image_embeddings(task, concept: int) -> torch.Tensor:
    """[n, E] unit image-side embeddings of the concept's held-out images in `task`'s joint space: CLIP image
    features (classification), or the class embedding of the proposal best matching each ground-truth box
    (detection). Generation has no joint space and raises."""
    examples = [e for e in task.ds.val if e.label == concept]
    if task.name == "classification":
        return clip_image_features(task.loaded, [e.image for e in examples]).cpu()
    if task.name == "detection":
        side = owl_image_side(task.loaded, [e.image for e in examples])
        rows = []
        for i, e in enumerate(examples):
            rows.append(side["class_embeds"][i, proposal_overlap(side, i, e.boxes).argmax()].cpu())
        return F.normalize(torch.stack(rows).float(), dim=-1)
    raise VWError(f"the {task.name} model has no joint text-image space: the modality gap is measured for "
                  f"classification and detection")


def modality_gap(task, outputs: torch.Tensor, concepts: list[int]) -> list[float]:
    """Per row: mean L2 distance between the unit text-side embedding `outputs[t]` [E] and the unit image
    embeddings of concept `concepts[t]` (0: on top of them, 2: opposite)."""
    cache: dict[int, torch.Tensor] = {}
    out = []
    for row, c in zip(F.normalize(outputs.float().cpu(), dim=-1), concepts):
        if c not in cache:
            cache[c] = image_embeddings(task, c)
        out.append(float((cache[c] - row).norm(dim=1).mean()))
    return out


def modality_gap_table(profile: str, store, trials: list, models: dict | None = None):
    """The ConES modality-gap table: per (dataset, joint-space task), the mean gap (see `modality_gap`, with its
    95% bootstrap CI over embeddings) of the concepts' name prompts, of the input-space words and of the
    output-space embeddings among `trials` (finished ones; input- and output-space, trained for that task).

    Each embedding is measured on the held-out images of its trial's seed (the images it was trained beside were
    drawn with that seed), and the name prompts on those of every seed among the trials; with one seed, one split."""
    import pandas as pd

    models = models or {}
    rows = []
    for task_name in ("classification", "detection"):
        mine = [t for t in trials if t.task == task_name and store.done(t)]
        for dataset in sorted({t.dataset for t in mine}):
            loaded = models.get(task_name) or load_model(profile, task_name)
            gaps = {"name prompt": []}
            for seed in sorted({t.seed for t in mine if t.dataset == dataset}):
                task = make_task(task_name, loaded, load_dataset(dataset, seed=seed))
                ds = task.ds
                template = NAME_PROMPT if task_name == "classification" else PROMPTS[task_name]
                names = task.text.encode(task.text.ids([template.format(ds.display_name(c)) for c in ds.concepts]))
                gaps["name prompt"] += modality_gap(task, names, list(range(len(ds.concepts))))
                for space in ("input", "output"):
                    group = [t for t in mine if t.dataset == dataset and t.seed == seed and t.space == space]
                    if not group:
                        continue
                    batch = make_batch(task, group)
                    words = store.load_words(group).to(task.text.embedding.weight.device)
                    with torch.no_grad():
                        out = task.text_output(words, batch) if space == "input" else words
                    gaps.setdefault(f"{space}-space", []).extend(modality_gap(task, out, batch.concepts))
            for kind, values in gaps.items():
                mean, lo, hi = bootstrap_ci(values)
                rows.append({"dataset": dataset, "task": task_name, "embedding": kind, "gap": mean, "ci_low": lo,
                             "ci_high": hi, "n": len(values)})
    return pd.DataFrame(rows)
