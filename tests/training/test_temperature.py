"""Temperature scaling: fitted on validation logits, exact inside a linear head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from detector.training.temperature import fit_temperature, scale_linear


def _overconfident(scale: float, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(z): calibrated logits are ``z``; ``scale * z`` is not."""
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64)
    return y, scale * z


def test_an_overconfident_model_gets_its_scale_back() -> None:
    y, logits = _overconfident(6.0)
    fitted = fit_temperature(y, logits, data="synthetic")
    assert fitted.value == pytest.approx(6.0, rel=0.25)
    assert fitted.nll_after < fitted.nll_before and fitted.n == 400
    calibrated = fit_temperature(*_overconfident(1.0))
    assert calibrated.value == pytest.approx(1.0, rel=0.25)


def test_scaling_keeps_the_ranking_and_every_decision() -> None:
    y, logits = _overconfident(6.0)
    t = fit_temperature(y, logits).value
    before, after = 1 / (1 + np.exp(-logits)), 1 / (1 + np.exp(-logits / t))
    assert (np.argsort(before, kind="stable") == np.argsort(after, kind="stable")).all()
    threshold = 0.999
    moved = 1 / (1 + np.exp(-np.log(threshold / (1 - threshold)) / t))
    assert ((before >= threshold) == (after >= moved)).all()


def test_a_linear_head_divided_by_t_gives_logit_over_t() -> None:
    torch.manual_seed(0)
    head = nn.Linear(8, 1)
    x = torch.randn(5, 8)
    before = head(x)
    scale_linear(head, 4.0)
    assert torch.allclose(head(x), before / 4.0, atol=1e-6)
    with pytest.raises(ValueError):
        scale_linear(head, 0.0)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        fit_temperature([1, 1], [0.3, 2.0])  # one class
    with pytest.raises(ValueError):
        fit_temperature([0, 1], [0.0, np.inf])
    with pytest.raises(ValueError):
        fit_temperature([], [])
