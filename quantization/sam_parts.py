"""SAM building blocks shared by LiteMedSAM and Swin-LiteMedSAM (SPEC section 0, A.2, A.3).

Our own PyTorch implementation, written from ``shared/SPEC.md``; module and parameter names follow
the official state_dict keys so that checkpoints load with ``strict=True``.

Frames: "256-space" is the padded 256x256 network input (x = column, y = row, pixels).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class Conv2d_BN(nn.Module):  # noqa: N801 - name mirrors the official key prefix
    """Conv2d without bias followed by BatchNorm2d (eps 1e-5); keys ``c.*`` and ``bn.*``."""

    def __init__(self, cin: int, cout: int, ks: int = 1, stride: int = 1, pad: int = 0, groups: int = 1):
        super().__init__()
        self.c = nn.Conv2d(cin, cout, ks, stride, pad, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.c(x))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor (biased variance, eps 1e-6)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class MLP(nn.Module):
    """L linear layers in -> hidden ... -> out with ReLU between them (none after the last)."""

    def __init__(self, cin: int, hidden: int, cout: int, num_layers: int):
        super().__init__()
        dims = [cin] + [hidden] * (num_layers - 1)
        outs = [hidden] * (num_layers - 1) + [cout]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims, outs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


# --------------------------------------------------------------------------------------------
# Prompt encoder (SPEC A.2)
# --------------------------------------------------------------------------------------------


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features; the Gaussian matrix is a checkpoint buffer, never regenerated."""

    def __init__(self, num_pos_feats: int = 128):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.zeros(2, num_pos_feats))

    def pe_encoding(self, coords: torch.Tensor) -> torch.Tensor:
        """coords (..., 2) normalised to [0, 1] (x, y) -> (..., 256) as [sin | cos]."""
        coords = 2 * coords - 1
        coords = coords @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def dense(self, size: tuple[int, int]) -> torch.Tensor:
        """Dense PE of an (h, w) grid -> (256, h, w), cell centres at (j+0.5)/w, (i+0.5)/h."""
        h, w = size
        grid = torch.ones((h, w), dtype=torch.float32, device=self.positional_encoding_gaussian_matrix.device)
        y = (grid.cumsum(dim=0) - 0.5) / h
        x = (grid.cumsum(dim=1) - 0.5) / w
        return self.pe_encoding(torch.stack([x, y], dim=-1)).permute(2, 0, 1)

    def with_coords(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """coords (B, N, 2) in pixels of an image of (h, w) -> (B, N, 256)."""
        coords = coords.clone()
        coords[:, :, 0] = coords[:, :, 0] / image_size[1]
        coords[:, :, 1] = coords[:, :, 1] / image_size[0]
        return self.pe_encoding(coords.to(torch.float32))


class PromptEncoder(nn.Module):
    """SAM prompt encoder: points/box -> sparse tokens (B, N, 256); mask -> dense (B, 256, 64, 64)."""

    def __init__(self, embed_dim: int = 256, image_embedding_size=(64, 64), input_image_size=(256, 256),
                 mask_in_chans: int = 16):
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = tuple(input_image_size)
        self.image_embedding_size = tuple(image_embedding_size)
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        # 0 = negative point, 1 = positive point, 2 / 3 = box corners
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """(1, 256, 64, 64) positional encoding of the embedding grid (constant)."""
        return self.pe_layer.dense(self.image_embedding_size).unsqueeze(0)

    def embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """points (B, N, 2) float in 256-space, labels (B, N) in {-1, 0, 1} -> (B, N[+1], 256).

        Written with arithmetic masks instead of boolean indexing so that it traces to a static
        OpenVINO graph; the result equals SAM's indexed assignment.
        """
        points = points + 0.5
        if pad:
            points = torch.cat([points, torch.zeros_like(points[:, :1])], dim=1)
            labels = torch.cat([labels, -torch.ones_like(labels[:, :1])], dim=1)
        pe = self.pe_layer.with_coords(points, self.input_image_size)
        lab = labels.to(pe.dtype).unsqueeze(-1)
        is_pad = (lab == -1).to(pe.dtype)
        is_neg = (lab == 0).to(pe.dtype)
        is_pos = (lab == 1).to(pe.dtype)
        return (pe * (1 - is_pad) + is_pad * self.not_a_point_embed.weight
                + is_neg * self.point_embeddings[0].weight + is_pos * self.point_embeddings[1].weight)

    def embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """boxes (B, 4) float XYXY in 256-space -> (B, 2, 256) corner tokens."""
        boxes = boxes + 0.5
        corners = boxes.reshape(-1, 2, 2)
        emb = self.pe_layer.with_coords(corners, self.input_image_size)
        return torch.stack([emb[:, 0] + self.point_embeddings[2].weight[0],
                            emb[:, 1] + self.point_embeddings[3].weight[0]], dim=1)

    def forward(self, points=None, boxes=None, masks=None):
        """Returns (sparse (B, N, 256), dense (B, 256, 64, 64)).

        points: optional tuple (coords (B, N, 2), labels (B, N)); boxes: optional (B, 4);
        masks: optional (B, 1, 256, 256) mask prompt.
        """
        bs = 1
        if points is not None:
            bs = points[0].shape[0]
        elif boxes is not None:
            bs = boxes.shape[0]
        elif masks is not None:
            bs = masks.shape[0]
        parts = []
        if points is not None:
            parts.append(self.embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            parts.append(self.embed_boxes(boxes))
        if parts:
            sparse = torch.cat(parts, dim=1)
        else:
            sparse = torch.empty((bs, 0, self.embed_dim), device=self.no_mask_embed.weight.device)
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            h, w = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(bs, -1, h, w)
        return sparse, dense


# --------------------------------------------------------------------------------------------
# Two-way transformer and mask decoder (SPEC A.3)
# --------------------------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head attention with an optional down-projection of the internal dim (r)."""

    def __init__(self, dim: int, num_heads: int, downsample_rate: int = 1):
        super().__init__()
        self.internal_dim = dim // downsample_rate
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, self.internal_dim)
        self.k_proj = nn.Linear(dim, self.internal_dim)
        self.v_proj = nn.Linear(dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q, k, v, *, qp=None, kp=None, vp=None) -> torch.Tensor:
        """q/k/v (B, N, dim); ``qp``/``kp``/``vp`` (B, N, internal_dim) are already projected
        inputs (``q_proj(q)`` etc., computed once per image by the decoder prefix) and replace them."""
        q = self._split(self.q_proj(q) if qp is None else qp)
        k = self._split(self.k_proj(k) if kp is None else kp)
        v = self._split(self.v_proj(v) if vp is None else vp)
        attn = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        out = attn.softmax(dim=-1) @ v
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))


