"""Attention-based Feature Fusion Module (AFFM, paper section 3.4).

Post-norm transformer encoder layers without positional embedding or dropout::

    x = LayerNorm(x + MHA(x, x, x))
    x = LayerNorm(x + Linear(ReLU(Linear(x))))

Parameter names match ``torch.nn.TransformerEncoderLayer`` (``self_attn.in_proj_weight``,
``linear1``, ``linear2``, ``norm1``, ``norm2``), so state dicts of either load into the other.
The fused vector is the output token at the global position (the last token).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AFFM", "FusionLayer"]


class FusionLayer(nn.Module):
    """One post-norm encoder layer that also returns its head-averaged attention."""

    def __init__(self, dim: int = 128, heads: int = 4, ff_dim: int = 128) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=0.0, batch_first=True)
        self.linear1 = nn.Linear(dim, ff_dim)
        self.linear2 = nn.Linear(ff_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, T, D] -> (y [B, T, D], attention [B, T, T])`` (rows: queries)."""
        attended, weights = self.self_attn(x, x, x, need_weights=True, average_attn_weights=True)
        x = self.norm1(x + attended)
        x = self.norm2(x + self.linear2(F.relu(self.linear1(x))))
        return x, weights


class AFFM(nn.Module):
    """Fuses ``T`` tokens; returns the last (global) token and its attention over all tokens."""

    def __init__(self, dim: int = 128, heads: int = 4, ff_dim: int = 128, depth: int = 3) -> None:
        super().__init__()
        self.layers = nn.ModuleList(FusionLayer(dim, heads, ff_dim) for _ in range(depth))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse tokens.

        Args:
            tokens: ``[B, T, D]``, patch tokens first, the global token last.

        Returns:
            fused: ``[B, D]`` the output at the global token.
            attention: ``[B, T]`` the attention the global token pays to each token in the last
                layer, averaged over heads (sums to 1).
        """
        x = tokens
        weights = tokens.new_empty(0)
        for layer in self.layers:
            x, weights = layer(x)
        return x[:, -1], weights[:, -1].float()
