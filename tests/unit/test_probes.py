"""Layer probes: kNN purity, the paper's layer spacing, seeded 2-D projections."""

import torch

from vwlib.models.probes import evenly_spaced_layers, knn_purity, project_2d


def test_knn_purity_on_separable_and_shuffled_clusters():
    g = torch.Generator().manual_seed(3)
    labels = torch.arange(10).repeat_interleave(10)
    x = torch.randn(100, 8, generator=g) * 0.05 + torch.randn(10, 8, generator=g).repeat_interleave(10, 0) * 5
    assert knn_purity(x, labels, k=5) == 1.0
    shuffled = labels[torch.randperm(100, generator=g)]
    assert knn_purity(x, shuffled, k=5) < 0.25  # chance is ~0.09


def test_evenly_spaced_layers_match_the_paper():
    assert evenly_spaced_layers(23) == [1, 8, 16, 23]
    assert evenly_spaced_layers(12) == [1, 4, 8, 12]
    assert evenly_spaced_layers(3) == [1, 2, 3]


def test_projection_is_seeded():
    x = torch.randn(30, 6, generator=torch.Generator().manual_seed(4)).numpy()
    a, b = project_2d(x, "tsne", perplexity=5, seed=0), project_2d(x, "tsne", perplexity=5, seed=0)
    assert a.shape == (30, 2) and (a == b).all()
