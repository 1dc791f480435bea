"""Contrastive training of a two-tower model on captioned world images: the mini CLIPs, and the text towers every
other mini model starts from (the paper's lineage: SD 2.1's text encoder is OpenCLIP's, OWL-v2 starts from CLIP).

Usage:
    curve = train_contrastive(open_clip_tower(model), tokenizer, steps=3000, seed=11, image_size=64)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .common import Resume, freeze_rows, param_groups, to_clip_pixels, tokenize, warmup_cosine
from .data import caption_pool
from .models import CONTEXT, TEXT_WIDTH, open_clip_mini
from .vocab import SYNONYM_SEED, known_token_ids, known_words, shape_synonyms, world_words

# Distractor captions per step: "a photo of a <known word that names nothing in the world>", negatives for every
# image. Without them a word that names nothing beat nine wrong concept names in the 10-way vote (the classifier's
# floor was 0.39-0.50; the paper's DFN: 0.09-0.18), because in so small a world every wrong name is *very* wrong.
DISTRACTORS = 64


def multi_positive_clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, same: torch.Tensor,
                             negatives: torch.Tensor | None = None):
    """Symmetric InfoNCE where every pair with an identical caption counts as a positive. img/txt [B, E] unit;
    negatives [N, E]: extra unit text features that match no image (image -> text direction only)."""
    logits = scale * img @ txt.t()
    target = same / same.sum(1, keepdim=True)
    i2t, i2t_target = logits, target
    if negatives is not None:
        i2t = torch.cat([logits, scale * img @ negatives.t()], 1)
        i2t_target = torch.cat([target, target.new_zeros(len(img), len(negatives))], 1)
    return 0.5 * (-(i2t_target * i2t.log_softmax(1)).sum(1).mean() - (target * logits.log_softmax(0)).sum(0).mean())


# Two phrasings of one known word: the pair the vocabulary term asks the text tower to tell apart from other words.
VOCABULARY_TEMPLATES = ("a photo of a {}", "a {}", "a picture of a {}", "a rendering of a {}", "{}", "a photo of {}")


def vocabulary_ids(tokenizer, n: int, g: torch.Generator, context: int = CONTEXT) -> tuple[torch.Tensor, torch.Tensor]:
    """Two [n, context] id tensors: n distinct known words, each in two different templates (row i of both is the
    same word)."""
    words = sorted(known_words())
    pick = torch.randperm(len(words), generator=g)[:n].tolist()
    first = torch.randint(len(VOCABULARY_TEMPLATES), (n,), generator=g)
    second = (first + torch.randint(1, len(VOCABULARY_TEMPLATES), (n,), generator=g)) % len(VOCABULARY_TEMPLATES)
    texts = [[VOCABULARY_TEMPLATES[int(t)].format(words[i]) for i, t in zip(pick, ts)] for ts in (first, second)]
    return tuple(tokenize(tokenizer, t, context, pad_id=0) for t in texts)


def vocabulary_loss(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between two phrasings of the same n words (a, b: unit [n, E]): every known word's feature
    must tell it apart from the other words'."""
    logits = a @ b.t() / temperature
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def distractor_ids(tokenizer, n: int, g: torch.Generator, context: int = CONTEXT, synonyms_per_shape: int = 0,
                   synonym_seed: int = SYNONYM_SEED) -> torch.Tensor:
    """[n, context] ids of "a photo of a <w>" for n known words w that are not world words (nor synonyms of one)."""
    words = _distractor_words(synonyms_per_shape, synonym_seed)
    pick = torch.randint(len(words), (n,), generator=g).tolist()
    return tokenize(tokenizer, [f"a photo of a {words[i]}" for i in pick], context, pad_id=0)


@functools.lru_cache(maxsize=4)
def _distractor_words(synonyms_per_shape: int = 0, synonym_seed: int = SYNONYM_SEED) -> list[str]:
    meaning = set(world_words())
    if synonyms_per_shape:
        meaning |= {w for words in shape_synonyms(synonyms_per_shape, synonym_seed).values() for w in words}
    return sorted(w for w in known_words() if w not in meaning)


@dataclass
class Tower:
    """A two-tower model as the contrastive loop sees it: unit image and text features and CLIP's temperature.

    Usage: Tower(model, lambda px: model.encode_image(px, normalize=True), ..., model.logit_scale, model.token_embedding)
    """

    module: torch.nn.Module  # every parameter the loop trains
    encode_image: Callable[[torch.Tensor], torch.Tensor]  # CLIP pixels [B, 3, S, S] -> unit [B, E]
    encode_text: Callable[[torch.Tensor], torch.Tensor]  # ids [B, L] -> unit [B, E]
    logit_scale: torch.nn.Parameter  # log of the inverse temperature, clamped at log(100) as CLIP's
    token_embedding: torch.nn.Embedding  # its known rows stay frozen
    context: int = CONTEXT  # caption length in tokens
    image_module: torch.nn.Module | None = None  # the image tower, frozen by train_contrastive(frozen_images=True)


def open_clip_tower(model) -> Tower:
    """An open_clip CLIP (mini-clip, mini-scorer) as a Tower."""
    return Tower(model, lambda px: model.encode_image(px, normalize=True),
                 lambda ids: model.encode_text(ids, normalize=True), model.logit_scale, model.token_embedding,
                 image_module=model.visual)


