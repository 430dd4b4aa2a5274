"""Experiment configuration: nested frozen dataclasses, YAML presets and dotted overrides.

Everything a run needs is in one :class:`ExperimentConfig`, passed explicitly. Presets in
``configs/`` are YAML files merged over the defaults; command-line overrides use dotted keys
(``--set optim.g_lr=1e-4``). An unknown key or a value of the wrong type is an error that names
the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from stackgan.config_checks import check_across_sections
from stackgan.config_parse import (
    ConfigError as ConfigError,
)
from stackgan.config_parse import (
    deep_merge,
    from_dict,
    parse_override,
    safe_yaml,
    to_plain,
)
from stackgan.utils.textio import TextFileError, read_text_file

# Reference constants, each with its source.
MAX_GRID_CAPTIONS = 64  # rows of the tick's sample grid (each a row of images)
ADAM_BETAS = (0.5, 0.999)  # StackGAN reference code (the DCGAN default)
PAPER_LR = 2e-4  # StackGAN paper, sec. 4 ("learning rate 0.0002")
PAPER_KL_WEIGHT = 2.0  # StackGAN reference code (TRAIN.COEFF.KL = 2.0)
PAPER_Z_DIM = 100  # StackGAN paper, sec. 4 (N_z = 100)
PAPER_COND_DIM = 128  # StackGAN paper, sec. 4 (N_g = 128)
V2_MAX_BRANCHES = 4  # StackGAN++ reference code builds up to four branches (64..512 px)
# Colour-consistency lambda_1 when unconditional training leaves it on: the StackGAN-v2 reference
# presets that enable it (COLOR_CONSISTENCY = 50); the covariance term is 5x this (paper, eq. 8).
COLOR_WEIGHT_UNCOND = 50.0
AUGMENT_NAMES = ("translation", "cutout", "scale")  # loss.augment; implemented in stackgan.augment
# Upper bounds on sizes, far above any published StackGAN (ngf 128, N_z 100, 256 px), so that a
# config read from an untrusted export cannot ask for terabytes before its weights are checked.
MAX_WIDTH = 4096  # ngf, ndf, ngf2, ndf2, z_dim, cond_dim, disc_text_dim
MAX_TEXT_DIM = 16384  # text.dim (char-CNN-RNN: 1024)
MAX_RES_BLOCKS = 64
MAX_IMG_SIZE = 1024  # StackGAN++ reaches 256 (its code allows 512)
CA_ACTIVATIONS = ("leaky", "relu")  # model.ca_activation: TF release, PyTorch release


@dataclass(frozen=True)
class DataConfig:
    """Where the images and captions come from and how they are prepared."""

    name: str = "shapes"  # "shapes" or "birds": both use the CUB folder layout
    root: str = "data/shapes"  # dataset folder
    layout: Literal["auto", "cub", "flowers", "coco", "folder"] = "auto"  # auto: detect
    split: Literal["train", "test"] = "train"
    cache_dir: str = ""  # image/embedding cache; "" = <root>/.stackgan-cache or ~/.cache/stackgan
    bbox_crop: bool = True  # crop around bounding_boxes.txt when the dataset has one (CUB)
    random_crop: bool = True  # load at 76/64 of the size and crop (reference code); off for shapes
    random_flip: bool = True  # horizontal flip; off for shapes, where "left"/"right" is in the text
    max_images: int = 0  # use only the first N images of the split (0 = all)

    def __post_init__(self) -> None:
        if self.max_images < 0:
            raise ConfigError("data.max_images must be >= 0")


@dataclass(frozen=True)
class TextConfig:
    """Which text encoder turns captions into embeddings."""

    encoder: str = "minilm"  # "minilm" or "precomputed"
    dim: int = 384  # embedding dimension the encoder produces (checked at load)
    embeddings_file: str = ""  # for "precomputed": char-CNN-RNN-embeddings.pickle

    def __post_init__(self) -> None:
        if not 1 <= self.dim <= MAX_TEXT_DIM:
            raise ConfigError(f"text.dim must be in 1..{MAX_TEXT_DIM}, got {self.dim}")


@dataclass(frozen=True)
class ModelConfig:
    """Network widths and depths. The ``paper`` presets hold the published numbers."""

    version: Literal["v1", "v2"] = "v1"  # v1: StackGAN (two stages); v2: StackGAN++ (a tree)
    stage: int = 1  # v1 only. 1: Stage-I (64x64); 2: Stage-II (256x256) on a frozen Stage-I
    num_branches: int = 3  # v2 only: 1..4 branches at stage1_img_size * 2^i (3 = 64/128/256)
    conditional: bool = True  # v2 only: false = unconditional mode, images without text
    z_dim: int = PAPER_Z_DIM
    cond_dim: int = PAPER_COND_DIM  # Conditioning Augmentation output size (N_g)
    # v1: Stage-I width (paper 128 -> 4x4x1024 after the fc). v2: width at the first branch's
    # output (paper 64, also 4x4x1024 after the fc at 64 px), halved by each later branch.
    ngf: int = 128
    ndf: int = 64  # Stage-I discriminator width (v2: every branch's discriminator)
    ngf2: int = 128  # Stage-II generator width
    ndf2: int = 64  # Stage-II discriminator width
    disc_text_dim: int = 128  # D compresses the text embedding to this size (N_d)
    num_res_blocks: int = 4  # v1: Stage-II residual blocks (paper 4); v2: per branch (paper 2)
    joint_kernel: int = 0  # D's text-join conv kernel; 0 = the version's (v1: 1x1, v2: 3x3)
    # Not in the papers: spectral normalisation of every D weight (Miyato et al., 2018), an
    # option for short runs where D overpowers G. Off in every paper preset.
    d_spectral_norm: bool = False
    # Not in the papers: a projection term in D's conditional head (Miyato & Koyama, 2018),
    # logit += <V t, sum_xy code(x, y)>, an explicit product of text and image code beside the
    # concat-and-conv join, which only mixes them through one nonlinearity. Off in the presets.
    d_projection: bool = False
    # Not in the papers: what D's image encoder is. "stackgan": the papers' conv tower, learned;
    # "projected": light patch heads on the features of a frozen ImageNet EfficientNet-Lite0
    # (Projected GAN, Sauer et al. 2021; stackgan.models.projected), from stackgan[projected].
    d_type: Literal["stackgan", "projected"] = "stackgan"
    d_feature_size: int = 0  # projected: images are resized to this for the frozen net; 0 = as is
    # Not in the papers: the projected D judges random squares of this many pixels of images
    # larger than it (v2: the 256 px branch), at (d_crop / size)^2 of the frozen net's cost; 0 =
    # whole images. G still draws, and the colour term still compares, whole images.
    d_crop: int = 0
    stage1_img_size: int = 64  # v1 Stage-I output; v2: the first branch's resolution
    stage2_img_size: int = 256
    stage1_checkpoint: str = ""  # stage 2: the Stage-I checkpoint, export or bundled name
    # Not in the paper: v1 Stage-II paints a correction to the bilinearly upsampled Stage-I
    # image (tanh(atanh(up(I_0)) + r), r zero at initialisation) instead of a whole new image,
    # like StyleGAN2's skip generator. It starts as the Stage-I image and cannot lose a small
    # object by repainting it. Off in the paper presets.
    stage2_skip: bool = False
    # v1 only (v2 always gates with GLU): the activation after the CA fc. "leaky": the
    # TensorFlow release's LeakyReLU(0.2); "relu": the PyTorch release's (converted weights).
    ca_activation: str = "leaky"

    def __post_init__(self) -> None:
        if self.stage not in (1, 2):
            raise ConfigError(f"model.stage must be 1 or 2, got {self.stage}")
        for name in ("z_dim", "cond_dim", "ngf", "ndf", "ngf2", "ndf2", "disc_text_dim"):
            if not 0 < getattr(self, name) <= MAX_WIDTH:
                raise ConfigError(
                    f"model.{name} must be in 1..{MAX_WIDTH}, got {getattr(self, name)}"
                )
        if not 0 <= self.num_res_blocks <= MAX_RES_BLOCKS:
            raise ConfigError(f"model.num_res_blocks must be in 0..{MAX_RES_BLOCKS}")
        if self.ngf2 % 4:
            raise ConfigError("model.ngf2 must be divisible by 4 (Stage-II ends at ngf2/4)")
        if self.ngf % 2:
            raise ConfigError("model.ngf must be even (Stage-I ends at ngf/2)")
        for name in ("stage1_img_size", "stage2_img_size"):
            size = getattr(self, name)
            if size < 8 or size > MAX_IMG_SIZE or size & (size - 1):
                raise ConfigError(
                    f"model.{name} must be a power of two in 8..{MAX_IMG_SIZE}, got {size}"
                )
        if self.stage2_img_size <= self.stage1_img_size:
            raise ConfigError("model.stage2_img_size must be larger than stage1_img_size")
        if self.ca_activation not in CA_ACTIVATIONS:
            raise ConfigError(
                f"model.ca_activation must be one of {CA_ACTIVATIONS}, got {self.ca_activation!r}"
            )
        if self.joint_kernel not in (0, 1, 3):
            raise ConfigError(
                f"model.joint_kernel must be 0 (auto), 1 or 3, got {self.joint_kernel}"
            )
        if self.version == "v2":
            if not 1 <= self.num_branches <= V2_MAX_BRANCHES:
                raise ConfigError(
                    f"model.num_branches must be 1..{V2_MAX_BRANCHES}, got {self.num_branches}"
                )
            if self.ngf % 2 ** (self.num_branches - 1):
                raise ConfigError(
                    f"model.ngf={self.ngf} must be divisible by 2^(num_branches-1) "
                    f"(each branch halves it)"
                )
        elif not self.conditional:
            raise ConfigError("model.conditional: false (unconditional mode) needs version v2")
        if self.d_feature_size and not 32 <= self.d_feature_size <= MAX_IMG_SIZE:
            raise ConfigError(f"model.d_feature_size must be 0 or in 32..{MAX_IMG_SIZE}")
        if self.d_crop and (self.d_type != "projected" or not 32 <= self.d_crop <= MAX_IMG_SIZE):
            raise ConfigError(
                f"model.d_crop must be 0 or in 32..{MAX_IMG_SIZE}, with model.d_type: projected; "
                f"got {self.d_crop} with d_type {self.d_type!r}"
            )
        if self.d_type == "projected" and (self.d_spectral_norm or self.d_projection):
            raise ConfigError(
                "model.d_spectral_norm and d_projection are options of the stackgan D; the "
                "projected D always has both"
            )
        if self.d_projection and not self.conditional:
            raise ConfigError("model.d_projection needs text: an unconditional D has no text head")


def augment_names(policy: str) -> list[str]:
    """``loss.augment`` -> its names (``"translation, cutout"`` -> ["translation", "cutout"]);
    a ConfigError names any unknown one."""
    names = [n.strip() for n in policy.split(",") if n.strip()]
    unknown = [n for n in names if n not in AUGMENT_NAMES]
    if unknown:
        raise ConfigError(
            f"loss.augment: unknown augmentation {unknown}; choose from {list(AUGMENT_NAMES)}"
        )
    return names


@dataclass(frozen=True)
class LossConfig:
    kl_weight: float = PAPER_KL_WEIGHT  # lambda in the paper's eq. (4)/(6)
    wrong_fake_weight: float = 0.5  # D = real + 0.5 * (wrong + fake), reference code
    uncond_weight: float = 1.0  # weight of the unconditional terms (Stage-II D has that head)
    # StackGAN++ colour consistency lambda_1 between consecutive branches (covariance: 5x); in v1
    # Stage-II, between the Stage-I image and the Stage-II one (not in the v1 paper).
    # None = the paper's release: on (50) for unconditional training, off for text-conditioned.
    color_weight: float | None = None
    # Mismatched captions for D: 1 = the paper's, one random caption of another class; K > 1 =
    # the most text-similar of K such captions (hard negatives), so D must check every attribute
    # the text names and not the easiest one (on `shapes`, random negatives let D match the
    # background alone and ignore the object's colour).
    wrong_candidates: int = 1
    # Low-resolution consistency (not in either paper): weight of the L1 distance between each
    # finer image area-downsampled to the coarser one's size and that (detached) coarser image.
    # Colour consistency matches whole-image colour statistics, which the background dominates;
    # this term pins the layout and the object's colour, so v1 Stage-II refines its Stage-I
    # image instead of repainting it. 0 = off (the papers).
    lowres_weight: float = 0.0
    # Differentiable augmentation of every image D sees, real and generated, in the D and the
    # G update (DiffAugment, Zhao et al. 2020; not in either paper): a comma-separated list of
    # "translation" (shift by up to 1/8 of the size), "cutout" (zero a half-size square; it
    # can hide the captioned object) and "scale" (zoom by 2^N(0, 0.2), ADA's). "" = off.
    augment: str = ""
    # Adaptive augmentation (ADA, Karras et al. 2020; stackgan.augment.AdaptiveAugment): each
    # `augment` transform is applied to each image with a probability p, raised while
    # r_t = E[sign D(real)] is above ada_target and lowered below it, every ada_interval
    # iterations, by at most 1 per ada_kimg thousand images. 0 = off: every transform, always.
    ada_target: float = 0.0
    ada_interval: int = 4
    ada_kimg: float = 20.0
    # R1 gradient penalty on D at real images (Mescheder et al. 2018; StyleGAN2-ADA's `gamma`),
    # taken with respect to the image and, for a conditional D, the matching text embedding
    # too (DF-GAN's matching-aware gradient penalty): gamma/2 * E ||grad D(x, t)||^2, applied
    # lazily every `r1_interval` D steps with gamma scaled up to match (StyleGAN2). It smooths
    # D around real pairs, so G gets gradients it can follow. 0 = off (the papers).
    r1_gamma: float = 0.0
    r1_interval: int = 16
    # Colour-swapped negatives (not in either paper): this fraction of the mismatched captions
    # is the image's own caption with one colour word replaced by a colour of another hue
    # (stackgan.text.negatives), so D must check each colour the text names, small objects' too;
    # captions that name no colour keep their ordinary negative. Needs an encoder that can
    # encode new text (not `precomputed`). 0 = off (the papers).
    swap_negatives: float = 0.0
    # Colour-swapped versions made of each caption (each swaps a random colour mention for a
    # random other hue; one is drawn per use). 1 = a single fixed swap per caption.
    swap_variants: int = 1
    # Text-image matching loss on G (not in either paper; AttnGAN's DAMSM and XMC-GAN's
    # contrastive losses are the idea): a small image encoder is fitted to the real pairs for
    # match_steps iterations before the GAN starts, then frozen, and G is trained with this
    # weight so that its image's embedding picks its own caption out of the batch's
    # (stackgan.train.matching). Conditional models only. 0 = off (the papers).
    match_weight: float = 0.0
    match_steps: int = 500
    # Reconstruction (v1 Stage-II with train.sr_real_fraction; not in the paper): weight of the
    # L1 distance between Stage-II's output for a real photo taken down to Stage-I's size and
    # that photo, beside the adversarial terms (a super-resolution model's loss). 0 = off.
    recon_weight: float = 0.0

    def __post_init__(self) -> None:
        augment_names(self.augment)
        if not 0 <= self.ada_target < 1 or self.ada_interval < 1 or self.ada_kimg <= 0:
            raise ConfigError(
                "loss.ada_target must be in [0, 1), ada_interval >= 1 and ada_kimg > 0"
            )
        if self.ada_target and not self.augment:
            raise ConfigError("loss.ada_target needs loss.augment (the transforms to adapt)")
        if self.r1_gamma < 0:
            raise ConfigError("loss.r1_gamma must be >= 0")
        if self.r1_interval < 1:
            raise ConfigError("loss.r1_interval must be at least 1")
        if self.wrong_candidates < 1:
            raise ConfigError("loss.wrong_candidates must be at least 1")
        if self.lowres_weight < 0:
            raise ConfigError("loss.lowres_weight must be >= 0")
        if not 0 <= self.swap_negatives <= 1:
            raise ConfigError("loss.swap_negatives must be in [0, 1]")
        if self.swap_variants < 1:
            raise ConfigError("loss.swap_variants must be at least 1")
        if self.match_weight < 0 or self.match_steps < 1:
            raise ConfigError("loss.match_weight must be >= 0 and loss.match_steps >= 1")
        if self.recon_weight < 0:
            raise ConfigError("loss.recon_weight must be >= 0")

    def effective_color_weight(self, conditional: bool) -> float:
        if self.color_weight is not None:
            return self.color_weight
        return 0.0 if conditional else COLOR_WEIGHT_UNCOND


@dataclass(frozen=True)
class OptimConfig:
    g_lr: float = PAPER_LR
    d_lr: float = PAPER_LR
    betas: tuple[float, float] = ADAM_BETAS
    lr_decay_epochs: int = 100  # halve both learning rates every this many epochs (paper: 100)
    lr_decay_factor: float = 0.5

    def __post_init__(self) -> None:
        if self.g_lr <= 0 or self.d_lr <= 0:
            raise ConfigError("optim.g_lr and optim.d_lr must be positive")
        if not 0 < self.lr_decay_factor <= 1:
            raise ConfigError("optim.lr_decay_factor must be in (0, 1]")


# a metric name with an optional sample count (the grammar of stackgan.metrics.options)
METRIC_NAME = re.compile(r"[a-z_]*[a-z]([1-9][0-9]*k?)?")


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64
    total_iters: int = 120_000  # the paper's 600 epochs of CUB at batch 64 is ~ 110k iterations
    tick_iters: int = 500  # log, sample grid and checkpoint every tick
    snapshot_ticks: int = 1  # write a checkpoint every this many ticks
    ema_decay: float = 0.0  # g_ema = decay * g_ema + (1 - decay) * G; 0 keeps a plain copy
    # Not in the papers: StyleGAN2-ADA's EMA ramp-up. The average's half-life, in iterations,
    # is this times the iterations so far, up to ema_decay's own (0.999: 693 its), so a run from
    # scratch does not average its first, fast-moving weights (and its initialisation) into
    # g_ema for hours. 0 = off (ema_decay from the start); StyleGAN2-ADA uses 0.05.
    ema_rampup: float = 0.0
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    # auto: what measured fastest: bf16 on CPUs with AMX bf16 tiles, else fp32 on the CPU; bf16
    # on GPUs that have it, else fp16 with a loss scaler per optimiser (utils.runtime.amp_dtype)
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    channels_last: bool = True
    # torch.compile of G's forward and each D step's modules: "off", "default",
    # "reduce-overhead" (CUDA graphs: for a GPU step bound by kernel launches) or
    # "max-autotune"; the first iterations pay for the compilation (a minute or more)
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = "off"
    # under torchrun: batch statistics over every rank's samples (SyncBatchNorm on CUDA, a
    # gloo all-reduce on the CPU) rather than each rank's own; train.batch_size is per rank
    sync_batchnorm: bool = False
    num_grid_captions: int = 8
    progress: bool = True
    tensorboard: bool = True
    # Metrics during training, every metric_ticks ticks (0 = off), with g_ema: registered
    # metric names (stackgan.metrics.registry), each with an optional sample count (fid2k:
    # FID of 2,000 images; without one, metric_samples test captions). The best model so far,
    # by the first metric, is exported as model-best.safetensors. Empty: the dataset judge's
    # consistency where there is one (shapes; cheap), nothing elsewhere.
    metric_ticks: int = 0
    metrics: tuple[str, ...] = ()
    metric_samples: int = 256
    # deprecated: `metrics: [fid]` (true puts fid first in the list, so model-best follows it)
    metric_fid: bool = False
    # Stop (checkpoint, export) once this many minutes were spent in training iterations,
    # counted across resumes and without the tick maintenance (grids, metrics, checkpoints);
    # 0 = no limit. For comparisons at equal training time (v1 vs v2).
    time_budget_min: float = 0.0
    # Fine-tuning: a training checkpoint whose networks start this run (the generator, its EMA
    # and the discriminators, where parameter names match; parameters new in this config, such
    # as a D head switched on here, keep their initialisation). Step, optimisers and RNG start
    # afresh; unlike --resume, the model config may differ in the discriminator. --resume wins
    # over it (a resumed fine-tuning run continues from its own checkpoint).
    # An export (.safetensors, e.g. the bundled model) starts the generator only. A v1
    # Stage-II run takes only the Stage-II weights (its Stage-I is model.stage1_checkpoint).
    init_from: str = ""
    # BigGAN's standing statistics (stackgan.train.ema.standing_stats): before each metric and
    # export, g_ema's batch-norm statistics are recomputed for its own weights over this many
    # batches of random z and training captions. 0 = off: G's running averages, copied.
    standing_stats: int = 0
    # Iterations at the start that train the discriminators alone, G held still: with
    # init_from and a new D, so a trained G does not follow a random D's gradients at first.
    d_warmup_iters: int = 0
    # Stage-II as text-conditioned super-resolution (v1 Stage-II; stackgan.train.superres; not
    # in the paper). This fraction of each batch's Stage-II inputs are the real training photos
    # taken down to Stage-I's size (area downsampling, a Gaussian blur of sigma up to sr_blur
    # pixels and noise of std up to sr_noise: cascaded models' conditioning augmentation)
    # instead of Stage-I's images, so G learns to add real detail to a real low-resolution
    # photo of its caption (loss.recon_weight pulls its output to the photo). 1 = pre-training
    # on real pairs; 0 = the paper: Stage-I's images only (fine-tuning after pre-training).
    sr_real_fraction: float = 0.0
    sr_blur: float = 1.0
    sr_noise: float = 0.05
    # v1 Stage-II on random crops of this many output pixels (0 = whole images): G refines the
    # matching crop of its low-resolution input (its text is tiled spatially, so it does not
    # depend on the size) and D, built for this size, judges crops; a step costs about
    # (crop / stage2_img_size)^2 of a whole image's. Sampling always makes whole images.
    # StackGAN++ (v2): the tree's last branch draws only a square of this size (its input cut
    # to the matching square) and its D judges squares of the photos; the other branches and
    # the colour term (against the same square of the branch before) are as before.
    crop: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.sr_real_fraction <= 1 or self.sr_blur < 0 or self.sr_noise < 0:
            raise ConfigError(
                "train.sr_real_fraction must be in [0, 1] and train.sr_blur, sr_noise >= 0"
            )
        if self.time_budget_min < 0:
            raise ConfigError("train.time_budget_min must be >= 0 (0 = no limit)")
        if self.standing_stats < 0:
            raise ConfigError("train.standing_stats must be >= 0")
        if self.d_warmup_iters < 0:
            raise ConfigError("train.d_warmup_iters must be >= 0")
        if self.metric_ticks < 0 or self.metric_samples < 2:
            raise ConfigError("train.metric_ticks must be >= 0 and metric_samples >= 2")
        for name in self.metrics:
            if not METRIC_NAME.fullmatch(name):
                raise ConfigError(
                    f"train.metrics: {name!r} is not a metric name (a metric and an optional "
                    "sample count: fid, fid2k, consistency256)"
                )
        if self.batch_size < 2:
            raise ConfigError("train.batch_size must be >= 2 (the mismatched pair needs two)")
        if self.total_iters < 1 or self.tick_iters < 1 or self.snapshot_ticks < 1:
            raise ConfigError("train.total_iters, tick_iters and snapshot_ticks must be >= 1")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError("train.ema_decay must be in [0, 1)")
        if not 0 <= self.ema_rampup <= 1:
            raise ConfigError(f"train.ema_rampup must be in [0, 1], got {self.ema_rampup}")
        if not 1 <= self.num_grid_captions <= MAX_GRID_CAPTIONS:
            raise ConfigError(f"train.num_grid_captions must be in 1..{MAX_GRID_CAPTIONS}")


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    text: TextConfig = field(default_factory=TextConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        check_across_sections(self)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = to_plain(dataclasses.asdict(self))
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> ExperimentConfig:
    """Load a YAML preset merged over the defaults, then apply dotted ``key=value`` overrides.

    Args:
        path: YAML file, or None for the defaults alone.
        overrides: items such as ``"optim.g_lr=1e-4"``.

    Raises:
        ConfigError: for a missing file, unknown key, wrong type or inconsistent values.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            text = read_text_file(p)
        except TextFileError as exc:
            raise ConfigError(str(exc)) from None
        loaded = safe_yaml(text, str(p)) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
        data = loaded
    for item in overrides:
        keys, value = parse_override(item)
        node: dict[str, Any] = {}
        cur = node
        for k in keys[:-1]:
            cur[k] = {}
            cur = cur[k]
        cur[keys[-1]] = value
        data = deep_merge(data, node)
    return from_dict(ExperimentConfig, data)


def config_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    """Rebuild a config stored in a checkpoint or export."""
    return from_dict(ExperimentConfig, data)
