"""Analytic FLOPs of an `AsrModel` (encoder + CTC head), derived from its config alone.

Conventions (the ones of `torch.utils.flop_counter.FlopCounterMode`, PaLM's appendix B and
nanoGPT's `estimate_mfu`): a multiply-add is 2 FLOPs; a matmul (M, K) @ (K, N) costs 2 M K N;
a convolution costs 2 x output positions x kernel taps x input channels per group x output
channels, counted at every output position including those that read padding. Bias adds and
all elementwise work (norms, activations, softmax, residuals, masks) are left out of those
terms, as a counter leaves them out, and estimated separately in the `norms_activations`
component at the per-element costs below.

With T frames at the block's rate, D = d_model, H heads, K the conv kernel, C the conv module's
depthwise channels (D with GLU, 2D with Swish) and V the vocabulary without the blank, one
block costs:

    attention projections   2 T D^2 x 4 (q, k, v, out) + 2 (2T - 1) D^2 (linear_pos, no batch)
    attention scores        2 T^2 D (q k^T) + 2 T (2T - 1) D (position scores, 2T - 1
                            distances) + 2 T^2 D (softmax-weighted V)
    (the linear_pos and position-score terms belong to the paper's relative positions only)
    feed-forward            2 x 2 T D (ff_expansion D) x 2 (two modules)
    convolution             2 T D (2D) + 2 T C K + 2 T C D

The subsampling front (paper Section 3.3.3), the Temporal U-Net (Section 3.1) and the CTC head
are counted in their own helpers; `analytic_flops` sums them over the model's frame rates.
The counts follow what our modules compute, where that differs from the textbook layer: the
first subsampling conv is an im2col matmul whose bias rides as a tenth tap (10 taps, not 9),
and the time-reduction conv produces (T + 1) // 2 + 1 frames before it is cut to ceil(T / 2).
A test checks every matmul/conv term against `FlopCounterMode` on a real forward pass.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from squeezer.config import EncoderConfig
from squeezer.nn import subsampling as subsampling_module
from squeezer.nn import unet as unet_module

__all__ = [
    "BLOCK_COMPONENTS",
    "COMPONENTS",
    "ELEMENTWISE",
    "FRAME_SHIFT_S",
    "FlopsBreakdown",
    "analytic_flops",
    "block_frame_rates",
    "frames_for_seconds",
]

FRAME_SHIFT_S = 0.01  # log-mel features every 10 ms: 30 s of audio is 3000 frames

ELEMENTWISE = "norms_activations"
COMPONENTS = (
    "subsampling",
    "attention_projections",
    "attention_scores",
    "feed_forward",
    "convolution",
    "unet",
    ELEMENTWISE,
    "ctc_head",
)
BLOCK_COMPONENTS = (
    "attention_projections",
    "attention_scores",
    "feed_forward",
    "convolution",
    ELEMENTWISE,
)

# FLOPs per element of the elementwise work no counter sees; a rough, stated convention.
LAYER_NORM = 7  # sum, subtract the mean, square, sum, multiply by 1/std, scale, shift
SCALE_BIAS = 2  # multiply, add
BATCH_NORM = 2  # in eval a per-channel scale and shift
SWISH = 4  # exp, add, divide (the sigmoid), multiply
GLU = 4  # a sigmoid of the gate half and a multiply, per output element
SOFTMAX = 5  # max, subtract, exp, sum, divide (log-softmax: the same count)
SCORE_EXTRA = 3  # per attention score: the 1/sqrt(dh) scale, + position scores, + key mask


@dataclass(frozen=True)
class FlopsBreakdown:
    """FLOPs of one forward pass of one utterance, by component and by block.

    Attributes:
        method: "analytic" (this module) or "measured" (`flops_measured`).
        frames: input feature frames (10 ms each).
        terms: FLOPs per "component/term"; the component is the part before the slash.
        blocks: per encoder block, FLOPs per component of `BLOCK_COMPONENTS`.
        block_frames: the frames each block runs at (halved inside the Temporal U-Net).
    """

    method: str
    frames: int
    terms: dict[str, int]
    blocks: tuple[dict[str, int], ...]
    block_frames: tuple[int, ...]

    @property
    def components(self) -> dict[str, int]:
        """FLOPs per component: every name of `COMPONENTS`, then any other (e.g. "other")."""
        totals = dict.fromkeys(COMPONENTS, 0)
        for name, flops in self.terms.items():
            component = name.split("/", 1)[0]
            totals[component] = totals.get(component, 0) + flops
        return totals

    @property
    def total(self) -> int:
        return sum(self.terms.values())

    @property
    def matmul_total(self) -> int:
        """The matmul and convolution FLOPs: the total without the elementwise estimate."""
        return self.total - self.components[ELEMENTWISE]

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "frames": self.frames,
            "total": self.total,
            "matmul_total": self.matmul_total,
            "components": self.components,
            "terms": dict(self.terms),
            "blocks": [dict(block) for block in self.blocks],
            "block_frames": list(self.block_frames),
        }


def frames_for_seconds(seconds: float) -> int:
    """Feature frames for `seconds` of audio at a 10 ms hop (30 s -> 3000)."""
    frames = round(seconds / FRAME_SHIFT_S)
    if frames < 1:
        raise ValueError(f"seconds={seconds} gives no feature frame at a 10 ms hop")
    return frames


def _stride2(length: int, kernel: int, padding: int) -> int:
    """Output length of a stride-2 convolution (the formula of `conv_output_lengths`)."""
    return (length + 2 * padding - kernel) // 2 + 1


def _subsampling_terms(config: EncoderConfig, T: int) -> tuple[dict[str, int], int]:
    """Terms of the subsampling front for T input frames, and the frames it outputs."""
    D, F = config.d_model, config.input_dim
    if config.subsampling == "none":
        elementwise = T * D * (2 + (LAYER_NORM if config.block_layout == "squeezeformer" else 0))
        return {"subsampling/linear": 2 * T * F * D, f"{ELEMENTWISE}/input": elementwise}, T
    C, taps = config.conv_channels, subsampling_module.KERNEL_SIZE**2
    kernel, padding = subsampling_module.KERNEL_SIZE, subsampling_module.PADDING
    terms: dict[str, int] = defaultdict(int)
    stages = config.subsampling_factor.bit_length() - 1  # log2 of 2, 4 or 8
    for stage in range(stages):
        T, F = _stride2(T, kernel, padding), _stride2(F, kernel, padding)
        positions = T * F
        if stage == 0:  # im2col matmul over 9 taps plus a column of ones for the bias
            terms["subsampling/conv1"] += 2 * positions * (taps + 1) * C
            biases = 0
        elif config.subsampling == "conv2d":
            terms["subsampling/conv"] += 2 * positions * taps * C * C
            biases = 1
        else:
            terms["subsampling/depthwise"] += 2 * positions * taps * C
            terms["subsampling/pointwise"] += 2 * positions * C * C
            biases = 2
        terms[f"{ELEMENTWISE}/subsampling"] += positions * C * (1 + biases)  # ReLU and biases
    terms["subsampling/linear"] = 2 * T * (C * F) * D
    input_norm = LAYER_NORM if config.block_layout == "squeezeformer" else 0
    absolute = 1 if config.position == "absolute" else 0  # the sinusoids' add
    terms[f"{ELEMENTWISE}/input"] = T * D * (2 + absolute + input_norm)  # bias, xscaling, LN
    return dict(terms), T


def _attention_terms(config: EncoderConfig, T: int) -> dict[str, int]:
    """Multi-head self-attention at T frames (see the module docstring); only the paper's
    relative scheme has the position projection and scores, RoPE rotates q and k instead."""
    D, H = config.d_model, config.num_heads
    terms = {
        "attention_projections/qkv_out": 4 * 2 * T * D * D,
        "attention_scores/content": 2 * T * T * D,
        "attention_scores/weighted_values": 2 * T * T * D,
        # four biases and the residual; then the T^2 scores
        f"{ELEMENTWISE}/attention": 5 * T * D + H * T * T * (SCORE_EXTRA + SOFTMAX),
    }
    if config.position == "relative":
        distances = 2 * T - 1
        terms["attention_projections/pos"] = 2 * distances * D * D
        terms["attention_scores/position"] = 2 * T * distances * D
        terms[f"{ELEMENTWISE}/attention"] += 3 * T * D  # + u, + v, the scale of q + v
    elif config.position == "rope":
        terms[f"{ELEMENTWISE}/attention"] += 2 * 3 * T * D  # q and k: two products, a sum
    return terms


def _feed_forward_terms(config: EncoderConfig, T: int) -> dict[str, int]:
    """One feed-forward module; a Conformer's half-step residual costs one multiply more."""
    D, hidden = config.d_model, config.ff_expansion * config.d_model
    half_step = 1 if config.block_layout == "conformer" else 0
    return {
        "feed_forward/linear": 2 * 2 * T * D * hidden,
        f"{ELEMENTWISE}/feed_forward": T * (hidden * (1 + SWISH) + D * (2 + half_step)),
    }


