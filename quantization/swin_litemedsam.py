"""Swin-LiteMedSAM in PyTorch: Swin encoder + SAM prompt encoder + skip-connected mask decoder (SPEC B).

Written from ``shared/SPEC.md`` sections B.1-B.3 (not from the official code). Module and parameter
names follow the official state_dict (SPEC Appendix 2) so that the official checkpoint loads strictly
once the unused ``mask_decoder.prompt1.*`` / ``prompt2.*`` blocks are dropped; the key *order* is the
official one too (``image_encoder``, ``mask_decoder``, ``prompt_encoder``).

Frames: "256-space" is the padded 256x256 network input (x = column, y = row, pixels).

* :class:`SwinTransformer` — image (B,3,256,256) in [0,1] -> (embedding (B,256,64,64), [f0, f1, f2, f3]).
* :class:`SkipMaskDecoder` — the SAM token machinery of :class:`~quantization.sam_parts.MaskDecoderBase`
  with the U-Net-like upscaling path (``neck``, ``output_upscaling1``, ``output_upscaling2``).
* :func:`load_swin_litemedsam` — checkpoint loader (raw state_dict or wrapped under ``model``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import CheckpointError, load_strict
from .litemedsam import PatchEmbed
from .sam_parts import Conv2d_BN, LayerNorm2d, MaskDecoderBase, PromptEncoder

IMG_SIZE = 256
WINDOW = 8
HEAD_DIM = 32
#: finite stand-in for -inf in the shift masks (see :func:`finite_shift_masks`)
MASK_FINITE = -1e4

# --------------------------------------------------------------------------------------------
# Shift masks and relative positions (SPEC B.1)
# --------------------------------------------------------------------------------------------


def shift_masks(window: int = WINDOW, displacement: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The two (w², w²) float32 shift masks of a shifted block: (upper_lower, left_right).

    Token index inside a window = row·w + col. ``upper_lower`` is −inf where exactly one of
    (query row ≥ w − d, key row ≥ w − d) holds, ``left_right`` likewise for columns; 0 elsewhere.
    """
    d = window // 2 if displacement is None else displacement
    rows = np.arange(window * window) // window
    cols = np.arange(window * window) % window
    lower = rows >= window - d
    right = cols >= window - d
    ul = np.where(lower[:, None] != lower[None, :], -np.inf, 0.0).astype(np.float32)
    lr = np.where(right[:, None] != right[None, :], -np.inf, 0.0).astype(np.float32)
    return ul, lr


def relative_indices(window: int = WINDOW) -> torch.Tensor:
    """(w², w², 2) int64: [i, j] = (row_j − row_i + w − 1, col_j − col_i + w − 1) (key minus query)."""
    idx = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"), -1).reshape(-1, 2)
    return idx[None, :, :] - idx[:, None, :] + window - 1


# --------------------------------------------------------------------------------------------
# Swin encoder (SPEC B.1)
# --------------------------------------------------------------------------------------------


class Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return x + self.fn(x)


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.norm(x))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        return self.net(x)


class WindowAttention(nn.Module):
    """(Shifted) window attention on channels-last (B,H,W,C); head dim 32, shared relative bias table."""

    def __init__(self, dim: int, heads: int, shifted: bool, window: int = WINDOW, head_dim: int = HEAD_DIM):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim, self.window, self.shifted = heads, head_dim, window, shifted
        self.scale = head_dim ** -0.5
        self.displacement = window // 2
        if shifted:
            # frozen Parameters (not buffers) as in the official model: same state_dict order
            ul, lr = shift_masks(window, self.displacement)
            self.upper_lower_mask = nn.Parameter(torch.from_numpy(ul), requires_grad=False)
            self.left_right_mask = nn.Parameter(torch.from_numpy(lr), requires_grad=False)
        self.pos_embedding = nn.Parameter(torch.zeros(2 * window - 1, 2 * window - 1))
        self.register_buffer("rel_idx", relative_indices(window), persistent=False)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def window_mask(self, nh: int, nw: int) -> torch.Tensor:
        """(nh·nw, w², w²) additive mask: last row of windows gets upper_lower, last column left_right.

        Built with concatenation and broadcast addition only (0·−inf would be NaN).
        """
        ul, lr = self.upper_lower_mask, self.left_right_mask
        n = ul.shape[0]
        zeros = torch.zeros_like(ul)
        rows = torch.cat([zeros.expand(nh - 1, 1, n, n), ul.expand(1, 1, n, n)], dim=0)   # (nh,1,n,n)
        cols = torch.cat([zeros.expand(1, nw - 1, n, n), lr.expand(1, 1, n, n)], dim=1)   # (1,nw,n,n)
        return (rows + cols).reshape(nh * nw, n, n)

    def forward(self, x):
        d, ws, h, hd = self.displacement, self.window, self.heads, self.head_dim
        if self.shifted:
            x = torch.roll(x, shifts=(-d, -d), dims=(1, 2))
        b, H, W, _ = x.shape
        nh, nw = H // ws, W // ws
        qkv = self.to_qkv(x).reshape(b, nh, ws, nw, ws, 3, h, hd)
        qkv = qkv.permute(5, 0, 6, 1, 3, 2, 4, 7).reshape(3, b, h, nh * nw, ws * ws, hd)
        q, k, v = qkv[0], qkv[1], qkv[2]
        dots = (q @ k.transpose(-1, -2)) * self.scale
        dots = dots + self.pos_embedding[self.rel_idx[:, :, 0], self.rel_idx[:, :, 1]]
        if self.shifted:
            dots = dots + self.window_mask(nh, nw)
        out = dots.softmax(dim=-1) @ v                                     # (b, h, nWin, w², hd)
        out = out.reshape(b, h, nh, nw, ws, ws, hd).permute(0, 2, 4, 3, 5, 1, 6).reshape(b, H, W, h * hd)
        out = self.to_out(out)
        if self.shifted:
            out = torch.roll(out, shifts=(d, d), dims=(1, 2))
        return out


