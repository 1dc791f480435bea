"""The three tasks: what a new word is trained for, and how it is scored (docs/spec.md §2, §6).

Each task binds one model (a `Loaded`) to one dataset, caches its frozen image side once, and computes per-trial
losses and metrics for a batch of trials, each batch row holding its own word:

| task           | prompt                 | loss (per trial)                                               | metrics |
|----------------|------------------------|----------------------------------------------------------------|---------|
| generation     | "a photo of <tok>"     | textual inversion: MSE to the scheduler's target (v for SD 2.1) | accuracy: the scorer's 10-way vote on generations |
| detection      | "<tok>" (bare query)   | signed cosine of query and region class embeddings: −pos, +neg  | mAP@[.5:.95], mAP@0.5 |
| classification | "a photo of a <tok>"   | signed cosine to image features: −target concept, +others       | accuracy, false-positive rate |

[decided] The signed cosines average positives and negatives separately (−mean(pos) + mean(neg)), so that 8
target images are not outweighed by 72 others, nor one object's few proposals by the background's many.

Every task splits at the text encoder's output: `text_output` runs the encoder with the words substituted, and
`losses_from` / `evaluate_from` take it from there. Input-space words use both halves; output-space embeddings
(ConES, vwlib.cones) stand in for the text output and use only the second.

Usage:
    task = make_task("classification", clf, dataset)
    losses = task.losses(V, batch)          # V [T, D] fp32 words, batch: TrialBatch of T trials -> [T]
    metrics = task.evaluate(V, batch)       # list of T dicts
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .data.datasets import ConceptDataset
from .metrics import NAME_PROMPT, detection_maps, image_votes, text_features, zero_shot_votes
from .models.accel import to_device
from .models.text import TextSide
from .models.tokenizer import single_token_id
from .models.vision import clip_image_features, owl_image_side, owl_logits, proposal_overlap, sd_latents
from .trials import Trial

PROMPTS = {"generation": "a photo of {}", "detection": "{}", "classification": "a photo of a {}"}

# Profile defaults: (steps, lr) per task. paper: docs/spec.md §2 (Adam, lr 1e-4, 1000 steps, batch 8); tiny: smoke
# tests; mini: the CPU's budget. At the paper's 1,000 steps the mini unconstrained generation words equal the name
# (mini-objects 0.91, mini-instances 0.96; 0.72 and 0.59 at 100: docs/results.md, "what more steps buy"), but the 900
# generation words of the fidelity grid would then take about 2 hours on 2 cores, past its 100-minute budget.
DEFAULTS = {
    "paper": {"generation": (1000, 1e-4), "detection": (1000, 1e-4), "classification": (1000, 1e-4)},
    "mini": {"generation": (100, 5e-3), "detection": (200, 5e-3), "classification": (200, 5e-3)},
    "tiny": {"generation": (4, 1e-2), "detection": (4, 1e-2), "classification": (4, 1e-2)},
}
DEFAULTS["paper-random"] = DEFAULTS["paper"]  # the paper's architectures with random weights: the paper's budget
# Evaluation settings per profile (generation: DDIM steps and guidance; the paper's are 50 and 7.5).
TASK_KWARGS = {
    "mini": {"generation": {"num_inference_steps": 30, "guidance_scale": 7.5, "batch_per_trial": 2}},
    "tiny": {"generation": {"num_inference_steps": 2}},
}


def task_kwargs_for(profile: str, task: str, overrides: dict | None = None) -> dict:
    """The task's constructor options for `profile`, updated by `overrides` ({task: {option: value}})."""
    return {**TASK_KWARGS.get(profile, {}).get(task, {}), **(overrides or {}).get(task, {})}


@dataclass
class TrialBatch:
    """T trials trained together: row t substitutes its own word for its own anchor."""

    concept: torch.Tensor  # [T] concept indices into the dataset
    anchor_ids: torch.Tensor  # [T] token ids of the anchor words
    anchors: list[str]  # [T] anchor words
    generators: list[torch.Generator]  # [T] each trial's own randomness: batching never changes a trial
    seeds: list[int] | None = None  # [T] each trial's own seed (for its generations), from its key

    def __post_init__(self):
        self.concepts = self.concept.tolist()  # the same [T] concept indices on the host: read without a device sync

    def __len__(self) -> int:
        return len(self.anchors)

    def subset(self, rows: list[int]) -> "TrialBatch":
        return TrialBatch(self.concept[rows], self.anchor_ids[rows], [self.anchors[i] for i in rows],
                          [self.generators[i] for i in rows], [self.seeds[i] for i in rows] if self.seeds else None)


