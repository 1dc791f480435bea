import pytest
import torch

from vwlib import VWError
from vwlib.transfer import TransferMap, fit_linear, map_quality


def test_lstsq_recovers_a_known_linear_map():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(16, 24, generator=g, dtype=torch.float64)
    Y = torch.randn(500, 16, generator=g, dtype=torch.float64)
    assert torch.allclose(fit_linear(Y, Y @ W, "lstsq"), W, atol=1e-8)
    assert torch.allclose(fit_linear(Y, Y @ W, "ridge", ridge=1e-9), W, atol=1e-5)


def test_procrustes_is_a_scaled_orthogonal_map():
    g = torch.Generator().manual_seed(1)
    Q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    Y = torch.randn(400, 16, generator=g, dtype=torch.float64)
    W = fit_linear(Y, 3.0 * Y @ Q, "procrustes")
    assert torch.allclose(W, 3.0 * Q, atol=1e-8)
    unit = W / 3.0
    assert torch.allclose(unit.T @ unit, torch.eye(16, dtype=torch.float64), atol=1e-8)
    wide = fit_linear(Y, torch.randn(400, 24, generator=g, dtype=torch.float64), "procrustes")
    rows = wide / torch.linalg.norm(wide, 2)
    assert torch.allclose(rows @ rows.T, torch.eye(16, dtype=torch.float64), atol=1e-8)  # orthonormal rows


def test_map_quality_and_save_load(tmp_path):
    g = torch.Generator().manual_seed(2)
    W = torch.randn(8, 8, generator=g, dtype=torch.float64)
    Y = torch.randn(200, 8, generator=g, dtype=torch.float64)
    tmap = TransferMap("a", "b", "lstsq", W)
    assert map_quality(tmap, Y, Y @ W)["r2"] == pytest.approx(1.0)
    assert map_quality(tmap, Y, torch.randn(200, 8, generator=g, dtype=torch.float64))["r2"] < 0
    tmap.quality = {"r2": 0.5}
    back = TransferMap.load(tmap.save(tmp_path / "m.safetensors"))
    assert torch.equal(back.weight, W) and back.quality == {"r2": 0.5} and back.source == "a"


def test_unknown_method():
    with pytest.raises(VWError, match="unknown transfer method 'magic'"):
        fit_linear(torch.zeros(3, 2), torch.zeros(3, 2), "magic")


def test_an_imported_word_is_anchored_at_the_nearest_row_a_prompt_can_name(tiny_models):
    from vwlib.models.text import TextSide
    from vwlib.transfer import nearest_typable_word

    text = TextSide(tiny_models["generation"])
    tok, table = text.loaded.tokenizer, text.embedding.weight.detach()
    typable = lambda i: tok(tok.convert_ids_to_tokens(i).replace("</w>", ""),  # noqa: E731
                            add_special_tokens=False)["input_ids"] == [i]
    known = text.known_ids().tolist()
    piece = next(i for i in known if not typable(i))  # e.g. "respir</w>", which BPE spells re sp ir
    word, token_id, distance = nearest_typable_word(text, table[piece][None] + 1e-4)
    assert token_id != piece and typable(token_id) and tok(word, add_special_tokens=False)["input_ids"] == [token_id]
    assert distance == pytest.approx(float((table[token_id] - table[piece]).norm()), abs=1e-3)
    word, token_id, distance = nearest_typable_word(text, table[1565][None])  # a typable row is its own anchor
    assert token_id == 1565 and distance == 0
