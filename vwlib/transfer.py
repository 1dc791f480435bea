"""Transfer functions between models (docs/spec.md §5): T^{y→x} = argmin_T E_w ||x(w) − T y(w)||², fitted on the input token
embeddings of the vocabulary rows both models know (same token ids), and the nearest-word read-out.

Methods: `lstsq` (the paper's: plain least squares, no bias, float64), `ridge`, `procrustes` (an orthogonal map
times one scale, since the two tables' norms differ), and `mlp` (a small non-linear map; the paper names
non-linear transfer as an open question). Every map records its source, target, method and fit quality (R² and mean
cosine on held-out shared words).

Output-space embeddings (ConES, `vwlib.cones`) are mapped the same way, by maps fitted on the vocabulary's text
*outputs* (each shared word put in the task's prompt template, read where the embedding stands in): `fit_all_output`.
Scoring transferred words is `vwlib.runner`'s job; the result store keeps the maps (`ResultStore.map_path`).

Usage:
    tmap = fit_transfer(src_text, dst_text, method="lstsq")     # TransferMap, quality in tmap.quality
    tmap(words)                                                  # [T, D_src] -> [T, D_dst]
    nearest_words(dst_text, tmap(words), k=5)                    # [(word, distance), ...] per row
    maps = fit_all("mini", models, store=store)                 # {(src, dst): TransferMap}, saved in the store
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .data.datasets import load_dataset
from .errors import VWError
from .models import profiles
from .models.text import TextSide
from .models.tokenizer import single_token_id
from .roles import TASKS
from .tasks import TrialBatch, make_task

METHODS = ("lstsq", "ridge", "procrustes", "mlp")


@dataclass
class TransferMap:
    source: str  # e.g. "mini/classification"
    target: str
    method: str
    weight: torch.Tensor  # [D_src, D_dst] float64 (the linear part)
    mlp: torch.nn.Module | None = None  # the non-linear residual of method "mlp"
    quality: dict = field(default_factory=dict)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """[N, D_src] -> [N, D_dst] float32, on x's device (a map loaded from disk lives on the CPU)."""
        y = x.double() @ self.weight.to(x.device)
        if self.mlp is not None:
            y = y + self.mlp.to(x.device)(x.float()).double()
        return y.float()

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"weight": self.weight.contiguous()}
        if self.mlp is not None:
            tensors |= {f"mlp.{k}": v.contiguous() for k, v in self.mlp.state_dict().items()}
        meta = {"source": self.source, "target": self.target, "method": self.method, "quality": json.dumps(self.quality)}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TransferMap":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
        tensors = load_file(str(path))
        mlp = None
        if meta["method"] == "mlp":
            mlp = _mlp(tensors["weight"].shape[0], tensors["weight"].shape[1])
            mlp.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("mlp.")})
        return cls(meta["source"], meta["target"], meta["method"], tensors["weight"], mlp, json.loads(meta["quality"]))


def shared_ids(src_text, dst_text) -> torch.Tensor:
    """Token ids both models know (their shared vocabulary rows), sorted; specials are never among them."""
    a, b = set(src_text.known_ids().tolist()), set(dst_text.known_ids().tolist())
    return torch.tensor(sorted(a & b), dtype=torch.long)


def _mlp(d_in: int, d_out: int, hidden: int = 256) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(d_in, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, d_out))


def fit_linear(Y: torch.Tensor, X: torch.Tensor, method: str = "lstsq", ridge: float = 1e-2) -> torch.Tensor:
    """W [D_y, D_x] minimising ||X − Y W||² (rows are words), in float64."""
    Y, X = Y.double(), X.double()
    if method == "lstsq":
        return torch.linalg.lstsq(Y, X).solution
    if method == "ridge":
        gram = Y.T @ Y
        return torch.linalg.solve(gram + ridge * gram.trace() / len(gram) * torch.eye(len(gram), dtype=gram.dtype),
                                  Y.T @ X)
    if method == "procrustes":
        U, S, Vh = torch.linalg.svd(Y.T @ X, full_matrices=False)
        scale = S.sum() / (Y ** 2).sum()
        return scale * (U @ Vh)
    raise VWError(f"unknown transfer method {method!r}; choose one of {', '.join(METHODS)}")


def fit_transfer(src_text, dst_text, method: str = "lstsq", holdout: float = 0.1, seed: int = 0,
                 source: str = "", target: str = "", mlp_steps: int = 500) -> TransferMap:
    """Fit the map from `src_text`'s token table to `dst_text`'s on their shared rows; report held-out quality."""
    if method not in METHODS:
        raise VWError(f"unknown transfer method {method!r}; choose one of {', '.join(METHODS)}")
    ids = shared_ids(src_text, dst_text)
    Y = src_text.embedding.weight.detach()[ids].double().cpu()
    X = dst_text.embedding.weight.detach()[ids].double().cpu()
    return fit_rows(Y, X, method, holdout, seed, source, target, mlp_steps)


