"""Attention-based Feature Fusion Module: shapes, readout, equivalence with PyTorch's encoder."""

from __future__ import annotations

import torch
from torch import nn

from detector.affm import AFFM


def test_shapes_and_attention_is_a_distribution() -> None:
    affm = AFFM().eval()
    fused, attention = affm(torch.randn(5, 7, 128))
    assert fused.shape == (5, 128) and attention.shape == (5, 7)
    assert torch.allclose(attention.sum(1), torch.ones(5), atol=1e-5)
    assert (attention >= 0).all()


def test_same_parameters_and_output_as_post_norm_transformer_encoder() -> None:
    torch.manual_seed(0)
    affm = AFFM(dim=128, heads=4, ff_dim=128, depth=3).eval()
    layer = nn.TransformerEncoderLayer(128, 4, 128, dropout=0.0, batch_first=True)
    reference = nn.TransformerEncoder(layer, 3, enable_nested_tensor=False).eval()
    reference.load_state_dict(affm.state_dict(), strict=True)  # identical names and shapes
    tokens = torch.randn(3, 7, 128)
    fused, _ = affm(tokens)
    with torch.no_grad():
        expected = reference(tokens)[:, -1]
    assert torch.allclose(fused, expected, atol=1e-5)


def test_readout_is_the_global_token_and_patch_order_does_not_matter() -> None:
    torch.manual_seed(1)
    affm = AFFM().eval()
    tokens = torch.randn(2, 7, 128)
    fused, attention = affm(tokens)
    permuted = tokens[:, [2, 0, 1, 5, 3, 4, 6]]  # shuffle patches, keep global last
    fused_p, attention_p = affm(permuted)
    assert torch.allclose(fused, fused_p, atol=1e-5)
    assert torch.allclose(attention[:, [2, 0, 1, 5, 3, 4, 6]], attention_p, atol=1e-5)
    other = tokens.clone()
    other[:, -1] = torch.randn(2, 128)
    assert not torch.allclose(affm(other)[0], fused)  # the global token changes the readout


def test_parameter_count_per_layer() -> None:
    # in_proj 3*128*128+3*128, out_proj 128*128+128, 2 FF 128*128+128, 2 LayerNorms 2*256
    assert sum(p.numel() for p in AFFM().parameters()) == 3 * 99_584
