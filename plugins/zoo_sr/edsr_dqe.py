"""``edsr_dqe``: EDSR followed by Deep Quality Enhancement (DQE), the seed report's proposed SR model.

Source: seed 000, "Super Colorization: a single pipeline for image colorization and super resolution",
Sec. III.3 (see docs/sources.md#seed-000). The report saw its EDSR stop improving, even on training images, and
blamed the upsampler sitting at the very end of the network. It adds a second network, DQE, "similar to the
EDSR network but without any upsampling layer or normalization", that takes the upscaled image and "learns
what the EDSR network misses". EDSR is trained first (L1 + VGG19 content loss), then DQE (L1 only), each
network on its own.

Architecture::

    rgb -> EDSR (see edsr.py) -> base (B, 3, sH, sW)
    base -> DQE: conv3x3(3->F) -> B x ResBlock -> conv3x3, + global skip
                 -> P x (conv3x3 + ReLU) -> conv3x3(-> 3)      = residual
    output = base + residual

Faithful to the report:
- DQE works at HR, has no upsampler and no input normalisation or mean shift; it is EDSR's body (residual
  blocks without batch norm, global skip) plus the same kind of extra HR convolutions as the modified EDSR;
- two stages: stage ``edsr`` trains EDSR alone with L1 (+ content term when ``content_weight > 0``); stage
  ``dqe`` freezes EDSR and trains DQE with L1 on the final output;
- DQE sized as in the report: its text gives about 2.8M parameters and calls DQE EDSR-like without the
  upsampler. We mirror the modified EDSR (24 blocks, 64 features, 7 extra 128-wide HR convs; see edsr.py for
  how those numbers were reached): 2,774,083 parameters;
- Adam, 1e-4 halved every 2x10^5 steps for both networks; the report trained EDSR for 300 epochs and DQE for
  50, so EDSR gets 6/7 of the steps (``edsr_fraction``).

Our own choices (the report does not say):
- DQE predicts a residual added to EDSR's output ("learns what EDSR misses"), and its last conv starts at
  zero, so before training the pair is exactly the trained EDSR and stage 2 cannot start worse than stage 1;
- presets: ``paper`` = the EDSR *baseline* of Lim et al. (1,369,859 parameters) + the report's DQE
  (2,774,083), 4,143,942 in all; ``super_colorization`` = the report's modified EDSR (2,921,795) + DQE,
  5,695,878 in all (report: "3M + 2.8M ~ 6M"); ``tiny`` for CPU tests.

Starting from a trained ``edsr``: set ``edsr_checkpoint`` to an ``edsr`` .safetensors checkpoint (with its
.json beside it) of the same architecture. The recipe loads it when it is created and gives stage ``edsr`` a
fraction of 0 (no steps; the loop may skip it), so all steps go to DQE. In code: :func:`load_edsr_stage`
copies an EDSR state dict into an ``EdsrDqe``; :func:`read_edsr_checkpoint` reads and checks the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import zoo
from zoo import VGG19, Recipe, Stage, ZooError
from zoo_sr.edsr import (
    SUPER_COLORIZATION,
    TINY,
    Edsr,
    EdsrConfig,
    adam_with_step_decay,
    bicubic_like,
    content_loss_or_note,
    conv3x3,
    l1_and_content,
    post_layers,
    residual_body,
)

# The EdsrConfig fields that shape the EDSR network: an EDSR checkpoint must agree on all of them.
EDSR_ARCH_FIELDS = ("scale", "blocks", "features", "res_scale", "norm", "post_convs", "post_features")


@dataclass
class EdsrDqeConfig(EdsrConfig):
    """The EDSR fields (inherited, same names and defaults as ``edsr``) plus DQE's and the stage split.

    Defaults (preset ``paper``): the EDSR baseline followed by the report's DQE.
    """
    RENAMED = {"dqe_feats": "dqe_features", "dqe_post_feats": "dqe_post_features"}  # zoo 0.1 names

    dqe_blocks: int = 24
    dqe_features: int = zoo.bounded(64, min=1)
    dqe_res_scale: float = 1.0
    dqe_post_convs: int = 7
    dqe_post_features: int = zoo.bounded(128, min=1)
    edsr_fraction: float = 6 / 7  # share of the steps for stage "edsr" (report: 300 + 50 epochs)
    edsr_checkpoint: str = ""  # a trained `edsr` .safetensors to start from; then stage "edsr" gets 0 steps


class Dqe(nn.Module):
    """Deep Quality Enhancement: an EDSR body at HR, no upsampler, no normalisation; outputs a residual."""

    def __init__(self, cfg: EdsrDqeConfig):
        super().__init__()
        f = cfg.dqe_features
        self.head = nn.Sequential(conv3x3(3, f))
        self.body = residual_body(cfg.dqe_blocks, f, cfg.dqe_res_scale)
        post, width = post_layers(f, cfg.dqe_post_convs, cfg.dqe_post_features)
        self.tail = nn.Sequential(*post, conv3x3(width, 3))
        nn.init.zeros_(self.tail[-1].weight)  # start as the identity: output = EDSR's output
        nn.init.zeros_(self.tail[-1].bias)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.head(img)
        x = x + self.body(x)
        return self.tail(x)


class EdsrDqe(zoo.SuperResolver):
    """``edsr(rgb)`` refined by ``dqe``: ``base + dqe(base)``. State-dict keys: ``edsr.*`` and ``dqe.*``."""

    def __init__(self, cfg: EdsrDqeConfig):
        super().__init__(cfg.scale)
        self.edsr = Edsr(cfg)
        self.dqe = Dqe(cfg)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        base = self.edsr(rgb)
        return base + self.dqe(base)

    @property
    def edsr_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.edsr.parameters())

    def train(self, mode: bool = True):
        # Once stage "dqe" has frozen EDSR it stays in eval mode, even when the loop calls model.train().
        super().train(mode)
        if mode and self.edsr_frozen:
            self.edsr.eval()
        return self


def load_edsr_stage(model: EdsrDqe, edsr_state_dict: dict[str, torch.Tensor]) -> EdsrDqe:
    """Copy a trained ``edsr`` model's state dict (same architecture) into ``model.edsr`` (strictly)."""
    model.edsr.load_state_dict(edsr_state_dict, strict=True)
    return model