def train_contrastive(tower: Tower, tokenizer, steps: int, seed: int, image_size: int, batch: int = 128,
                      lr: float = 2e-3, pool_size: int = 30000, log_every: int = 50, device: str = "cpu",
                      distractors: int = DISTRACTORS, desc: str = "contrastive", weight_decay: float = 0.05,
                      logit_scale_range: tuple[float, float] = (1.0, 100.0), vocabulary_weight: float = 0.0,
                      vocabulary_batch: int = 128, vocabulary_temperature: float = 0.1, frozen_images: bool = False,
                      resume: Resume | None = None, **pool_kwargs) -> list:
    """Train `tower` contrastively on captioned world images (multi-positive InfoNCE with `distractors` extra
    caption negatives per step), its known token rows frozen. Batches are drawn on the CPU from the seeded generator,
    so `device` changes the arithmetic's order, not the data. `weight_decay` (AdamW, weight matrices only) and
    `logit_scale_range` (the learned inverse temperature is clamped to it; CLIP's: up to 100; equal ends fix it) are
    recipe levers for the towers' sensitivity. `vocabulary_weight` adds `vocabulary_loss` (every known word told apart
    from the others across phrasings). `frozen_images`: the image tower stays as it is (in eval mode) and only the
    text side trains, against its features of the pool computed once (the tower lab, vwlib.mini.lab). `resume`:
    where the loop saves its state, and goes on from when started again (common.Resume).
    Returns the loss curve [(step, loss)]."""
    model = tower.module.train().to(device)
    freeze_rows(tower.token_embedding, known_token_ids())
    pool = caption_pool(pool_size, image_size, seed=seed * 1000, **pool_kwargs)
    image_features = None
    if frozen_images:
        tower.image_module.eval().requires_grad_(False)
        with torch.no_grad():
            image_features = torch.cat([tower.encode_image(to_clip_pixels(pool.images[k:k + 512]).to(device))
                                        for k in range(0, len(pool.images), 512)])
    ids = tokenize(tokenizer, pool.captions, tower.context, pad_id=0)
    caption_index = {c: i for i, c in enumerate(sorted(set(pool.captions)))}
    cap = torch.tensor([caption_index[c] for c in pool.captions])
    opt = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98), eps=1e-6)
    g = torch.Generator().manual_seed(seed)
    resume = resume or Resume(None)
    start, curve = resume.restore(model, opt, g)
    for step in (bar := tqdm(range(start, steps), desc=desc, mininterval=5, initial=start, total=steps)):
        for group in opt.param_groups:
            group["lr"] = warmup_cosine(step, steps, lr)
        idx = torch.randint(len(cap), (batch,), generator=g)
        text = ids[idx].to(device)
        if image_features is None:
            img = tower.encode_image(to_clip_pixels(pool.images[idx]).to(device))
        else:
            img = image_features[idx.to(device)]
        txt, scale = tower.encode_text(text), tower.logit_scale.exp()
        negatives = None
        if distractors:
            negatives = tower.encode_text(distractor_ids(tokenizer, distractors, g, tower.context,
                                                         pool_kwargs.get("synonyms_per_shape", 0),
                                                         pool_kwargs.get("synonym_seed", SYNONYM_SEED)).to(device))
        same = (cap[idx, None] == cap[None, idx]).float().to(device)
        loss = multi_positive_clip_loss(img, txt, scale, same, negatives)
        if vocabulary_weight:
            a, b = (tower.encode_text(x.to(device)) for x in vocabulary_ids(tokenizer, vocabulary_batch, g, tower.context))
            loss = loss + vocabulary_weight * vocabulary_loss(a, b, vocabulary_temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():  # CLIP's clamp of the temperature
            tower.logit_scale.clamp_(*(math.log(x) for x in logit_scale_range))
        if step % log_every == 0 or step == steps - 1:
            curve.append((step, float(loss.detach())))
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        resume.step(step, model, opt, g, curve, last=step == steps - 1)
    model.eval()
    return curve


class TextTowerPretraining(torch.nn.Module):
    """The generator's text encoder inside a small CLIP of its own, for contrastive pretraining: a conv image tower
    (open_clip's ModifiedResNet, as the mini CLIPs'), a projection of the pooled end-of-text state, a temperature.
    Only the text encoder is kept: the pooled state means the caption because the contrastive loss read it there.

    Usage: curve = train_contrastive(pretraining.tower(), tokenizer, steps, seed, image_size)"""

    def __init__(self, text_encoder, image_size: int, vision_width: int = 32):
        super().__init__()
        self.text = text_encoder
        self.visual = open_clip_mini(image_size, vision_width=vision_width, text_layers=1).model.visual
        self.projection = torch.nn.Linear(text_encoder.config.hidden_size, TEXT_WIDTH, bias=False)
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def tower(self):
        return Tower(self, lambda px: F.normalize(self.visual(px), dim=-1),
                     lambda ids: F.normalize(self.projection(self.text(ids).pooler_output), dim=-1),
                     self.logit_scale, self.text.get_input_embeddings(), image_module=self.visual)