class SwinBlock(nn.Module):
    """x + WindowAttention(LN x); depthwise Conv2d_BN 3x3 (no residual); x + MLP(LN x). Channels-last."""

    def __init__(self, dim: int, heads: int, shifted: bool, window: int = WINDOW):
        super().__init__()
        self.attention_block = Residual(PreNorm(dim, WindowAttention(dim, heads, shifted, window)))
        self.local_conv = Conv2d_BN(dim, dim, 3, 1, 1, groups=dim)
        self.mlp_block = Residual(PreNorm(dim, FeedForward(dim, 4 * dim)))

    def forward(self, x):
        x = self.attention_block(x)
        x = self.local_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.mlp_block(x)


class PatchMerging(nn.Module):
    """Unfold f×f patches (feature index c·f² + ky·f + kx) -> Linear with bias; NCHW in, NHWC out."""

    def __init__(self, cin: int, cout: int, factor: int):
        super().__init__()
        self.factor = factor
        self.linear = nn.Linear(cin * factor * factor, cout)

    def forward(self, x):
        b, c, H, W = x.shape
        f = self.factor
        x = x.reshape(b, c, H // f, f, W // f, f).permute(0, 2, 4, 1, 3, 5).reshape(b, H // f, W // f, c * f * f)
        return self.linear(x)


class StageModule(nn.Module):
    """Patch merging + pairs of (regular, shifted) Swin blocks; NCHW in, NCHW out."""

    def __init__(self, cin: int, dim: int, layers: int, factor: int, heads: int, window: int = WINDOW):
        super().__init__()
        assert layers % 2 == 0, "blocks come in (regular, shifted) pairs"
        self.downsample = PatchMerging(cin, dim, factor)
        self.blocks = nn.ModuleList(
            nn.ModuleList([SwinBlock(dim, heads, False, window), SwinBlock(dim, heads, True, window)])
            for _ in range(layers // 2))

    def forward(self, x):
        x = self.downsample(x)
        for regular, shifted in self.blocks:
            x = shifted(regular(x))
        return x.permute(0, 3, 1, 2)


class SwinTransformer(nn.Module):
    """Swin encoder: (B,3,256,256) in [0,1] -> (embedding (B,256,64,64), [f0, f1, f2, f3]).

    f0 (B,128,128,128), f1 (B,160,64,64), f2 (B,320,64,64), f3 (B,320,64,64); the embedding is
    the TinyViT-style neck applied to f3.
    """

    def __init__(self, hidden_dims=(64, 128, 160, 320), layers=(2, 2, 6, 2), heads=(2, 4, 5, 10),
                 factors=(2, 2, 1, 1), window: int = WINDOW):
        super().__init__()
        # stage i maps hidden_dims[i] -> hidden_dims[i + 1] channels (the last stage keeps 320)
        self.patch_embed = PatchEmbed(3, hidden_dims[0])
        outs = tuple(hidden_dims[1:]) + (hidden_dims[-1],)
        for i in range(4):
            setattr(self, f"stage{i + 1}",
                    StageModule(hidden_dims[i], outs[i], layers[i], factors[i], heads[i], window))
        self.neck = nn.Sequential(
            nn.Conv2d(outs[3], 256, 1, bias=False), LayerNorm2d(256),
            nn.Conv2d(256, 256, 3, padding=1, bias=False), LayerNorm2d(256))

    def forward(self, x):
        x = self.patch_embed(x)
        feats = []
        for stage in (self.stage1, self.stage2, self.stage3, self.stage4):
            x = stage(x)
            feats.append(x)
        return self.neck(x), feats


# --------------------------------------------------------------------------------------------
# Skip-connected mask decoder (SPEC B.2)
# --------------------------------------------------------------------------------------------


class SkipMaskDecoder(MaskDecoderBase):
    """SAM mask decoder whose upscaling path takes skip connections from the encoder stages.

    ``features`` passed to :meth:`forward` / :meth:`upscale` is either the encoder's
    ``[f0, f1, f2, f3]`` (the skip neck is computed here) or the hoisted pair ``(f0, n64)`` with
    ``n64 = skip_neck(f1, f2, f3)`` (SPEC E; the neck does not depend on the prompt).
    """

    def __init__(self, transformer_dim: int = 256, num_multimask_outputs: int = 3,
                 feature_dims=(128, 160, 320, 320)):
        super().__init__(transformer_dim, num_multimask_outputs)
        # re-register the heads after the skip path so that the state_dict order is the official one
        hyper = self._modules.pop("output_hypernetworks_mlps")
        iou_head = self._modules.pop("iou_prediction_head")
        d = transformer_dim
        self.neck = nn.Sequential(
            nn.Conv2d(sum(feature_dims[1:]), d, 1, bias=False), LayerNorm2d(d),
            nn.Conv2d(d, d, 3, padding=1, bias=False), LayerNorm2d(d))
        self.output_upscaling1 = nn.Sequential(
            nn.Conv2d(2 * d, d, 1), LayerNorm2d(d), nn.GELU(),
            nn.ConvTranspose2d(d, d // 2, 2, stride=2), nn.GELU())
        self.output_upscaling2 = nn.Sequential(
            nn.Conv2d(d // 2 + feature_dims[0], d // 4, 1), LayerNorm2d(d // 4), nn.GELU(),
            nn.ConvTranspose2d(d // 4, d // 8, 2, stride=2), nn.GELU())
        self.output_hypernetworks_mlps = hyper
        self.iou_prediction_head = iou_head

    def skip_neck(self, f1, f2, f3):
        """concat(f1, f2, f3) (B,800,64,64) -> N64 (B,256,64,64); prompt independent."""
        return self.neck(torch.cat([f1, f2, f3], dim=1))

    def upscale(self, src, features):
        if len(features) == 4:
            f0, n64 = features[0], self.skip_neck(*features[1:])
        elif len(features) == 2:
            f0, n64 = features
        else:
            raise ValueError("features must be [f0, f1, f2, f3] or (f0, n64)")
        if f0.shape[0] != src.shape[0]:  # several prompts on one image: batch the features
            f0 = f0.expand(src.shape[0], -1, -1, -1)
            n64 = n64.expand(src.shape[0], -1, -1, -1)
        x = self.output_upscaling1(torch.cat([src, n64], dim=1))
        return self.output_upscaling2(torch.cat([x, f0], dim=1))


# --------------------------------------------------------------------------------------------
# Whole model
# --------------------------------------------------------------------------------------------


class SwinLiteMedSAM(nn.Module):
    """Container with the official submodule names (and order) ``image_encoder``, ``mask_decoder``,
    ``prompt_encoder``."""

    def __init__(self):
        super().__init__()
        self.image_encoder = SwinTransformer()
        self.mask_decoder = SkipMaskDecoder()
        self.prompt_encoder = PromptEncoder(embed_dim=256, image_embedding_size=(64, 64),
                                            input_image_size=(IMG_SIZE, IMG_SIZE), mask_in_chans=16)

    @torch.no_grad()
    def encode(self, image):
        """image (B,3,256,256) in [0,1] -> (embedding (B,256,64,64), [f0, f1, f2, f3])."""
        return self.image_encoder(image)

    @torch.no_grad()
    def prompt(self, box, points=None, scribble=None):
        """box (B,4) XYXY; points (coords (B,N,2), labels (B,N)); scribble (B,1,256,256) 0/1,
        all in 256-space -> (sparse (B,N+2,256), dense (B,256,64,64)).

        As in the official inference, a box is always given (so no padding point is appended) and
        the scribble always goes through ``mask_downscaling`` (an absent scribble is all zeros).
        """
        if scribble is None:
            scribble = torch.zeros(box.shape[0], 1, IMG_SIZE, IMG_SIZE)
        return self.prompt_encoder(points=points, boxes=box, masks=scribble)

    @torch.no_grad()
    def decode(self, embedding, features, box, points=None, scribble=None, multimask_output: bool = False):
        """embedding (B,256,64,64); features [f0..f3] or (f0, n64); prompts as in :meth:`prompt`.

        Returns (low-res logits (B,1,256,256), IoU (B,1)).
        """
        sparse, dense = self.prompt(box, points, scribble)
        return self.mask_decoder(embedding, self.prompt_encoder.get_dense_pe(), sparse, dense,
                                 multimask_output=multimask_output, features=features)

    @torch.no_grad()
    def forward(self, image, box, points=None, scribble=None):
        emb, feats = self.encode(image)
        return self.decode(emb, feats, box, points, scribble)


# --------------------------------------------------------------------------------------------
# Checkpoint loading (SPEC D.2)
# --------------------------------------------------------------------------------------------

UNUSED_PREFIXES = ("mask_decoder.prompt1.", "mask_decoder.prompt2.")


def unwrap_state_dict(obj) -> dict[str, torch.Tensor]:
    """A raw state_dict, or one wrapped under ``model`` / ``state_dict``; strips a ``module.`` prefix."""
    sd = obj
    for key in ("model", "state_dict"):
        if isinstance(sd, Mapping) and key in sd and isinstance(sd[key], Mapping):
            sd = sd[key]
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"checkpoint is not a state_dict (got {type(sd).__name__})")
    return {str(k).removeprefix("module."): v for k, v in sd.items()}


def _is_shift_mask(name: str) -> bool:
    return name.endswith(("upper_lower_mask", "left_right_mask"))


def prepare_state_dict(sd: Mapping[str, torch.Tensor], model: SwinLiteMedSAM,
                       masks: str = "file") -> dict[str, torch.Tensor]:
    """Map a checkpoint's state_dict onto ``model``'s keys (SPEC D.2 loader rules).

    Drops ``mask_decoder.prompt1.*``/``prompt2.*``; fills ``*.num_batches_tracked`` from the model
    when the file has none; shift masks come from the file (``masks="file"``, after checking that
    their −inf pattern is the B.1 rule) or are regenerated (``masks="rule"``, or when absent).
    Everything else must match exactly (checked by :func:`load_strict`).
    """
    if masks not in ("file", "rule"):
        raise ValueError("masks must be 'file' or 'rule'")
    sd = unwrap_state_dict(sd)
    if "mask_decoder.output_upscaling.0.weight" in sd and "mask_decoder.neck.0.weight" not in sd:
        raise CheckpointError("this checkpoint has a plain SAM mask decoder (mask_decoder.output_upscaling.*), "
                              "not the skip-connection decoder of Swin-LiteMedSAM")
    own = model.state_dict()
    out = {k: v for k, v in sd.items() if not k.startswith(UNUSED_PREFIXES)}
    for k, v in own.items():
        if k.endswith("num_batches_tracked") and k not in out:
            out[k] = v.clone()
        elif _is_shift_mask(k):
            if masks == "rule" or k not in out:
                out[k] = v.clone()  # the model's masks are built from the B.1 rule
            else:
                got = out[k]
                if tuple(got.shape) != tuple(v.shape) or not torch.equal(got.float() <= -1e3, v == float("-inf")) \
                        or bool((got.float()[v == 0] != 0).any()):
                    raise CheckpointError(f"{k} in the checkpoint is not the SPEC B.1 shift mask")
    return out


def load_swin_litemedsam(path_or_state, masks: str = "file") -> SwinLiteMedSAM:
    """Swin-LiteMedSAM in eval mode from a .pth path or an already loaded (possibly wrapped) state_dict.

    Raises :class:`~quantization.checkpoint.CheckpointError` listing missing/unexpected/wrong-shape
    keys when the file does not match.
    """
    if isinstance(path_or_state, (str, Path)):
        path = Path(path_or_state)
        if not path.is_file():
            raise CheckpointError(f"checkpoint not found: {path}")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - pickle/zip errors of a foreign file: one clear message
            raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e
    else:
        obj = path_or_state
    model = SwinLiteMedSAM()
    return load_strict(model, prepare_state_dict(obj, model, masks))


@torch.no_grad()
def finite_shift_masks(model: nn.Module, value: float = MASK_FINITE) -> nn.Module:
    """Replace −inf in every shift mask by ``value`` (in place; for export / fp16 robustness).

    The logits stay O(10), so exp(value + logit) underflows to exactly 0 in float32 and the results
    do not change (checked by the parity tests).
    """
    for m in model.modules():
        if isinstance(m, WindowAttention) and m.shifted:
            for p in (m.upper_lower_mask, m.left_right_mask):
                p.copy_(torch.where(torch.isinf(p), torch.full_like(p, value), p))
    return model