def trial_seed(trial: Trial) -> int:
    """A seed of the trial's own, from its key: its randomness never depends on which trials share its batch."""
    return int(hashlib.sha256(trial.key().encode()).hexdigest()[:8], 16) + trial.seed


def trial_generator(trial: Trial) -> torch.Generator:
    return torch.Generator().manual_seed(trial_seed(trial))


def make_batch(task, trials: list[Trial]) -> TrialBatch:
    """The TrialBatch of `trials` in `task`'s model and dataset (concept indices, anchor ids, own generators); its
    tensors live on the model's device, copied there once rather than at every step."""
    tok, device = task.loaded.tokenizer, task.text.embedding.weight.device
    return TrialBatch(
        concept=torch.tensor([task.ds.concept_index(t.concept) for t in trials], device=device),
        anchor_ids=torch.tensor([single_token_id(tok, t.anchor) for t in trials], device=device),
        anchors=[t.anchor for t in trials],
        generators=[trial_generator(t) for t in trials],
        seeds=[trial_seed(t) for t in trials],
    )


class Task:
    name = ""

    def __init__(self, loaded, dataset: ConceptDataset):
        self.loaded, self.ds, self.text = loaded, dataset, TextSide(loaded)
        self.train_labels = torch.tensor([e.label for e in dataset.train])
        self.val_labels = torch.tensor([e.label for e in dataset.val])
        self._prompt_ids: dict[tuple, torch.Tensor] = {}

    def prompt_ids(self, batch: TrialBatch) -> torch.Tensor:
        """[T, L] ids of the trials' prompts on the model's device, tokenized once per set of anchors (a training
        loop asks at every step); cut after the longest prompt where the task reads only the pooled output."""
        key = tuple(batch.anchors)
        if key not in self._prompt_ids:
            if len(self._prompt_ids) > 64:
                self._prompt_ids.clear()
            self._prompt_ids[key] = self.text.ids([PROMPTS[self.name].format(a) for a in batch.anchors], trim=True)
        return self._prompt_ids[key]

    def text_output(self, vectors: torch.Tensor | None, batch: TrialBatch, layers: int | None = None) -> torch.Tensor:
        """What the text encoder hands the rest of the model, per trial: the prompt with each row's word in place of
        its anchor (vectors None: the plain anchor prompt). [T, E] features / queries, or [T, L, D] conditioning."""
        return self.text.encode(self.prompt_ids(batch), batch.anchor_ids, vectors, layers=layers)

    def losses(self, vectors: torch.Tensor, batch: TrialBatch) -> torch.Tensor:
        """[T] per-trial losses of input-space words `vectors` [T, D]."""
        return self.losses_from(self.text_output(vectors, batch), batch)

    def evaluate(self, vectors: torch.Tensor, batch: TrialBatch) -> list[dict]:
        """T metric dicts of input-space words `vectors` [T, D]."""
        with torch.no_grad():
            return self.evaluate_from(self.text_output(vectors, batch), batch)

    # The rest of the model, from a text output on: shared by input-space words and output-space embeddings (ConES).
    def losses_from(self, output: torch.Tensor, batch: TrialBatch) -> torch.Tensor:
        raise NotImplementedError

    def evaluate_from(self, output: torch.Tensor, batch: TrialBatch) -> list[dict]:
        raise NotImplementedError


