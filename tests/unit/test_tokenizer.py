import open_clip
import pytest

from vwlib import VWError, clip_tokenizer, single_token_id
from vwlib.models.tokenizer import BOS_ID, EOS_ID, VOCAB_SIZE


@pytest.mark.parametrize("text", ["a photo of a strawberry", "scuba diver", "a grey sloth plushie!", "cat2 123"])
def test_offline_tokenizer_matches_open_clip_ids(text):
    ours = clip_tokenizer()(text)["input_ids"]
    theirs = [i for i in open_clip.get_tokenizer("ViT-B-32")([text])[0].tolist() if i != 0]
    assert ours == theirs
    assert ours[0] == BOS_ID and ours[-1] == EOS_ID


def test_vocabulary_size_and_specials():
    tok = clip_tokenizer()
    assert len(tok) == VOCAB_SIZE
    assert tok.convert_ids_to_tokens([BOS_ID, EOS_ID]) == ["<|startoftext|>", "<|endoftext|>"]


def test_sd_style_padding_uses_exclamation_mark_id_0():
    ids = clip_tokenizer(pad_token="!")("a cat", padding="max_length", max_length=8)["input_ids"]
    assert ids == [BOS_ID, 320, 2368, EOS_ID, 0, 0, 0, 0]


def test_single_token_id():
    tok = clip_tokenizer()
    assert single_token_id(tok, "hat") == 3801
    with pytest.raises(VWError, match=r"'cyan' is 2 CLIP tokens \['cy', 'an</w>'\], not one"):
        single_token_id(tok, "cyan")
