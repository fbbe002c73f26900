"""The decision band chosen on validation scores: edges by error rate, stored in the checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from detector import CheckpointError
from detector.checkpoint import CheckpointMetadata, load_checkpoint, read_metadata, save_checkpoint
from detector.model import ModelConfig, build_model
from detector.training.calibration import decision_band, threshold_at_fpr
from tests.training.conftest import TINY


def test_edges_keep_the_error_rates_on_random_overlapping_scores() -> None:
    rng = np.random.default_rng(0)
    real = rng.beta(2, 5, 400)
    fake = rng.beta(5, 2, 300)
    t = threshold_at_fpr(real, 0.05, np.r_[real, fake])
    band = decision_band(real, fake, t, max_fpr=0.01, min_tpr=0.95)
    assert (real >= band.synthetic_from).mean() <= 0.01
    assert (fake >= band.real_below).mean() >= 0.95
    assert band.real_below <= t <= band.synthetic_from and not band.crossed
    # the edges are the tightest ones: moving either past the next score breaks its rate
    lower_high = real[real < band.synthetic_from].max()
    higher_low = fake[fake >= band.real_below].min()
    assert (real >= lower_high).mean() > 0.01
    assert (fake > higher_low).mean() < 0.95
    assert (band.fpr, band.fake_above_real_edge) == (
        (real >= band.synthetic_from).mean(),
        (fake >= band.real_below).mean(),
    )
    assert band.n_real == 400 and band.n_fake == 300


def test_crossing_edges_span_the_gap_and_keep_both_bounds() -> None:
    real = np.linspace(0.0, 0.3, 100)
    fake = np.linspace(0.7, 1.0, 100)
    band = decision_band(real, fake, 0.5)
    assert band.crossed
    # uncrossed, real_below would sit under the 5th fake (0.715) and synthetic_from over the
    # 2nd-highest real (0.297): swapped, each still holds its own error bound
    assert band.real_below == pytest.approx((real[-2] + real[-1]) / 2)
    assert band.synthetic_from == pytest.approx((fake[4] + fake[5]) / 2)
    assert band.real_below_real_edge == 0.99 and band.fake_synthetic == 0.95
    assert band.fpr == 0.0 and band.fake_above_real_edge == 1.0


def test_edges_stay_inside_0_1_and_contain_the_threshold() -> None:
    real = np.r_[np.zeros(50), np.ones(1)]
    fake = np.ones(50)
    band = decision_band(real, fake, 0.999)
    assert 0.0 < band.real_below < band.synthetic_from < 1.0
    assert band.real_below <= 0.999 <= band.synthetic_from


def test_band_round_trips_through_a_checkpoint(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = build_model(ModelConfig(arch="global_only", backbone=TINY, patch_strategy="none"))
    meta = decision_band([0.1, 0.2, 0.3], [0.6, 0.8, 0.9], 0.45, data="val").to_dict()
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, CheckpointMetadata(threshold=0.45, decision_band=meta))
    raw = read_metadata(path)
    assert raw["decision_band"]["max_fpr"] == 0.01 and raw["decision_band"]["data"] == "val"
    _, loaded = load_checkpoint(path)
    assert loaded.band_edges() == (meta["real_below"], meta["synthetic_from"])
    assert CheckpointMetadata().band_edges() is None


@pytest.mark.parametrize("band", [{"real_below": 0.6, "synthetic_from": 0.4}, {"x": 1}])
def test_a_stored_band_that_hides_an_outcome_is_refused(tmp_path, band) -> None:  # type: ignore[no-untyped-def]
    model = build_model(ModelConfig(arch="global_only", backbone=TINY, patch_strategy="none"))
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, CheckpointMetadata(decision_band=band))
    with pytest.raises(CheckpointError, match="decision_band"):
        load_checkpoint(path)