def read_edsr_checkpoint(path: str | Path, cfg: EdsrDqeConfig) -> dict[str, torch.Tensor]:
    """The tensors of an ``edsr`` checkpoint, after checking its sidecar names ``edsr`` with a matching
    architecture (the DIV2K/ImageNet normalisation is not in the tensors, so it is checked here)."""
    from safetensors.torch import load_file

    from zoo.store.checkpoint import read_meta

    path = Path(path)
    meta = read_meta(path)
    if meta.get("model") != "edsr":
        raise ZooError(f"edsr_checkpoint {path} is a '{meta.get('model')}' checkpoint, not an 'edsr' one")
    theirs = {**dataclasses.asdict(EdsrConfig()), **meta.get("config", {})}
    diff = [f"{k}: checkpoint {theirs.get(k)!r} vs config {getattr(cfg, k)!r}"
            for k in EDSR_ARCH_FIELDS if theirs.get(k) != getattr(cfg, k)]
    if diff:
        raise ZooError(f"edsr_checkpoint {path} does not match this edsr_dqe config: {'; '.join(diff)}")
    return load_file(str(path))


class EdsrDqeRecipe(Recipe):
    """Stage ``edsr``: EDSR alone, L1 (+ content). Stage ``dqe``: EDSR frozen, DQE trained with L1.

    Stage fractions come from ``edsr_fraction``; with ``edsr_checkpoint`` set, EDSR is loaded here and stage
    ``edsr`` has fraction 0.
    """

    stages = (Stage("edsr", 6 / 7), Stage("dqe", 1 / 7))

    def __init__(self, model, config, ctx):
        super().__init__(model, config, ctx)
        self.edsr_from_checkpoint = bool(config.edsr_checkpoint)
        if self.edsr_from_checkpoint:
            load_edsr_stage(model, read_edsr_checkpoint(config.edsr_checkpoint, config))
            ctx.note(f"edsr stage: loaded from {config.edsr_checkpoint}, not trained here")
            edsr_fraction = 0.0
        else:
            edsr_fraction = min(max(float(config.edsr_fraction), 0.0), 1.0)
        self.stages = (Stage("edsr", edsr_fraction), Stage("dqe", 1.0 - edsr_fraction))
        self.content = content_loss_or_note(config, ctx, ctx.device) if edsr_fraction > 0 else None

    def start_stage(self, stage):
        edsr, dqe = self.model.edsr, self.model.dqe
        self.optimizers.clear()
        self.schedulers.clear()
        if stage.name == "edsr":
            edsr.requires_grad_(True)
            self.optimizers["edsr"], self.schedulers["edsr"] = adam_with_step_decay(edsr.parameters(), self.config)
        elif stage.name == "dqe":
            edsr.requires_grad_(False)
            edsr.eval()
            self.optimizers["dqe"], self.schedulers["dqe"] = adam_with_step_decay(dqe.parameters(), self.config)
        else:
            raise ValueError(f"edsr_dqe has stages 'edsr' and 'dqe', not '{stage.name}'")

    def training_step(self, batch, stage, step):
        if stage.name == "edsr":
            with self.autocast():
                sr = self.model.edsr(batch["lr"])
                loss, logs = l1_and_content(sr, batch["hr"], self.content, self.config.content_weight)
            total = self.backward_step(loss, "edsr")
            return {"loss": total, **{k: self.loggable(v) for k, v in logs.items()}}
        with self.autocast():
            with torch.no_grad():
                base = self.model.edsr(batch["lr"])
            loss = F.l1_loss(base + self.model.dqe(base), batch["hr"])
        return {"loss": self.backward_step(loss, "dqe")}

    def validation_losses(self, batch, stage):
        with self.autocast():
            base = self.model.edsr(batch["lr"])
            return self._stage_losses(stage, base, lambda: base + self.model.dqe(base), batch["hr"])

    def reference_losses(self, batch, stage):
        up = bicubic_like(batch["lr"], batch["hr"])
        return self._stage_losses(stage, up, lambda: up, batch["hr"])

    def _stage_losses(self, stage, base, output, hr):
        """What ``stage`` minimises: EDSR's loss on ``base``, or the L1 of the final ``output()``."""
        if stage.name == "edsr":
            loss, logs = l1_and_content(base, hr, self.content, self.config.content_weight)
            return {"loss": loss, **logs}
        return {"loss": F.l1_loss(output(), hr)}


DQE_TINY = {"dqe_blocks": 2, "dqe_features": 16, "dqe_post_convs": 0, "edsr_fraction": 0.5}

ENTRY = zoo.ModelEntry(
    name="edsr_dqe",
    build=EdsrDqe,
    config=EdsrDqeConfig,
    summary="EDSR + Deep Quality Enhancement: an HR residual network refines EDSR's output (two stages)",
    reference="seed 000 'Super Colorization: a single pipeline for image colorization and super resolution' "
              "(EDSR + DQE; docs/sources.md); EDSR: Lim et al., CVPR Workshops 2017, arXiv:1707.02921",
    presets={"paper": {}, "super_colorization": dict(SUPER_COLORIZATION), "tiny": {**TINY, **DQE_TINY}},
    recipe=EdsrDqeRecipe,
    weights=(VGG19,),
)
