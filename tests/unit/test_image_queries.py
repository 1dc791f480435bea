"""mini-owl's image-conditioned queries (`train_owl(image_queries=)`): each query is the optimum of the paper's
detection loss over the batch's images of its shape, the very vector `owl_loss_optimum_map` scores."""

import torch

from vwlib.mini.train_owl import image_query_loss
from vwlib.tasks import prototypes


class _Head:
    """A stand-in for `Owlv2ForObjectDetection.class_predictor` that records its queries and returns cosines."""

    def __init__(self, class_embeds):
        self.class_embeds, self.queries = class_embeds, None

    def class_predictor(self, feats, queries):
        self.queries = queries
        q = queries / queries.norm(dim=-1, keepdim=True)
        return torch.einsum("bpe,bqe->bpq", self.class_embeds, q) * 10, self.class_embeds


def _batch(seed=0, b=4, p=9, e=8):
    g = torch.Generator().manual_seed(seed)
    embeds = torch.nn.functional.normalize(torch.randn(b, p, e, generator=g), dim=-1)
    shape_of = torch.full((b, p), -1)
    shape_of[0, :3], shape_of[1, 2:4], shape_of[2, 5], shape_of[3, :2] = 2, 2, 7, 7  # shapes 2 and 7, background
    return embeds, shape_of


def test_each_query_is_minus_the_study_prototype_of_its_shape_over_the_images_that_hold_it():
    embeds, shape_of = _batch()
    head = _Head(embeds)
    loss = image_query_loss(head, torch.zeros(4, 9, 3), embeds, shape_of)
    assert loss.ndim == 0 and float(loss) > 0
    flat, pos_all = embeds.flatten(0, 1), shape_of.flatten()
    image = torch.arange(4).repeat_interleave(9)
    for k, shape in enumerate((2, 7)):
        pos = pos_all == shape
        holds = torch.isin(image, image[pos])
        expected = -prototypes(flat, pos[None], (holds & ~pos)[None])[0]  # DetectionTask's, for this shape
        assert torch.allclose(head.queries[0, k], expected, atol=1e-6)
        assert torch.equal(head.queries[0, k], head.queries[3, k])  # the same queries for every image
    assert not head.queries.requires_grad  # fixed queries: the loss shapes the class embeddings, not the query


def test_the_loss_is_lower_when_the_class_embeddings_separate_the_shapes():
    embeds, shape_of = _batch()
    separated = embeds.clone()
    separated[shape_of == 2] = torch.nn.functional.one_hot(torch.tensor(0), 8).float()
    separated[shape_of == 7] = torch.nn.functional.one_hot(torch.tensor(1), 8).float()
    separated[shape_of < 0] = torch.nn.functional.one_hot(torch.tensor(2), 8).float()
    mixed = image_query_loss(_Head(embeds), torch.zeros(4, 9, 3), embeds, shape_of)
    clean = image_query_loss(_Head(separated), torch.zeros(4, 9, 3), separated, shape_of)
    assert float(clean) < float(mixed)
