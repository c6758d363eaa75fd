"""``vgg_decoder``: a VGG16 embedding of L decoded to ab by a small convolutional decoder (seed 003,
"Enhancing Image Colorization Architectures", slides; the same idea as seed 001's CLVGG encoder; both in
docs/sources.md).

The seed feeds the L channel, replicated to three channels, to an ImageNet VGG16 and decodes its 7x7x512
output (for a 224x224 input) to ab with::

    conv 256, conv 128, up x2, conv 64, up x2, conv 32, up x2, conv 16, up x2, conv 2 (tanh), up x2

(3x3 convolutions, 'same' padding, ReLU; Keras ``UpSampling2D``, i.e. nearest neighbour), trained with the
mean squared error on ab.

Faithful to the seed: the encoder is timm's ``vgg16`` convolutional part (``features``, the 13 conv layers
and 5 max pools; the fully connected layers are not built), the decoder is the one above layer for layer,
the output is a tanh, the loss is MSE on ab.

Chosen where the seed is silent (documented so results can be compared):
- Input normalisation: ``L / 100`` in [0, 1], replicated to 3 channels, then ImageNet mean/std (what the
  torchvision/timm VGG16 weights expect).
- Output scale: ``ab = 110 * tanh(.)`` (``ab_scale``); 110 covers the sRGB gamut's a*, b* (about -108..98),
  the loss is the MSE of ``ab / 110``.
- Pretrained weights: torchvision's ImageNet VGG16 (``vgg16-397923af.pth``, :data:`zoo.VGG16`),
  loaded by the recipe at the start of a fresh run from the torch hub cache (nothing is downloaded; their
  ``features.N`` keys are timm's ``features.N``). With them the encoder is frozen (``freeze_pretrained``:
  the seed "extracted embeddings"); without them it stays randomly initialised and is trained with the
  decoder, and the run records ``vgg16 weights: missing -> encoder randomly initialised``. Whether the
  encoder started from ImageNet is stored in the model (buffer ``encoder_pretrained``) and so in
  checkpoints.
- Sizes that are not multiples of 2^stages are padded (edge replication) and the output cropped back.
- Optimiser: Adam at Keras' default rate 1e-3 (the seed trains with Keras and names no rate); batch 32.

The ``tiny`` preset keeps the family: a timm VGG (vgg16's layer pattern) with its first 3 stages at 1/4
width, and the same decoder pattern with 3 upsamplings. Its encoder cannot take the ImageNet weights.

Preset ``cpu`` (suite color-classic): 4 VGG stages at half width, decoder 128-64-32-16, batch 8 of 64 px crops,
rate 1e-3. Without ImageNet weights here the encoder learns from scratch, and on 290 photographs it learns
nothing the decoder uses (a frozen random encoder scores the same), so what the model learns it learns in
its first hundred steps; a larger batch at a lower rate keeps the loss falling by memorising and scores
worse. This is why the seed's design starts from ImageNet features. The runs: docs/tuning.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import zoo
from zoo import VGG16, Recipe, Stage, load_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class VggDecoderConfig(zoo.TrainConfig):
    RENAMED = {"decoder": "decoder_widths"}  # zoo 0.1 names

    encoder: str = "vgg16"  # a timm VGG: vgg11 / vgg13 / vgg16 / vgg19
    # VGG stages used (each ends in a 2x2 max pool); 5 = the whole convolutional part
    stages: int = zoo.bounded(5, min=1)
    # divide the VGG widths by this (1 = the real VGG, which can load ImageNet weights)
    width_div: int = zoo.bounded(1, min=1)
    # one width per stage (= number of 2x upsamplings)
    decoder_widths: tuple[int, ...] = zoo.bounded((256, 128, 64, 32, 16), min=1)
    upsample: str = "nearest"  # Keras UpSampling2D default
    ab_scale: float = 110.0  # ab = ab_scale * tanh(.)
    freeze_pretrained: bool = True  # freeze the encoder when it starts from ImageNet weights
    # -- training --
    batch_size: int = 32
    patch_size: int = 224
    lr: float = 1e-3
    # share of the steps at the full rate; the rate then falls linearly towards zero (1 = constant)
    lr_decay_from: float = zoo.bounded(1.0, min=0.0, max=1.0)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999


def _default_device() -> torch.device:
    return torch.empty(0).device  # honours `with torch.device(...)` (e.g. meta when counting parameters)


def _init_vgg_(module: nn.Module) -> None:
    # timm's VGG initialisation (He normal, fan_out) for the convolutions.
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_vgg_features(name: str, stages: int, width_div: int = 1) -> nn.Sequential:
    """The first ``stages`` stages (conv layers + max pool) of timm's VGG ``name``, as ``features[:k]``.

    The timm model is made on the meta device, so its classifier (about 120M parameters for vgg16) is
    never allocated; only the kept convolutional layers are materialised (on the current default device)
    and initialised. Layer indices are timm's, which are torchvision's.
    """
    import timm
    from timm.models.vgg import VGG, cfgs

    if name not in cfgs:
        raise ValueError(f"unknown VGG '{name}' (choose from {', '.join(sorted(cfgs))})")
    if not 1 <= stages <= 5:
        raise ValueError(f"stages must be in 1..5, got {stages}")
    if width_div == 1:
        vgg = timm.create_model(name, pretrained=False, num_classes=0, device="meta")
    else:
        layer_cfg = [v if v == "M" else max(1, int(v) // width_div) for v in cfgs[name]]
        vgg = VGG(layer_cfg, num_classes=0, device="meta")
    # feature_ends[i] is the last layer of stage i before its pool; keep that pool too.
    features = vgg.features[: vgg.feature_ends[stages - 1] + 2]
    features = features.to_empty(device=_default_device())
    _init_vgg_(features)
    return features


class VggDecoder(zoo.Colorizer):
    def __init__(self, cfg: VggDecoderConfig):
        super().__init__()
        if len(cfg.decoder_widths) != cfg.stages:
            raise ValueError(f"decoder needs one width per encoder stage ({cfg.stages}), got {cfg.decoder_widths!r}")
        self.cfg = cfg
        self.encoder = build_vgg_features(cfg.encoder, cfg.stages, cfg.width_div)
        enc_ch = [m for m in self.encoder if isinstance(m, nn.Conv2d)][-1].out_channels
        d = cfg.decoder_widths
        layers: list[nn.Module] = [nn.Conv2d(enc_ch, d[0], 3, padding=1), nn.ReLU(inplace=True)]
        for i in range(1, len(d)):
            layers += [nn.Conv2d(d[i - 1], d[i], 3, padding=1), nn.ReLU(inplace=True),
                       nn.Upsample(scale_factor=2, mode=cfg.upsample)]
        layers += [nn.Conv2d(d[-1], 2, 3, padding=1), nn.Tanh(), nn.Upsample(scale_factor=2, mode=cfg.upsample)]
        self.decoder = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        # True when the encoder was initialised from ImageNet weights (set by the recipe, kept in checkpoints).
        self.register_buffer("encoder_pretrained", torch.zeros((), dtype=torch.bool))

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        h, w = l.shape[-2:]
        m = 2 ** self.cfg.stages
        x = F.pad(l, (0, (-w) % m, 0, (-h) % m), mode="replicate") if (h % m or w % m) else l
        x = ((x / 100.0).expand(-1, 3, -1, -1) - self.mean) / self.std
        out = self.decoder(self.encoder(x))
        return self.cfg.ab_scale * out[..., :h, :w]


def torchvision_to_encoder(state: dict[str, torch.Tensor], encoder: nn.Sequential) -> dict[str, torch.Tensor]:
    """torchvision VGG keys (``features.N.weight``) -> the keys of ``encoder`` (timm ``features[:k]``).

    Strict on the encoder: every tensor it has must be in the file with the same shape; the file's later
    layers and classifier are ignored.
    """
    out, problems = {}, []
    for key, ref in encoder.state_dict().items():
        src = state.get(f"features.{key}")
        if src is None:
            problems.append(f"missing features.{key}")
        elif src.shape != ref.shape:
            problems.append(f"features.{key}: file {tuple(src.shape)} vs model {tuple(ref.shape)}")
        else:
            out[key] = src
    if problems:
        raise zoo.ZooError(f"{VGG16.filename} does not fit the encoder: {'; '.join(problems[:4])}")
    return out


class VggDecoderRecipe(Recipe):
    """MSE on ab; ImageNet VGG16 weights loaded at the start of a fresh run when present."""

    stages = (Stage("main"),)

    def prepare(self, batches) -> None:
        model, cfg = self.model, self.config
        if cfg.encoder != "vgg16" or cfg.width_div != 1:
            self.ctx.note(f"vgg16 weights: not used ({cfg.encoder} encoder at 1/{cfg.width_div} width) "
                          "-> encoder randomly initialised")
            return
        state = load_state_dict(VGG16)
        if state is None:
            self.ctx.note("vgg16 weights: missing -> encoder randomly initialised "
                          f"({VGG16.missing_message()})")
            return
        enc_state = torchvision_to_encoder(state, model.encoder)
        model.encoder.load_state_dict(enc_state, strict=True)
        with torch.no_grad():
            model.encoder_pretrained.fill_(True)
        frozen = "frozen" if cfg.freeze_pretrained else "fine-tuned"
        self.ctx.note(f"vgg16 weights: {VGG16.fingerprint()} -> encoder ImageNet-initialised ({frozen})")

    def start_stage(self, stage: Stage) -> None:
        cfg, model = self.config, self.model
        frozen = bool(model.encoder_pretrained) and cfg.freeze_pretrained
        model.encoder.requires_grad_(not frozen)
        # All parameters are handed to Adam either way (frozen ones simply get no gradient), so the
        # optimiser's parameter groups do not depend on whether the weights were found.
        self.optimizers["main"] = self.adam(model.parameters())
        self.schedulers["main"] = zoo.linear_decay(self.optimizers["main"], self.stage_steps(stage), cfg.lr_decay_from)

    def mse(self, batch) -> torch.Tensor:
        s = self.config.ab_scale
        with self.autocast():
            return F.mse_loss(self.model(batch["l"]).float() / s, batch["ab"] / s)

    def training_step(self, batch, stage, step):
        return {"mse": self.backward_step(self.mse(batch), "main")}

    def validation_losses(self, batch, stage):
        return {"mse": self.mse(batch)}

    def reference_losses(self, batch, stage):
        return {"mse": (batch["ab"] / self.config.ab_scale).pow(2).mean()}  # ab = 0, the gray baseline


ENTRY = zoo.ModelEntry(
    name="vgg_decoder",
    build=VggDecoder,
    config=VggDecoderConfig,
    summary="VGG16 (timm) embedding of L + conv/upsampling decoder to ab, tanh, MSE (seed 003)",
    reference="seed 003 'Enhancing Image Colorization Architectures' (VGG16 embedding + decoder; "
              "docs/sources.md); VGG16: Simonyan & Zisserman, arXiv:1409.1556",
    presets={
        "paper": {},
        "tiny": {"stages": 3, "width_div": 4, "decoder_widths": (64, 32, 16), "batch_size": 8, "patch_size": 48},
        # Sized for a CPU hour (suite color-classic): 4 VGG stages at half width, 64 px crops.
        "cpu": {"stages": 4, "width_div": 2, "decoder_widths": (128, 64, 32, 16), "batch_size": 8,
                "patch_size": 64},
    },
    recipe=VggDecoderRecipe,
    weights=(VGG16,),
)
