"""Layer probes (docs/spec.md §7): which text-encoder layers does a new word act on?

One indexing convention: layer k = output of block k, then the final layer norm (1-based; k = num_layers is the
encoder's own output). Truncated encoders come from `TextSide.encode(..., layers=k)`; this module reads the
pooling (end-of-text) token at chosen layers, projects it to 2-D, and measures how it clusters.

Usage:
    acts = pooled_activations(text, ids, anchor_ids, words, layers=[1, 2, 3])   # {k: [T, D]}
    knn_purity(acts[3], concept_labels, k=5)                                    # 1.0 = perfectly clustered
    xy = project_2d(acts[1], method="tsne", perplexity=10, seed=0)              # [T, 2]
"""

from __future__ import annotations

import numpy as np
import torch

from .hooks import capture_block_outputs
from .tokenizer import first_eos


def evenly_spaced_layers(num_layers: int, n: int = 4) -> list[int]:
    """n layers from 1 to num_layers, evenly spaced (SD 2.1: 1, 8, 16, 23; 12-layer encoders: 1, 4, 8, 12)."""
    if num_layers <= n:
        return list(range(1, num_layers + 1))
    step = round(num_layers / (n - 1))  # the paper's spacing: multiples of L/3, then the last layer
    return sorted({1, num_layers} | {i * step for i in range(1, n - 1)})


def pooled_states(text, ids: torch.Tensor, anchor_ids=None, vectors=None, layers: list[int] | None = None,
                  ) -> dict[int, torch.Tensor]:
    """{layer: [B, D]} the end-of-text token's state after block `layer` and the final layer norm, on the model's
    device and differentiable in `vectors` (words trained toward a state: vwlib.ceiling)."""
    layers = layers or list(range(1, text.num_layers + 1))
    eos = first_eos(ids)  # own the pooling position, do not trust argmax(ids)
    with capture_block_outputs(text.block_owner, text.block_attr) as outputs:
        text.encode(ids, anchor_ids, vectors)
    states = {}
    for k in layers:
        h = outputs[k - 1]
        if h.shape[0] != ids.shape[0]:  # older open_clip runs blocks sequence-first, [L, B, D]
            h = h.transpose(0, 1)
        states[k] = text.final_norm(h[torch.arange(len(ids)), eos])
    return states


@torch.no_grad()
def pooled_activations(text, ids: torch.Tensor, anchor_ids=None, vectors=None, layers: list[int] | None = None,
                       ) -> dict[int, torch.Tensor]:
    """{layer: [B, D]} the end-of-text token's state after block `layer` and the final layer norm (float32, on the
    CPU: probes compare and project them there, whatever device the model runs on)."""
    return {k: h.detach().float().cpu() for k, h in pooled_states(text, ids, anchor_ids, vectors, layers).items()}


def knn_shares(x: torch.Tensor | np.ndarray, labels, k: int = 5) -> np.ndarray:
    """[N]: the share of each point's k nearest neighbours (Euclidean, itself excluded) that share its label."""
    x = (x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))).double()
    labels = torch.as_tensor(np.asarray(labels))
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    nn = d.topk(min(k, len(x) - 1), largest=False).indices
    return (labels[nn] == labels[:, None]).double().mean(1).numpy()


def knn_purity(x: torch.Tensor | np.ndarray, labels, k: int = 5) -> float:
    """Mean share of each point's k nearest neighbours (Euclidean, itself excluded) that share its label."""
    return float(knn_shares(x, labels, k).mean())


def project_2d(x, method: str = "tsne", perplexity: float = 10.0, seed: int = 0) -> np.ndarray:
    """[N, 2] t-SNE (scikit-learn) or UMAP (umap-learn) projection, with a fixed seed."""
    x = np.asarray(x, dtype=np.float64)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, perplexity=min(perplexity, len(x) - 1), random_state=seed,
                    init="pca").fit_transform(x)
    if method == "umap":
        import umap

        return umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, len(x) - 1)).fit_transform(x)
    raise ValueError(f"unknown projection {method!r}; choose tsne or umap")
