"""Transfer functions between models (SPEC §5): T^{y→x} = argmin_T E_w ||x(w) − T y(w)||², fitted on the input token
embeddings of the vocabulary rows both models know (same token ids), and the nearest-word read-out.

Methods: `lstsq` (the paper's: plain least squares, no bias, float64), `ridge`, `procrustes` (an orthogonal map
times one scale, since the two tables' norms differ), and `mlp` (a small non-linear map; the paper names
non-linear transfer as an open question). Every map records its source, target, method and fit quality (R² and mean
cosine on held-out shared words).

Usage:
    tmap = fit_transfer(src_text, dst_text, method="lstsq")     # TransferMap, quality in tmap.quality
    tmap(words)                                                  # [T, D_src] -> [T, D_dst]
    nearest_words(dst_text, tmap(words), k=5)                    # [(word, distance), ...] per row
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .errors import VWError

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
        y = x.double() @ self.weight
        if self.mlp is not None:
            y = y + self.mlp(x.float()).double()
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


def nearest_words(text, vectors: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
    """For each row of `vectors` [T, D]: the k nearest known vocabulary words of `text`'s model, with distances."""
    ids = text.known_ids()
    table = text.embedding.weight.detach()[ids].float()
    dist = torch.cdist(vectors.float().to(table.device), table)
    top = dist.topk(k, largest=False)
    tok = text.loaded.tokenizer
    out = []
    for row_d, row_i in zip(top.values, top.indices):
        words = tok.convert_ids_to_tokens(ids[row_i].tolist())
        out.append([(w.replace("</w>", ""), float(d)) for w, d in zip(words, row_d)])
    return out


# --------------------------------------------------------------------------------------------------------------
# Fitting every pair of a profile, and evaluating transferred words with the in-domain evaluators
# --------------------------------------------------------------------------------------------------------------

def fit_all(profile: str, models: dict, method: str = "lstsq", out_dir: str | os.PathLike | None = None,
            seed: int = 0) -> dict[tuple[str, str], TransferMap]:
    """The 6 maps between the three task models of `profile` ({(source, target): map}); saved under out_dir."""
    from .text import TextSide
    from .trials import TASKS

    texts = {task: TextSide(models[task]) for task in TASKS}
    return fit_pairs(lambda src, dst: fit_transfer(texts[src], texts[dst], method, seed=seed, source=f"{profile}/{src}",
                                                   target=f"{profile}/{dst}"),
                     out_dir, f"{profile}-{{src}}-to-{{dst}}-{method}.safetensors")


def fit_pairs(fit_pair, out_dir: str | os.PathLike | None, name: str) -> dict[tuple[str, str], TransferMap]:
    """{(src, dst): fit_pair(src, dst)} over the 6 ordered pairs of task models, each saved as out_dir/name (a
    format string with {src} and {dst}) when out_dir is given."""
    from .trials import TASKS

    maps = {}
    for src in TASKS:
        for dst in TASKS:
            if src != dst:
                maps[(src, dst)] = fit_pair(src, dst)
                if out_dir is not None:
                    maps[(src, dst)].save(Path(out_dir) / name.format(src=src, dst=dst))
    return maps


def evaluate_transfers(store, maps: dict[tuple[str, str], TransferMap], models: dict, task_kwargs: dict | None = None,
                       profile: str | None = None, space: str = "input", trials: list | None = None) -> int:
    """Map every finished word of the store into each other task model and score it there with the same evaluator
    objects as in-domain; writes eval-<target>.json (with the method, the map quality and the nearest word) into
    each trial. Returns the number of evaluations written; existing ones by the same target model are kept
    (idempotent), ones by an earlier version of the target model are redone. `space`: the trials whose words are
    mapped, input-space words with token-table maps (`fit_all`) or output-space embeddings with output maps
    (`vwlib.cones.fit_all_output`). `trials`: only these (default: every trial in the store)."""
    import json as _json
    from collections import defaultdict

    from .datasets import load_dataset
    from .engine import make_batch, task_kwargs_for
    from .tasks import make_task
    from .text import TextSide
    from .trials import Trial

    from .profiles import evaluator_fingerprint

    def current(path, dst_fingerprint) -> bool:  # evaluated by this very target model (not a retrained one)
        return path.is_file() and _json.loads(path.read_text()).get("target_fingerprint") == dst_fingerprint

    groups = defaultdict(list)
    dirs = store.trial_dirs() if trials is None else [store.path(t) for t in trials if store.done(t)]
    for d in dirs:
        config = _json.loads((d / "config.json").read_text())
        if config.get("status") != "ok" or (profile and config["profile"] != profile):
            continue
        trial = Trial.from_dict(config)
        if trial.space != space:
            continue
        for (src, dst), tmap in maps.items():
            done = current(d / f"eval-{dst}.json", evaluator_fingerprint(trial.profile, dst))
            if src == trial.task and not done:
                groups[(trial.dataset, src, dst)].append(trial)
    written = 0
    for (dataset, src, dst), trials in groups.items():
        tmap = maps[(src, dst)]
        kwargs = task_kwargs_for(trials[0].profile, dst, task_kwargs)
        if dst == "generation":
            kwargs.setdefault("scorer", models["scorer"])
        task = make_task(dst, models[dst], load_dataset(dataset), **kwargs)
        batch = make_batch(task, trials)
        words = store.load_words(trials)
        mapped = tmap(words.to(task.text.embedding.weight.device))
        if space == "output":
            from .cones import OutputSpace

            metrics = task.evaluate_from(OutputSpace(task, batch).compose(mapped), batch)
            readouts = [{} for _ in trials]
        else:
            metrics = task.evaluate(mapped, batch)
            readouts = [{"nearest_word": nn[0][0], "nearest_is_anchor": nn[0][0] == t.anchor}
                        for nn, t in zip(nearest_words(TextSide(models[dst]), mapped, k=1), trials)]
        for trial, m, readout in zip(trials, metrics, readouts):
            store.add_evaluation(trial, dst, {**m, "transfer_method": tmap.method, "map_r2": tmap.quality.get("r2"),
                                              **readout, "target_fingerprint": evaluator_fingerprint(trial.profile, dst)})
            written += 1
    return written