class MLPBlock(nn.Module):
    def __init__(self, dim: int, mlp_dim: int):
        super().__init__()
        self.lin1 = nn.Linear(dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.relu(self.lin1(x)))


class TwoWayAttentionBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_dim: int, downsample: int, skip_first_layer_pe: bool):
        super().__init__()
        self.self_attn = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, num_heads, downsample)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, num_heads, downsample)
        self.skip_first_layer_pe = skip_first_layer_pe

    def prompt_free(self, keys, key_pe):
        """The projections of this block that depend on the image tokens only, valid while ``keys``
        are this block's input: (token->image k, token->image v, image->token q), each
        (B, 4096, internal_dim). For block 0 they depend on the image alone, so the engine computes
        them once per slice (the "decoder prefix") instead of once per prompt."""
        k = keys + key_pe
        t2i, i2t = self.cross_attn_token_to_image, self.cross_attn_image_to_token
        return t2i.k_proj(k), t2i.v_proj(keys), i2t.q_proj(k)

    def forward(self, queries, keys, query_pe, key_pe, pre=None):
        """``pre``: :meth:`prompt_free` of these ``keys`` (same values, computed beforehand) or None."""
        if self.skip_first_layer_pe:
            # block 0 replaces the queries (no residual): SAM's behaviour, kept for parity
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q = queries + query_pe
        if pre is None:
            k = keys + key_pe
            queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        else:
            queries = self.norm2(queries + self.cross_attn_token_to_image(q, None, None, kp=pre[0], vp=pre[1]))
        queries = self.norm3(queries + self.mlp(queries))
        q = queries + query_pe
        if pre is None:
            keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        else:
            keys = self.norm4(keys + self.cross_attn_image_to_token(None, q, queries, qp=pre[2]))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, depth: int = 2, dim: int = 256, num_heads: int = 8, mlp_dim: int = 2048,
                 downsample: int = 2):
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(dim, num_heads, mlp_dim, downsample, skip_first_layer_pe=(i == 0))
            for i in range(depth))
        self.final_attn_token_to_image = Attention(dim, num_heads, downsample)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image_embedding, image_pe, point_embedding, pre=None):
        """image_embedding/image_pe (B, C, h, w); point_embedding (B, N, C) -> (queries, keys).

        pre: block 0's :meth:`TwoWayAttentionBlock.prompt_free` of the same image tokens and
        positional encoding, or None to compute it here.
        """
        keys = image_embedding.flatten(2).permute(0, 2, 1)
        key_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = point_embedding
        for i, layer in enumerate(self.layers):
            queries, keys = layer(queries, keys, point_embedding, key_pe, pre=pre if i == 0 else None)
        attn = self.final_attn_token_to_image(queries + point_embedding, keys + key_pe, keys)
        return self.norm_final_attn(queries + attn), keys