def signed_cosine(cos: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """−mean(cos over positives) + mean(cos over the rest), per row. cos, positive: [T, K] -> [T]. The paper's
    classification and detection loss (docs/spec.md §2), as written; the tasks compute it through `prototypes`."""
    pos = positive.to(cos.device, cos.dtype)
    neg = 1 - pos
    return -(cos * pos).sum(1) / pos.sum(1).clamp(min=1) + (cos * neg).sum(1) / neg.sum(1).clamp(min=1)


def prototypes(feats: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor | None = None) -> torch.Tensor:
    """[C, E]: for each row c of `positive` [C, K] (bool), −mean of the positive rows of `feats` [K, E] + mean of
    the `negative` ones (default: all the others). The signed cosine is linear in the cosine, so
    `signed_cosine(q @ feats.T, positive)` equals `q @ prototypes(feats, positive).T` exactly (up to float
    rounding): one dot product per trial and step instead of a cosine with every image or region."""
    feats = feats.float()
    pos = positive.to(feats.device, feats.dtype)
    neg = 1 - pos if negative is None else negative.to(feats.device, feats.dtype)
    return -(pos @ feats) / pos.sum(1, keepdim=True).clamp(min=1) + (neg @ feats) / neg.sum(1, keepdim=True).clamp(min=1)


IDENTICAL = 1e-5  # cosine within this of 1: two text features of the same prompt, computed along two code paths


class ClassificationTask(Task):
    name = "classification"

    def __init__(self, loaded, dataset):
        super().__init__(loaded, dataset)
        self.train_feats = clip_image_features(loaded, [e.image for e in dataset.train])  # [N, E]
        concepts = torch.arange(len(dataset.concepts))
        # [C, E]: positives = the concept's training images, negatives = the other concepts' (signed_cosine)
        self.prototypes = prototypes(self.train_feats, concepts[:, None] == self.train_labels[None])
        self._val_feats = None

    def losses_from(self, output, batch):
        """[T]: signed_cosine(cos(word, each training image), its concept's images) as one dot product."""
        proto = self.prototypes[batch.concept.to(self.prototypes.device)]  # [T, E]
        return (F.normalize(output.float(), dim=-1) * proto).sum(-1)

    def name_features(self) -> torch.Tensor:
        """[C, E] unit text features of the dataset's class names: the texts a word competes with."""
        return text_features(self.loaded, [NAME_PROMPT.format(self.ds.display_name(c)) for c in self.ds.concepts])

    @torch.no_grad()
    def evaluate_from(self, output, batch):
        if self._val_feats is None:
            self._val_feats = clip_image_features(self.loaded, [e.image for e in self.ds.val])
        names = self.name_features()
        words = F.normalize(output.float(), dim=-1)  # [T, E]
        # [T, C] a competing class text identical to the word: its own anchor's name, where the word is that row
        # itself (the δ = 0 control). A word does not compete with itself: argmax would settle the exact tie by the
        # classes' order, so such a name leaves the vote (docs/decisions.md, "the untied δ = 0 control").
        itself = (words @ names.t()) > 1 - IDENTICAL
        out = []
        for t in range(len(batch)):
            c = batch.concepts[t]
            classes = names.clone()  # [C, E]
            classes[c] = words[t]  # the word replaces the target's name among the 10 class texts
            left_out = itself[t].clone()
            left_out[c] = False
            chosen = zero_shot_votes(self._val_feats, classes, left_out) == c
            target = self.val_labels == c
            out.append({"accuracy": float(chosen[target].float().mean()),
                        "false_positive_rate": float(chosen[~target].float().mean())})
        return out


def own_concept_boxes(examples, concept: int) -> list[torch.Tensor]:
    """[K, 4] ground-truth boxes per example for one query of `concept`: only the concept's own objects are ground
    truth; the other examples' detections are false positives (the study's detection evaluator)."""
    return [torch.tensor(e.boxes if e.label == concept else [], dtype=torch.float).reshape(-1, 4) for e in examples]


class DetectionTask(Task):
    name = "detection"
    IOU_POSITIVE = 0.5  # [decided] proposals with IoU >= 0.5 to a box of the concept (else the best one) are positive

    def __init__(self, loaded, dataset, gpu_nms: bool = False):
        super().__init__(loaded, dataset)
        self.gpu_nms = gpu_nms  # NMS of every image and word in one batched call on the device (Levers.gpu_nms)
        side = owl_image_side(loaded, [e.image for e in dataset.train])
        self.train_embeds = side["class_embeds"]  # [N, P, E]
        positive = torch.zeros(self.train_embeds.shape[:2], dtype=torch.bool)
        for i, e in enumerate(dataset.train):
            iou = proposal_overlap(side, i, e.boxes)
            positive[i] = iou >= self.IOU_POSITIVE
            positive[i, iou.argmax()] = True
        self.train_positive = positive.to(self.train_embeds.device)
        # [C, E]: a concept's loss reads its own images only; positives = its proposals over its objects
        own = (torch.arange(len(dataset.concepts))[:, None] == self.train_labels[None])[:, :, None]  # [C, N, 1]
        self.prototypes = prototypes(self.train_embeds.flatten(0, 1), (own & positive[None]).flatten(1),
                                     (own & ~positive[None]).flatten(1))  # over the N·P regions
        self._val_side = None

    def query_features(self, vectors, batch) -> torch.Tensor:
        return F.normalize(self.text_output(vectors, batch).float(), dim=-1)

    def losses_from(self, output, batch):
        """[T]: signed_cosine over the proposals of the trial's concept's training images as one dot product."""
        proto = self.prototypes[batch.concept.to(self.prototypes.device)]  # [T, E]
        return (F.normalize(output.float(), dim=-1) * proto).sum(-1)

    @torch.no_grad()
    def evaluate_from(self, output, batch):
        if self._val_side is None:
            self._val_side = owl_image_side(self.loaded, [e.image for e in self.ds.val])
        scores = owl_logits(self._val_side, F.normalize(output.float(), dim=-1)).sigmoid()  # [M, P, T]
        own = {c: own_concept_boxes(self.ds.val, c) for c in set(batch.concepts)}
        return detection_maps(self._val_side["boxes"], scores, [own[c] for c in batch.concepts], on_device=self.gpu_nms)


class GenerationTask(Task):
    name = "generation"

    def __init__(self, loaded, dataset, scorer=None, images_per_trial: int = 1, batch_per_trial: int = 8,
                 num_inference_steps: int = 50, guidance_scale: float = 7.5):
        super().__init__(loaded, dataset)
        self.scorer = scorer
        self.images_per_trial, self.batch_per_trial = images_per_trial, batch_per_trial
        self.num_inference_steps, self.guidance_scale = num_inference_steps, guidance_scale
        self.latent_mean, self.latent_std = sd_latents(loaded, [e.image for e in dataset.train])  # [N, C, h, w]
        pipe = loaded.model
        self.unet, self.scheduler = pipe.unet, pipe.scheduler
        # [n] indices of each concept's training images (CPU), found once rather than at every step
        self._pools = [torch.nonzero(self.train_labels == c).flatten() for c in range(len(dataset.concepts))]

    def losses_from(self, cond, batch):
        """Textual inversion from conditioning `cond` [T, L, D]: each trial draws `batch_per_trial` of its concept's
        images, timesteps and noise from its own generator; the target is the scheduler's (velocity for v-prediction
        models, else the noise)."""
        k, device = self.batch_per_trial, self.latent_mean.device
        shape = (k, *self.latent_mean.shape[1:])
        picks, eps, t_all, noise = [], [], [], []
        for t, c in enumerate(batch.concepts):
            # drawn on the CPU from the trial's own generator, in this order: the same trial gets the same draws on
            # any device and in any batch
            g = batch.generators[t]
            pool = self._pools[c]
            picks.append(pool[torch.randint(len(pool), (k,), generator=g)])
            eps.append(torch.randn(shape, generator=g))
            t_all.append(torch.randint(0, self.scheduler.config.num_train_timesteps, (k,), generator=g))
            noise.append(torch.randn(shape, generator=g))
        # one copy of each to the device per step, whatever the number of trials
        pick, eps, steps, noise = (to_device(torch.cat(x), device) for x in (picks, eps, t_all, noise))
        x0 = self.latent_mean[pick] + self.latent_std[pick] * eps
        noisy = self.scheduler.add_noise(x0, noise, steps)
        target = (self.scheduler.get_velocity(x0, noise, steps)
                  if self.scheduler.config.prediction_type == "v_prediction" else noise)
        pred = self.unet(noisy, steps, encoder_hidden_states=cond.repeat_interleave(k, 0)).sample
        return F.mse_loss(pred.float(), target, reduction="none").mean((1, 2, 3)).view(len(batch), k).mean(1)

    @torch.no_grad()
    def generate(self, vectors, batch, seed: int = 0, layers: int | None = None, chunk: int = 32) -> list[list]:
        """`images_per_trial` PIL images per trial from its prompt with its word (optionally a truncated encoder)."""
        return self.generate_from(self.text_output(vectors, batch, layers=layers), batch, seed, layers, chunk)

    @torch.no_grad()
    def generate_from(self, cond, batch, seed: int = 0, layers: int | None = None, chunk: int = 32) -> list[list]:
        """`images_per_trial` PIL images per trial from conditioning `cond` [T, L, D]. Trials are generated together
        in chunks; a trial's noise comes from `seed` and its own seed alone, so neither chunking nor the other trials
        of the batch change its images."""
        pipe = self.loaded.model
        uncond = self.text.encode(self.text.ids([""]), layers=layers)
        size = pipe.unet.config.sample_size * pipe.vae_scale_factor
        k = self.images_per_trial
        images = []
        for start in range(0, len(batch), chunk):
            rows = range(start, min(start + chunk, len(batch)))
            own = batch.seeds or list(range(len(batch)))
            gens = [torch.Generator().manual_seed(seed + own[t] * 1000 + j) for t in rows for j in range(k)]
            out = pipe(prompt_embeds=cond[rows.start:rows.stop].repeat_interleave(k, 0),
                       negative_prompt_embeds=uncond.expand(len(rows) * k, -1, -1).contiguous(),
                       num_inference_steps=self.num_inference_steps, guidance_scale=self.guidance_scale,
                       height=size, width=size, generator=gens)
            images += [out.images[i * k:(i + 1) * k] for i in range(len(rows))]
        return images

    POSITIONS = ("word", "end_of_text", "padding", "after_word")

    @torch.no_grad()
    def mixed_conditioning(self, vectors, batch, positions: str) -> torch.Tensor:
        """[T, L, D] the anchor prompt's conditioning with only `positions` taken from the word's prompt: "word"
        (the word's own position), "end_of_text" (the one after it), "padding" (every later one) or "after_word"
        (both); the word ends the prompt (PROMPTS["generation"]), so end-of-text follows it. Which positions the UNet
        reads a word from: generate from it (`evaluate_from`). The encoder is causal, so positions before the word
        are the same in both prompts.

        Usage: task.evaluate_from(task.mixed_conditioning(words, batch, "end_of_text"), batch)"""
        if positions not in self.POSITIONS:
            raise ValueError(f"positions must be one of {self.POSITIONS}, not {positions!r}")
        word, anchor = self.text_output(vectors, batch), self.text_output(None, batch)
        ids = self.prompt_ids(batch)
        at = (ids == batch.anchor_ids.to(ids.device)[:, None]).float().argmax(1)[:, None]  # [T, 1] the word's index
        index = torch.arange(word.shape[1], device=word.device)[None]  # [1, L]
        keep = {"word": index == at, "end_of_text": index == at + 1, "padding": index > at + 1,
                "after_word": index > at}[positions]
        return torch.where(keep[..., None], word, anchor)

    def name_features(self) -> torch.Tensor:
        """[C, E] the scorer's unit text features of the dataset's class names: what it votes among."""
        return text_features(self.scorer, [NAME_PROMPT.format(self.ds.display_name(c)) for c in self.ds.concepts])

    @torch.no_grad()
    def evaluate_from(self, cond, batch):
        if self.scorer is None:
            raise ValueError("generation accuracy needs a scorer model (the profile's 'scorer' role)")
        images = self.generate_from(cond, batch)
        names = self.name_features()
        out = []
        for t, imgs in enumerate(images):
            votes = image_votes(self.scorer, imgs, names)
            out.append({"accuracy": float((votes == batch.concepts[t]).float().mean())})
        return out


def make_task(name: str, loaded, dataset: ConceptDataset, **kwargs) -> Task:
    return {"generation": GenerationTask, "detection": DetectionTask, "classification": ClassificationTask}[name](
        loaded, dataset, **kwargs)
