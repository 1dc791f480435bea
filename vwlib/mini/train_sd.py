"""mini-sd: a `StableDiffusionPipeline` (CLIPTextModel + UNet2DConditionModel + AutoencoderKL, v-prediction DDIM),
trained here in three stages, in SD 2.1's lineage: the text encoder contrastively, as the text tower of a CLIP whose
image side is another model's (mini-scorer's, centred and frozen; SD 2.1's is OpenCLIP ViT-H's), by the tower lab's
WORLD_RECIPE, then frozen; the autoencoder on world images; the UNet on its latents, conditioned on the frozen text
encoder.

Like SD 2.1: v-prediction target (`scheduler.get_velocity`), text conditioning from the text encoder's last hidden
state (77 positions, padded with "!"), classifier-free guidance learned by dropping 10% of captions. Small-model
choices: a cosine noise schedule and min-SNR-5 loss weighting (both converge faster at this size).

The autoencoder bounds the generator: the scorer's accuracy on its reconstructions of held-out images (mini-objects
/ instances / scenes) was 0.70 / 0.65 / 0.46 after 800 steps and is 0.92 / 1.00 / 0.79 after 4,000, which took
generation accuracy from 0.62 to 0.84 with the same UNet (trained 6,000 steps instead of 5,000).

Usage:
    loaded, curve = train_sd(steps=6000)
    generation_accuracy(loaded, scorer, heldout("mini-objects"))   # scorer's 10-way vote on generations
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.world import SHAPES
from ..models.loaders import Loaded
from ..models.tokenizer import first_eos
from .common import Resume, param_groups, tokenize, warmup_cosine
from .contrastive import TextTowerPretraining, open_clip_tower
from .data import PREFIXES, caption_pool
from .lab import IMAGE_TOWERS, RECIPES, WORLD_RECIPE, fit_text_tower, seeded_open_clip
from .models import IMAGE_SIZE, SEEDS, TEXT_LAYERS, build_sd, clip_text_model_from_open_clip
from .vocab import known_words, shape_synonyms, world_words

SIZE = IMAGE_SIZE["sd"]
GEN_STEPS = 30  # DDIM steps for the mini world (the paper profile uses 50)
TEXT_STEPS = 3000  # contrastive steps of the text tower (mini-clip's recipe)
TEXT_SEED = 23  # the text tower's own pool and batches (mini-clip: 11, the scorer: 14)
# The UNet's captions in the text encoder's own lexicon (#32): `synonym_share` of the shape mentions use one of the
# shape's synonyms, drawn with TEXT_SEED as the encoder's were (WORLD_RECIPE's levers).
UNET_LEXICON = {k: getattr(RECIPES[WORLD_RECIPE], k) for k in ("synonyms_per_shape", "synonym_share")}
# Mini-sd v4's UNet reads a new word almost only from the end-of-text state and the padding after it (the word's own
# position alone generates at 0.011; docs/results.md), where SD 2.1's textual inversion acts through the word's own
# position. `tail_dropout` (#32, a candidate): that share of the UNet's captions have every state from the end-of-text
# token on replaced by the empty caption's, so that the UNet learns to read the words themselves.
TAIL_DROPOUT = 0.5
# The textual-inversion optimum of a concept's scenes (mini-scenes: 2-4 objects, the concept the largest) is a word
# for *those* scenes when the UNet learned scenes from captions that list every object: such words reach a lower loss
# than the name and generate their concept at 0.30 (docs/results.md). A candidate (#32, the detector's `image_queries`
# lever in the generator's form): half the UNet's images are scenes, each captioned by its largest object alone, as
# the scene datasets label them and as mini-scorer learned them, so that the loss optimum of a concept's scenes is a
# prompt for scenes whose largest object is the concept.
SCENES_BY_LARGEST = {"single_share": 0.5, "largest_only": 1.0}
# Half the mini-objects words that generate their concept do so from an end-of-text state nearer another concept's
# name than their own (`vw probe --working`, near_name 0.51; docs/results.md): the UNet, trained on shape captions
# only, draws concepts from states no caption produces, so no encoder layer need group such words by concept. SD 2.1's
# UNet was trained on captions that cover its encoder's whole lexicon. A candidate (#32): `null_share` of the UNet's
# captions name one known word that means nothing in the mini world (neither a world word nor one of the encoder's
# synonyms), beside a random image: the v-prediction optimum of such a caption is the unconditional one, so the rest
# of the lexicon is taught to draw nothing in particular and a new word is left the names' (and synonyms') route.
NULL_WORDS = 0.2
# The tower lab's layer test (docs/data/tower_lab.csv): the world's recipe in 6 blocks decides a word's meaning at
# its input (text-only δ = 0.5 words grouped by concept already at layer 1), in 12 it composes it over depth, as the
# paper's Fig. 7 shows for SD 2.1 (by anchor 0.75 at layer 1, by concept 0.84 at the last). A candidate (#32): mini-sd
# with a 12-block text encoder trained by the same recipe, its UNet continued against it. Measured: this encoder
# still decides at its input (by concept 0.80 at layer 1; docs/results.md), so depth alone is not the lever.
DEEP_TEXT = 12
# Why deep-text still decided at its input (tower lab, docs/data/tower_lab.csv): the same 12-block recipe composes a
# word's meaning over depth as an open_clip text tower (by anchor at layer 1 0.75 against mini-clip's image tower,
# 0.48 against mini-scorer's) and does not as a CLIPTextModel (0.11): the class, not the image tower. SD 2.1's
# encoder is an OpenCLIP text tower converted into a CLIPTextModel; the candidate (#32) is trained the same way.
# Measured (docs/results.md): its UNet's δ = 0.5 words are grouped by anchor at layer 1 (0.76; v4 0.59, deep-text
# 0.37), not by concept at the last (0.19), and it ties v4 at 32 of 40 generation checks: not shipped.
OPEN_CLIP_LINEAGE = {"text_layers": DEEP_TEXT, "text_class": "open_clip"}
# Every UNet lever above left the generator's δ = 0.5 words grouped by concept at the last layer at 0.19-0.35, where
# the encoder alone allows 0.87 (`vw probe --text-only`): the UNet draws a concept from states no caption produces
# (half the words that work sit nearer another name), and textual inversion finds those routes. A candidate (#32):
# Gaussian noise on the text states the UNet reads during its training (noise-conditioning augmentation): one draw
# per caption, added at every position (a word's move shifts every state after it together; independent draws per
# position the UNet could average out over the padding), of norm `cond_noise` x the mean distance between the shape
# names' end-of-text states. In 64 dimensions such noise lies almost wholly off the few directions in which captions
# differ, so the UNet learns to ignore moves off the captions' manifold while it still tells the names apart, and a
# word is left the names' route. Measured (docs/results.md): the words grouped by concept at the last layer less, not
# more (0.17 on v4's encoder, 0.09 on the open_clip lineage's; v4 0.20): not shipped.
NOISY_STATES = 0.5
# Mini-sd's UNet reads a word mostly from the 71 padding states after the end-of-text token, and with "!" padding those
# carry little of the end-of-text state's meaning (cosine 0.22 between them; the text-only δ = 0.5 words, on their
# names' end-of-text states, group by concept at 0.83 there and at 0.32 in the padding's mean): inversion shapes the
# padding, so nothing holds its words' end-of-text states, which Fig. 7 reads, to their concept. Padded with the
# end-of-text token itself (CLIP's own tokenizer and SD 1.x pad so), the same frozen encoder's padding states follow
# its end-of-text state (cosine 0.76; the text-only words' padding groups by concept at 0.67). A candidate (#32): the
# shipped encoder, the UNet continued on captions padded so (docs/experiments: `padding_states.py`). Measured
# (docs/results.md): the δ = 0.5 words group by concept at the last layer at 0.34, and 0.45 on the open_clip lineage's
# encoder (v4 0.20), and by anchor at layer 1 at 0.39 and 0.41 (v4 0.59); 32 and 33 of 40 checks: not shipped.
EOS_PADDING = "<|endoftext|>"
# Both halves of Fig. 7 at once need an encoder in which a word on its name's route stays in its anchor's group at
# layer 1. The tower lab's 12-block open_clip towers keep it so fitted to mini-clip's image tower (by anchor 0.75 at
# layer 1, by concept 0.84 at the last) more than fitted to mini-scorer's (0.48 / 0.79), and the open_clip lineage's
# encoder fitted to mini-scorer's, padded with its end-of-text token, let layer 1 go (0.41). A candidate (#32): that
# lineage and padding, the encoder fitted to mini-clip's image tower. Its risk is finding (ii): the classifier's text
# tower is fitted to the same image tower (each keeps its own seed, pool and lexicon), so words may transfer.
# Measured (docs/results.md): (ii) holds both ways (classifier words mapped in generate at 0.006-0.011); by anchor 0.78
# at layer 1 and a gain by concept of 0.33 (both bars met), the working words 0.60 by concept at the last layer, but
# fewer words work (δ = ∞ 0.79 / 0.53 / 0.42): all words 0.37 at the last layer; 32 of 40 checks. At the paper's
# 1,000 steps its mini-objects words meet both of Fig. 7's bars (0.79 / 0.51), mini-instances' not (0.84 / 0.35).
# Shipped as mini-sd v5 (4,000 steps over v4): the first to show both halves of Fig. 7's trend (docs/decisions.md).
CLIP_IMAGES = {**OPEN_CLIP_LINEAGE, "pad_token": EOS_PADDING, "text_image": "clip"}
GUIDANCE = 7.5  # classifier-free guidance, as the paper profile (measured on mini-sd: 0.84 accuracy vs 0.80 at 4.0)


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1.0  # uint8 -> [-1, 1], the VAE's range


def train_vae(vae, images: torch.Tensor, steps: int, batch: int = 32, lr: float = 2e-3, device: str = "cpu") -> list:
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(SEEDS["sd"])
    curve = []
    for step in (bar := tqdm(range(steps), desc="mini-sd vae", mininterval=5)):
        for group in opt.param_groups:
            group["lr"] = warmup_cosine(step, steps, lr)
        x = _to_unit(images[torch.randint(len(images), (batch,), generator=g)]).to(device)
        posterior = vae.encode(x).latent_dist
        eps = torch.randn(posterior.mean.shape, generator=g).to(device)  # drawn on the CPU: the same on any device
        recon = vae.decode(posterior.mean + posterior.std * eps).sample
        kl = posterior.kl().mean()
        loss = F.l1_loss(recon, x) + F.mse_loss(recon, x) + 1e-6 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            curve.append((step, float(loss)))
            bar.set_postfix(loss=f"{float(loss):.4f}")
    return curve


def train_sd(steps: int, vae_steps: int = 4000, batch: int = 48, lr: float = 1e-3, pool_size: int = 30000,
             log_every: int = 50, single_share: float = 0.85, text_steps: int = TEXT_STEPS, device: str = "cpu",
             resume_dir: Path | None = None, warm_from: Loaded | None = None, keep_text: bool = False,
             synonyms_per_shape: int = 0, synonym_share: float = 0.0, tail_dropout: float = 0.0,
             largest_only: float = 0.3, null_share: float = 0.0, text_layers: int = TEXT_LAYERS,
             text_class: str = "clip_text_model", cond_noise: float = 0.0, pad_token: str = "!",
             text_image: str = "scorer"):
    """Train the text encoder by the tower lab's WORLD_RECIPE (`text_steps`, against mini-scorer's image tower unless
    `text_image` names another, centred and frozen: an image tower of another model, as SD 2.1's text encoder comes from
    OpenCLIP), freeze it, train the autoencoder (`vae_steps`), then the UNet (`steps`). `warm_from`: a mini-sd whose
    autoencoder is kept (it reads no text) and whose UNet the training goes on from, against the new encoder (mini world
    v4 goes on from the shipped v2's). `resume_dir`: where the text tower's and the UNet's loops save their state, and
    go on from when started again. `keep_text`: keep `warm_from`'s text encoder instead (no text-tower training).
    `synonyms_per_shape`, `synonym_share`: the UNet's captions use the lexicon its text encoder was trained on (seed
    TEXT_SEED; UNET_LEXICON), so that the words the encoder lets a small move reach are words the UNet draws.
    `tail_dropout`: the share of captions whose conditioning from the end-of-text token on is the empty caption's
    (`drop_tail`; TAIL_DROPOUT). `single_share`: the share of single-object images in the UNet's pool (the rest are
    2-4-object scenes); `largest_only`: the share of those scenes captioned by their largest object alone, as the scene
    datasets label them (SCENES_BY_LARGEST). `null_share`: the share of captions replaced by a caption of one known word
    the world gives no meaning (`null_word_captions`; NULL_WORDS), beside the batch's image. `text_layers`: the text
    encoder's blocks (a new encoder: not with `keep_text`; DEEP_TEXT). `text_class`: the class the text encoder is
    trained as, "clip_text_model" (itself, inside TextTowerPretraining) or "open_clip" (an open_clip mini text tower,
    then converted into the CLIPTextModel by `clip_text_model_from_open_clip`, as SD 2.1's was from OpenCLIP;
    OPEN_CLIP_LINEAGE). `cond_noise`: Gaussian noise on the states the UNet reads in training, one draw per caption at
    every position, of norm `cond_noise` x the mean distance between the shape names' end-of-text states
    (`name_state_spread`; NOISY_STATES). `pad_token`: what the UNet's captions are padded with, and the saved pipeline's
    tokenizer with them ("!" as SD 2.1; "<|endoftext|>": EOS_PADDING). `text_image`: the shipped image tower a new text
    encoder is fitted to ("scorer", mini-scorer's; "clip", mini-clip's: CLIP_IMAGES).
    Returns (Loaded pipeline, loss curve [(stage, step, loss)])."""
    if text_class not in ("clip_text_model", "open_clip"):
        raise ValueError(f"train_sd(text_class={text_class!r}): choose 'clip_text_model' or 'open_clip'")
    if keep_text and warm_from is None:
        raise ValueError("train_sd(keep_text=True) keeps warm_from's text encoder: pass warm_from=<a mini-sd>")
    if text_image not in IMAGE_TOWERS:
        raise ValueError(f"train_sd(text_image={text_image!r}): choose one of {', '.join(IMAGE_TOWERS)}")
    if keep_text and (text_layers != TEXT_LAYERS or text_class != "clip_text_model" or text_image != "scorer"):
        raise ValueError(f"train_sd(keep_text=True) keeps warm_from's {TEXT_LAYERS}-block encoder, fitted to "
                         "mini-scorer's images: an encoder of another depth, class or image tower is trained afresh "
                         f"(keep_text=False; asked for {text_layers} blocks, {text_class}, {text_image}'s images)")
    loaded = build_sd(text_layers, "quick_gelu" if text_class == "open_clip" else "gelu", pad_token)
    pipe = loaded.model.to(device)
    if keep_text:
        pipe.text_encoder.load_state_dict(warm_from.model.text_encoder.state_dict())
        text_curve = []
    else:
        recipe = replace(RECIPES[WORLD_RECIPE], steps=text_steps, pool_size=pool_size)
        fit = dict(device=device, resume=Resume(resume_dir and resume_dir / "text.pt"), desc="mini-sd text tower",
                   log_every=log_every)
        if text_class == "open_clip":
            tower = seeded_open_clip(text_layers, SEEDS["sd"], text_image).model
            text_curve = fit_text_tower(open_clip_tower(tower), loaded.tokenizer, recipe, TEXT_SEED, text_image, **fit)
            clip_text_model_from_open_clip(tower, pipe.text_encoder)
        else:
            # its own image tower of the named one's shape, replaced by it in fit_text_tower (scorer's: sd's size)
            pretraining = TextTowerPretraining(pipe.text_encoder, IMAGE_SIZE[text_image], IMAGE_TOWERS[text_image][1])
            text_curve = fit_text_tower(pretraining.tower(), loaded.tokenizer, recipe, TEXT_SEED, text_image, **fit)
    pipe.text_encoder.eval().requires_grad_(False)  # frozen from here on, as SD 2.1's
    pool = caption_pool(pool_size, SIZE, seed=SEEDS["sd"] * 1000, scene_share=1 - single_share,
                        largest_only=largest_only, synonyms_per_shape=synonyms_per_shape,
                        synonym_share=synonym_share, synonym_seed=TEXT_SEED)
    if warm_from is None:
        vae_curve = train_vae(pipe.vae, pool.images, vae_steps, device=device)
    else:
        pipe.vae.load_state_dict(warm_from.model.vae.state_dict())
        pipe.unet.load_state_dict(warm_from.model.unet.state_dict())
        vae_curve = []
    pipe.vae.eval().requires_grad_(False)
    with torch.no_grad():  # encode the pool once: the latent mean of every image (no augmentation to redo)
        means = torch.cat([pipe.vae.encode(_to_unit(pool.images[i:i + 512]).to(device)).latent_dist.mean.cpu()
                           for i in range(0, len(pool.images), 512)])
    scale = float(1.0 / means.std())
    pipe.vae.register_to_config(scaling_factor=scale)
    latents = means * scale
    pad_id = loaded.tokenizer.pad_token_id
    ids = tokenize(loaded.tokenizer, pool.captions, 77, pad_id)
    empty = tokenize(loaded.tokenizer, [""], 77, pad_id)[0]
    if null_share:
        null_ids = tokenize(loaded.tokenizer, null_word_captions(), 77, pad_id)
    unet, text_encoder, scheduler = pipe.unet.train(), pipe.text_encoder, pipe.scheduler
    with torch.no_grad():
        empty_cond = text_encoder(empty[None].to(device))[0]  # [1, 77, D]
    # per-coordinate std of the state noise: its norm per position is cond_noise x the names' spread
    noise_std = cond_noise * name_state_spread(loaded, device) / empty_cond.shape[-1] ** 0.5 if cond_noise else 0.0
    opt = torch.optim.AdamW(param_groups(unet, 0.0), lr=lr, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(SEEDS["sd"] + 1)
    alphas = scheduler.alphas_cumprod.to(device)
    snr = alphas / (1 - alphas)
    resume = Resume(resume_dir and resume_dir / "unet.pt")
    start, unet_curve = resume.restore(unet, opt, g)
    curve = [("text", s, v) for s, v in text_curve] + [("vae", s, v) for s, v in vae_curve] + unet_curve
    for step in (bar := tqdm(range(start, steps), desc="mini-sd unet", mininterval=5, initial=start, total=steps)):
        for group in opt.param_groups:
            group["lr"] = warmup_cosine(step, steps, lr, warmup=200)
        idx = torch.randint(len(latents), (batch,), generator=g)
        x0, text = latents[idx], ids[idx].clone()
        text[torch.rand(batch, generator=g) < 0.1] = empty  # caption dropout: the unconditional branch of CFG
        if null_share:  # drawn only then: the shipped recipe's random stream is unchanged
            rows = torch.rand(batch, generator=g) < null_share
            text[rows] = null_ids[torch.randint(len(null_ids), (int(rows.sum()),), generator=g)]
        t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        x0, text, t, noise = x0.to(device), text.to(device), t.to(device), noise.to(device)
        noisy = scheduler.add_noise(x0, noise, t)
        target = scheduler.get_velocity(x0, noise, t)  # v-prediction, as SD 2.1
        with torch.no_grad():
            cond = text_encoder(text)[0]
            if tail_dropout:  # drawn only then: the shipped recipe's random stream is unchanged
                cond = drop_tail(cond, text, empty_cond, torch.rand(batch, generator=g).to(device) < tail_dropout)
            if cond_noise:  # drawn only then: the shipped recipe's random stream is unchanged
                cond = cond + noise_std * torch.randn(batch, 1, cond.shape[-1], generator=g).to(device)
        pred = unet(noisy, t, encoder_hidden_states=cond).sample
        weight = torch.clamp(snr[t], max=5.0) / (snr[t] + 1)  # min-SNR-5 weighting for v-prediction
        loss = (weight * F.mse_loss(pred, target, reduction="none").mean((1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        if step % log_every == 0 or step == steps - 1:
            curve.append(("unet", step, float(loss)))
            bar.set_postfix(loss=f"{float(loss):.4f}")
        resume.step(step, unet, opt, g, [c for c in curve if c[0] == "unet"], last=step == steps - 1)
    unet.eval()
    return loaded, curve


@torch.no_grad()
def name_state_spread(loaded: Loaded, device: str = "cpu") -> float:
    """The mean Euclidean distance between the end-of-text states (the encoder's last hidden state, as the UNet
    reads it) of "a photo of <shape>" over the world's shape names: the scale of the moves that change a caption's
    concept.

    Usage: name_state_spread(load_model("mini", "generation"))   # vwlib.models.profiles.load_model: a float"""
    ids = tokenize(loaded.tokenizer, [f"a photo of {s}" for s in SHAPES], 77, loaded.tokenizer.pad_token_id).to(device)
    states = loaded.model.text_encoder(ids)[0]  # [S, 77, D]
    eot = states[torch.arange(len(ids)), first_eos(ids)]  # [S, D]
    return float(torch.pdist(eot).mean())


