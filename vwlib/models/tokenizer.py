"""The real CLIP BPE tokenizer, built offline from the vocabulary file open_clip ships.

All models of every profile (SD 2.1, OWL-v2, DFN CLIP, the scorer, and their tiny and mini stand-ins) share this
49,408-id vocabulary, so a token id means the same word in every model; only the embedding widths differ.

Usage:
    from vwlib.models.tokenizer import clip_tokenizer, single_token_id
    tok = clip_tokenizer()                       # transformers CLIPTokenizer, no download
    single_token_id(tok, "strawberry")           # -> 10233; raises if the word is several tokens
"""

from __future__ import annotations

import copy
import functools
import gzip
import os
import re

from ..errors import VWError

VOCAB_SIZE = 49408
BOS_ID = 49406  # <|startoftext|>
EOS_ID = 49407  # <|endoftext|>


def first_eos(ids):
    """[...] the position of the first end-of-text token along the last axis of `ids` [..., L] (a tensor). The one
    rule for it: the pooling reads that position, and padding after it may repeat the id or be anything else."""
    return (ids == EOS_ID).int().argmax(-1)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable-unicode table, which the CLIP vocabulary is written in."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


@functools.lru_cache(maxsize=1)
def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The CLIP vocabulary (token -> id) and BPE merges, exactly as open_clip builds them."""
    import open_clip

    path = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    lines = gzip.open(path).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    units = list(_bytes_to_unicode().values())
    tokens = units + [u + "</w>" for u in units] + ["".join(m) for m in merges]
    # open_clip names the specials <start_of_text>/<end_of_text>; transformers uses <|startoftext|>/<|endoftext|>.
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    assert len(tokens) == VOCAB_SIZE
    return {t: i for i, t in enumerate(tokens)}, merges


def clip_tokenizer(pad_token: str = "<|endoftext|>", model_max_length: int = 77):
    """A transformers `CLIPTokenizer` over the real CLIP vocabulary, built without any download; a fresh copy each
    call, because stock code mutates tokenizers (`load_textual_inversion` adds tokens) and one model's new token
    must not appear in another's.

    pad_token: "<|endoftext|>" as in OpenAI CLIP; SD 2.x and OWL-v2 pad with "!" (id 0).
    """
    return copy.deepcopy(_shared_clip_tokenizer(pad_token, model_max_length))


@functools.lru_cache(maxsize=4)
def _shared_clip_tokenizer(pad_token: str = "<|endoftext|>", model_max_length: int = 77):
    """The one built instance per setting (building one takes seconds); only copies of it are handed out."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), pad_token=pad_token, model_max_length=model_max_length)


def single_token_id(tokenizer, word: str) -> int:
    """The id of `word` if the CLIP BPE encodes it as exactly one token; otherwise a VWError naming the pieces."""
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = tokenizer.convert_ids_to_tokens(ids)
        parts = [p for p in re.split(r"[_\-\s.]+", word) if p]
        singles = [p for p in parts if p != word and len(tokenizer(p, add_special_tokens=False)["input_ids"]) == 1]
        hint = f"; single-token words in it: {', '.join(singles)}" if singles else ""
        raise VWError(
            f"anchor {word!r} is {len(ids)} CLIP tokens {pieces}, not one; choose a word that is a single token "
            f"(check with: vw tokens {word!r}){hint}"
        )
    return int(ids[0])