def fit_rows(Y: torch.Tensor, X: torch.Tensor, method: str = "lstsq", holdout: float = 0.1, seed: int = 0,
             source: str = "", target: str = "", mlp_steps: int = 500) -> TransferMap:
    """Fit a map from rows `Y` [N, D_src] to rows `X` [N, D_dst] (the same N words in two models); the quality is
    measured on a held-out `holdout` share of the words."""
    if method not in METHODS:
        raise VWError(f"unknown transfer method {method!r}; choose one of {', '.join(METHODS)}")
    if len(Y) < 2 * max(Y.shape[1], X.shape[1]):
        raise VWError(f"only {len(Y)} shared vocabulary rows: too few to fit a {Y.shape[1]}x{X.shape[1]} map")
    Y, X = Y.double().cpu(), X.double().cpu()
    perm = torch.randperm(len(Y), generator=torch.Generator().manual_seed(seed))
    n_test = max(1, int(holdout * len(Y)))
    test, fit = perm[:n_test], perm[n_test:]
    W = fit_linear(Y[fit], X[fit], "lstsq" if method == "mlp" else method)
    mlp = None
    if method == "mlp":  # a residual MLP on top of the least-squares map
        torch.manual_seed(seed)
        mlp = _mlp(Y.shape[1], X.shape[1])
        opt = torch.optim.Adam(mlp.parameters(), lr=1e-3)
        resid = (X[fit] - Y[fit] @ W).float()
        for _ in range(mlp_steps):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(mlp(Y[fit].float()), resid)
            loss.backward()
            opt.step()
        mlp.eval().requires_grad_(False)
    tmap = TransferMap(source, target, method, W, mlp)
    tmap.quality = map_quality(tmap, Y[test], X[test]) | {"n_fit": len(fit), "n_test": len(test)}
    return tmap


def map_quality(tmap: TransferMap, Y: torch.Tensor, X: torch.Tensor) -> dict:
    """R² and mean cosine of the mapped rows `tmap(Y)` against the true rows `X`."""
    pred = tmap(Y.float()).double()
    X = X.double()
    r2 = 1 - float(((X - pred) ** 2).sum() / ((X - X.mean(0)) ** 2).sum())
    cos = float(torch.nn.functional.cosine_similarity(pred, X, dim=1).mean())
    return {"r2": r2, "mean_cosine": cos}


def _nearest_rows(text, vectors: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances [T, k], token ids [T, k], both on the CPU) of the k known rows nearest each row of `vectors`."""
    ids = text.known_ids()
    table = text.embedding.weight.detach()[ids].float()
    top = torch.cdist(vectors.float().to(table.device), table).topk(min(k, len(ids)), largest=False)
    return top.values.cpu(), ids[top.indices.cpu()]  # known ids live on the CPU


def nearest_words(text, vectors: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
    """For each row of `vectors` [T, D]: the k nearest known vocabulary words of `text`'s model, with distances."""
    dist, ids = _nearest_rows(text, vectors, k)
    tok = text.loaded.tokenizer
    return [[(w.replace("</w>", ""), float(d)) for w, d in zip(tok.convert_ids_to_tokens(row_i.tolist()), row_d)]
            for row_d, row_i in zip(dist, ids)]


def nearest_typable_word(text, vector: torch.Tensor, k: int = 256) -> tuple[str, int, float]:
    """(word, token id, distance) of the known row nearest to `vector` [1, D] that a prompt can name: one the
    tokenizer encodes as exactly that id. Not every known row is one: a real table holds word pieces ("ing", which
    a prompt spells as "ing</w>"), and BPE splits some whole-word tokens ("respir</w>" -> re sp ir). Of the k
    nearest rows, the first typable one; a VWError if none is.

    Usage: word, token_id, distance = nearest_typable_word(TextSide(loaded), vector)"""
    dist, ids = _nearest_rows(text, vector.reshape(1, -1), k)
    tok = text.loaded.tokenizer
    for d, i in zip(dist[0].tolist(), ids[0].tolist()):
        word = tok.convert_ids_to_tokens(i).replace("</w>", "")
        if tok(word, add_special_tokens=False)["input_ids"] == [i]:
            return word, i, d
    raise VWError(f"none of the {ids.shape[1]} known rows nearest to this vector is a word a prompt can name")


# --------------------------------------------------------------------------------------------------------------
# Fitting every pair of a profile
# --------------------------------------------------------------------------------------------------------------

def fit_pairs(fit_pair, save=None) -> dict[tuple[str, str], TransferMap]:
    """{(src, dst): fit_pair(src, dst)} over the 6 ordered pairs of task models; `save(src, dst, tmap)` after each."""
    maps = {}
    for src in TASKS:
        for dst in TASKS:
            if src != dst:
                maps[(src, dst)] = fit_pair(src, dst)
                if save is not None:
                    save(src, dst, maps[(src, dst)])
    return maps


