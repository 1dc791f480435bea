"""One adapter class per model family: everything vwlib needs to know about a family lives in its module.

| family      | module          | class            | library objects                                              |
|-------------|-----------------|------------------|--------------------------------------------------------------|
| `sd`        | `sd.py`         | `SDFamily`       | diffusers `StableDiffusionPipeline` (CLIPTextModel, UNet, VAE) |
| `owl`       | `owl.py`        | `OwlFamily`      | transformers `Owlv2ForObjectDetection` + `Owlv2Processor`     |
| `open_clip` | `open_clip.py`  | `OpenClipFamily` | open_clip `CLIP` + its eval transform                         |
| `hf_clip`   | `hf_clip.py`    | `HFClipFamily`   | transformers `CLIPModel` + `CLIPProcessor`                    |

Adding a family is writing one subclass of `Family` (see `base.py` for the methods) and registering it here.

Usage:
    from vwlib.models.families import Loaded, family
    m = family("owl").build_tiny()            # Loaded(family="owl", ...)
    m.adapter.token_embedding                 # the [49408, D] input token table
    m.adapter.encode_text(ids)                # [B, E] pooled, projected queries
"""

from .base import FAMILIES, Family, Loaded, family
from .hf_clip import HFClipFamily
from .open_clip import OpenClipFamily
from .owl import OwlFamily
from .sd import SDFamily

__all__ = ["FAMILIES", "Family", "HFClipFamily", "Loaded", "OpenClipFamily", "OwlFamily", "SDFamily", "family"]