def _convolution_terms(config: EncoderConfig, T: int) -> dict[str, int]:
    """The conv module: pointwise D -> 2D, GLU | Swish, depthwise over C, BN, Swish, C -> D."""
    D, K = config.d_model, config.conv_kernel_size
    glu = config.conv_activation == "glu"
    C = D if glu else 2 * D
    activation = GLU * D if glu else SWISH * 2 * D
    return {
        "convolution/pointwise1": 2 * T * D * 2 * D,
        "convolution/depthwise": 2 * T * C * K,
        "convolution/pointwise2": 2 * T * C * D,
        f"{ELEMENTWISE}/convolution": T
        * (2 * D + activation + C * (1 + BATCH_NORM + SWISH) + 2 * D),
    }


def _norm_terms(config: EncoderConfig, T: int) -> dict[str, int]:
    """The block's LNs (and ScaleBias) outside its modules."""
    D = config.d_model
    if config.block_layout == "conformer":
        return {f"{ELEMENTWISE}/norms": 5 * LAYER_NORM * T * D}  # 4 pre-LN + the block's LN
    module_input = LAYER_NORM if config.norm_scheme == "pre_post" else SCALE_BIAS
    return {f"{ELEMENTWISE}/norms": 4 * (LAYER_NORM + module_input) * T * D}