def null_word_captions(seed: int = TEXT_SEED) -> list[str]:
    """One caption per known word that means nothing in the mini world, in the pool's caption forms (a prefix of
    PREFIXES drawn per word with `seed`): every known word but the world words and the synonyms of the text
    encoder's own lexicon (UNET_LEXICON, drawn with TEXT_SEED), whose states the encoder was trained to read as a
    shape.

    Usage: captions = null_word_captions()   # 12,241 captions, e.g. "a picture of er", "a photo of to"
    """
    lexicon = shape_synonyms(UNET_LEXICON["synonyms_per_shape"], TEXT_SEED)
    meaningful = set(world_words()) | {w for words in lexicon.values() for w in words}
    words = [w for w in known_words() if w not in meaningful]
    prefixes = torch.randint(len(PREFIXES), (len(words),), generator=torch.Generator().manual_seed(seed))
    return [PREFIXES[int(k)] + w for k, w in zip(prefixes, words)]


def drop_tail(cond: torch.Tensor, ids: torch.Tensor, empty_cond: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """`cond` [B, L, D] with the states of `rows` [B] (bool) from their first end-of-text token in `ids` [B, L] on
    replaced by `empty_cond`'s [1, L, D] at the same positions: what is left of those captions is in their words'
    own states.

    Usage: cond = drop_tail(text_encoder(ids)[0], ids, text_encoder(empty_ids)[0], torch.rand(B) < 0.5)"""
    eos = first_eos(ids)  # [B]
    tail = torch.arange(ids.shape[1], device=ids.device)[None] >= eos[:, None]  # [B, L]
    return torch.where((tail & rows[:, None])[..., None], empty_cond, cond)


@torch.no_grad()
def generate(loaded, prompts: list[str], seed: int = 0, steps: int = GEN_STEPS, guidance: float = GUIDANCE,
             batch: int = 50) -> list:
    """PIL images generated by the pipeline from `prompts` (one each), deterministic given `seed`."""
    pipe = loaded.model
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    out = []
    for i in range(0, len(prompts), batch):
        chunk = prompts[i:i + batch]
        g = torch.Generator().manual_seed(seed + i)
        out += pipe(chunk, num_inference_steps=steps, guidance_scale=guidance, height=size, width=size,
                    generator=g).images
    return out