def _saver(store, profile: str, method: str, space: str):
    if store is None:
        return None
    return lambda src, dst, tmap: tmap.save(store.map_path(profile, src, dst, method, space))


def fit_all(profile: str, models: dict, method: str = "lstsq", store=None,
            seed: int = 0) -> dict[tuple[str, str], TransferMap]:
    """The 6 token-table maps between the three task models of `profile` ({(source, target): map}); saved in
    `store` (a ResultStore) when given."""
    texts = {task: TextSide(models[task]) for task in TASKS}
    return fit_pairs(lambda src, dst: fit_transfer(texts[src], texts[dst], method, seed=seed,
                                                   source=map_end(profile, src), target=map_end(profile, dst)),
                     _saver(store, profile, method, "input"))


def map_end(profile: str, task: str) -> str:
    """How a token-table map names its source or target: the model and the fingerprint of its weights, so that a
    stored map of an earlier version of a model is known as stale (e.g. "mini/generation@3f2a9c1e")."""
    return f"{profile}/{task}@{profiles.fingerprint(profile, task)}"


def load_maps(store, profile: str, method: str = "lstsq", space: str = "input") -> dict[tuple[str, str], TransferMap]:
    """The maps of `profile` stored in `store` by `fit_all` / `fit_all_output` ({} when none were fitted)."""
    return {pair: TransferMap.load(path) for pair, path in store.map_paths(profile, method, space).items()}


def map_table(store, profile: str, method: str = "lstsq"):
    """One row per stored map of `profile` (input- and output-space): source, target, space and its held-out fit
    quality (R², mean cosine, words fitted and held out)."""
    import pandas as pd

    rows = []
    for space in ("input", "output"):
        for (src, dst), path in store.map_paths(profile, method, space).items():
            rows.append({"source": src, "target": dst, "space": space, "method": method,
                         **TransferMap.load(path).quality})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------------------
# Output-space maps: fitted on the text outputs of the shared vocabulary
# --------------------------------------------------------------------------------------------------------------

PLACEHOLDER = "thing"  # the prompt slot the vocabulary's words are put into when output maps are fitted


@torch.no_grad()
def vocabulary_outputs(task, word_ids: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """[N, E]: the output-space vector of each vocabulary word (token id) in `task`'s prompt template. The word's
    input row is put in the placeholder's slot by the soft-token hook, so any token id works, with or without a
    spelling of its own."""
    slot = single_token_id(task.loaded.tokenizer, PLACEHOLDER)
    table = task.text.embedding.weight.detach()
    out = []
    for i in range(0, len(word_ids), chunk):
        ids = word_ids[i:i + chunk]
        n = len(ids)
        batch = TrialBatch(torch.zeros(n, dtype=torch.long), torch.full((n,), slot), [PLACEHOLDER] * n, [None] * n)
        text = task.text_output(table[ids.to(table.device)].float(), batch)
        if text.dim() == 3:  # conditioning [n, L, D]: the row at the word's slot, as OutputSpace reads it
            text = text[:, int((task.prompt_ids(batch)[0] == slot).int().argmax())]
        out.append(text.float().cpu())
    return torch.cat(out)


def fit_all_output(profile: str, models: dict, dataset: str = "mini-objects", method: str = "lstsq",
                   store=None, max_words: int | None = None, seed: int = 0) -> dict:
    """The 6 output-space maps between the three task models of `profile` ({(src, dst): TransferMap}), fitted on
    the text outputs of up to `max_words` vocabulary words all three models know (a seeded random subset: each word
    costs one prompt through every encoder; default: 16 words per dimension of the widest output, at least 2,048,
    i.e. 2,048 for the mini world and 16,384 for the paper's 1,024-wide SD 2.1 conditioning). Saved in `store`."""
    ds = load_dataset(dataset)  # the task objects give each model's prompt template
    tasks = {t: make_task(t, models[t], ds) for t in TASKS}
    known = [set(tasks[t].text.known_ids().tolist()) for t in TASKS]
    ids = torch.tensor(sorted(set.intersection(*known)), dtype=torch.long)
    if max_words is None:
        max_words = max(2048, 16 * max(_out_width(t) for t in tasks.values()))
    if len(ids) > max_words:
        ids = ids[torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed))[:max_words]].sort().values
    outputs = {t: vocabulary_outputs(tasks[t], ids) for t in TASKS}  # each encoder runs once over the words
    return fit_pairs(lambda src, dst: fit_rows(outputs[src], outputs[dst], method, seed=seed,
                                               source=f"{profile}/{src}/output", target=f"{profile}/{dst}/output"),
                     _saver(store, profile, method, "output"))


def _out_width(task) -> int:
    """E (or D): the width of the task's output-space vectors."""
    with torch.no_grad():
        batch = TrialBatch(torch.zeros(1, dtype=torch.long), torch.full((1,), single_token_id(task.loaded.tokenizer,
                           PLACEHOLDER)), [PLACEHOLDER], [None])
        return int(task.text_output(None, batch).shape[-1])