def _block_terms(config: EncoderConfig, T: int) -> dict[str, int]:
    """One encoder block at T frames: attention, two feed-forward modules, conv, norms."""
    terms: dict[str, int] = defaultdict(int)
    feed_forward = _feed_forward_terms(config, T)
    parts = [_attention_terms(config, T), feed_forward, feed_forward]
    parts += [_convolution_terms(config, T), _norm_terms(config, T)]
    for part in parts:
        for name, flops in part.items():
            terms[name] += flops
    return dict(terms)


def _reduction_terms(config: EncoderConfig, T: int) -> dict[str, int]:
    """TimeReduction: depthwise kernel 5 stride 2 (over its uncut output), then pointwise."""
    D = config.d_model
    conv_frames = _stride2(T, unet_module.KERNEL_SIZE, unet_module.PADDING)
    kept = (T + 1) // 2
    return {
        "unet/reduce_depthwise": 2 * conv_frames * D * unet_module.KERNEL_SIZE,
        "unet/reduce_pointwise": 2 * kept * D * D,
        f"{ELEMENTWISE}/unet": conv_frames * D + kept * D,  # the two biases
    }


def _recovery_terms(config: EncoderConfig, T: int) -> dict[str, int]:
    """TimeRecovery at T output frames: repeat (free), linear, add the skip."""
    D = config.d_model
    return {"unet/recover_linear": 2 * T * D * D, f"{ELEMENTWISE}/unet": 2 * T * D}


def _head_terms(config: EncoderConfig, T: int, vocab_size: int) -> dict[str, int]:
    """CTC head: linear D -> V + 1 and a log-softmax over the V + 1 outputs."""
    outputs = vocab_size + 1
    return {
        "ctc_head/linear": 2 * T * config.d_model * outputs,
        f"{ELEMENTWISE}/ctc_head": T * outputs * (1 + SOFTMAX),
    }


def block_frame_rates(config: EncoderConfig, frames: int) -> tuple[int, ...]:
    """Frames each block runs at, given `frames` after the subsampling front."""
    half = (frames + 1) // 2
    start = config.time_reduce_idx if config.uses_unet else config.num_layers
    stop = config.time_recover_idx if config.time_recover_idx is not None else config.num_layers
    return tuple(half if start <= i < stop else frames for i in range(config.num_layers))


def _add(total: dict[str, int], part: dict[str, int]) -> None:
    for name, flops in part.items():
        total[name] = total.get(name, 0) + flops


def _by_component(terms: dict[str, int]) -> dict[str, int]:
    totals = dict.fromkeys(BLOCK_COMPONENTS, 0)
    for name, flops in terms.items():
        totals[name.split("/", 1)[0]] += flops
    return totals


def analytic_flops(config: EncoderConfig, frames: int, vocab_size: int = 128) -> FlopsBreakdown:
    """FLOPs of `AsrModel(config, vocab_size)` on one utterance of `frames` feature frames.

    Args:
        config: the encoder's configuration.
        frames: input feature frames (10 ms each; `frames_for_seconds(30.0)` is 3000).
        vocab_size: tokens without the CTC blank (the paper's SentencePiece model: 128).

    Returns:
        A `FlopsBreakdown` with method "analytic"; its `matmul_total` is what a counter counts.
    """
    if frames < 1 or vocab_size < 1:
        raise ValueError(f"frames={frames} and vocab_size={vocab_size} must be positive")
    terms, T = _subsampling_terms(config, frames)
    rates = block_frame_rates(config, T)
    blocks = []
    for index, rate in enumerate(rates):
        if config.uses_unet and index == config.time_reduce_idx:
            _add(terms, _reduction_terms(config, T))
        if index == config.time_recover_idx:
            _add(terms, _recovery_terms(config, T))
        block = _block_terms(config, rate)
        _add(terms, block)
        blocks.append(_by_component(block))
    _add(terms, _head_terms(config, rates[-1], vocab_size))
    return FlopsBreakdown("analytic", frames, terms, tuple(blocks), rates)