class MaskDecoderBase(nn.Module):
    """Token machinery shared by the SAM decoder and the Swin skip decoder.

    Subclasses implement :meth:`upscale` (image tokens -> (B, 32, 256, 256)).
    """

    def __init__(self, transformer_dim: int = 256, num_multimask_outputs: int = 3):
        super().__init__()
        self.transformer = TwoWayTransformer(dim=transformer_dim)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens))
        self.iou_prediction_head = MLP(transformer_dim, 256, self.num_mask_tokens, 3)

    def upscale(self, src: torch.Tensor, features) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, image_embeddings, image_pe, sparse, dense, multimask_output: bool = False,
                features=None, only_first: bool = False, pre=None):
        """Returns (low-res logits (B, 1 or 3, 256, 256), IoU (B, 1 or 3)).

        ``only_first`` computes only mask token 0 (what ``multimask_output=False`` returns) —
        identical results, less work; used by the export wrappers. ``pre``: the transformer's
        :meth:`TwoWayAttentionBlock.prompt_free` of block 0 for ``image_embeddings + dense``
        (batch 1), or None.
        """
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        out_tokens = out_tokens.unsqueeze(0).expand(sparse.shape[0], -1, -1)
        tokens = torch.cat([out_tokens, sparse], dim=1)
        src = image_embeddings
        if src.shape[0] != tokens.shape[0]:
            src = torch.repeat_interleave(src, tokens.shape[0], dim=0)
        src = src + dense
        pos = torch.repeat_interleave(image_pe, tokens.shape[0], dim=0)
        b, c, h, w = src.shape
        if pre is not None and pre[0].shape[0] != tokens.shape[0]:
            pre = tuple(torch.repeat_interleave(p, tokens.shape[0], dim=0) for p in pre)
        hs, src = self.transformer(src, pos, tokens, pre=pre)
        iou_out = hs[:, 0, :]
        mask_out = hs[:, 1:1 + self.num_mask_tokens, :]
        up = self.upscale(src.transpose(1, 2).reshape(b, c, h, w), features)
        n = 1 if only_first else self.num_mask_tokens
        hyper = torch.stack([self.output_hypernetworks_mlps[i](mask_out[:, i, :]) for i in range(n)], dim=1)
        b, c, h, w = up.shape
        masks = (hyper @ up.reshape(b, c, h * w)).reshape(b, -1, h, w)
        iou = self.iou_prediction_head(iou_out)
        if multimask_output:
            return masks[:, 1:], iou[:, 1:]
        return masks[:, 0:1], iou[:, 0:1]


class MaskDecoder(MaskDecoderBase):
    """Plain SAM mask decoder (LiteMedSAM)."""

    def __init__(self, transformer_dim: int = 256, num_multimask_outputs: int = 3):
        super().__init__(transformer_dim, num_multimask_outputs)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )

    def upscale(self, src, features):
        return self.output_upscaling(src)
