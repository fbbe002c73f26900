"""Density of real photos' self-descriptions: PCA whitening, then a Gaussian mixture.

Inference is plain torch (:class:`Density`): the whitening, the mixture's weights, means and
precision Cholesky factors are tensors, and the score of a description is its negative
log-likelihood as a z-score against the real photos it was calibrated on (higher = less like
those photos = more likely synthetic). Fitting (:func:`fit_density`) uses scikit-learn's
``GaussianMixture`` (the ``train`` extra), imported only there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Density", "fit_density"]


@dataclass
class Density:
    """PCA-whitened Gaussian mixture with full covariances.

    mean: ``[D]``; proj: ``[D, d]`` (principal axes divided by their standard deviation);
    weights: ``[M]``; means: ``[M, d]``; prec_chol: ``[M, d, d]`` (``Sigma^-1 = L L'``);
    nll_mean, nll_std: the calibration reals' negative log-likelihood statistics.
    """

    mean: torch.Tensor
    proj: torch.Tensor
    weights: torch.Tensor
    means: torch.Tensor
    prec_chol: torch.Tensor
    nll_mean: float = 0.0
    nll_std: float = 1.0

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, D]`` descriptions -> ``[N, d]`` whitened components."""
        return (x.to(self.proj) - self.mean.to(self.proj)) @ self.proj

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, D]`` -> ``float64 [N]`` log-density of the whitened descriptions."""
        z = self.project(x).double()
        d = z.shape[1]
        diff = z[:, None, :] - self.means.double()[None]  # [N, M, d]
        y = torch.einsum("nmd,mde->nme", diff, self.prec_chol.double())
        log_det = self.prec_chol.double().diagonal(dim1=1, dim2=2).log().sum(dim=1)  # [M]
        log_comp = -0.5 * (y.pow(2).sum(dim=2) + d * math.log(2 * math.pi)) + log_det
        return torch.logsumexp(log_comp + self.weights.double().log(), dim=1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, D]`` -> ``float64 [N]`` z-scored negative log-likelihood."""
        return (-self.log_likelihood(x) - self.nll_mean) / self.nll_std

    def calibrate(self, x: torch.Tensor) -> None:
        """Set the z-score's mean and spread from real descriptions ``[N, D]``."""
        nll = -self.log_likelihood(x)
        self.nll_mean = float(nll.mean())
        self.nll_std = float(nll.std().clamp_min(1e-6)) if nll.numel() > 1 else 1.0

    def tensors(self, prefix: str = "density.") -> dict[str, torch.Tensor]:
        """The tensors to store, as ``float32``."""
        names = ("mean", "proj", "weights", "means", "prec_chol")
        return {prefix + k: getattr(self, k).float().contiguous() for k in names}

    @classmethod
    def from_tensors(
        cls,
        tensors: dict[str, torch.Tensor],
        nll_mean: float,
        nll_std: float,
        prefix: str = "density.",
    ) -> Density:
        """Inverse of :meth:`tensors`."""
        names = ("mean", "proj", "weights", "means", "prec_chol")
        fields = {k: tensors[prefix + k].float() for k in names}
        return cls(**fields, nll_mean=nll_mean, nll_std=nll_std)


def _pca(x: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and whitening projection ``[D, d]`` (``d <= min(N - 1, D)``)."""
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    d = max(1, min(dims, x.shape[0] - 1, vt.shape[0]))
    std = s[:d] / math.sqrt(max(1, x.shape[0] - 1))
    return mean, vt[:d].T / np.maximum(std, 1e-12)


def fit_density(
    x: np.ndarray | torch.Tensor,
    components: int = 4,
    pca_dims: int = 64,
    reg_covar: float = 1e-2,
    seed: int = 0,
    calibration: np.ndarray | torch.Tensor | None = None,
) -> Density:
    """Fit PCA whitening and a full-covariance Gaussian mixture on real descriptions ``[N, D]``.

    Args:
        components: mixture components (at most ``N // 2``).
        pca_dims: whitened dimensions kept.
        reg_covar: added to each covariance's diagonal (whitened units, so a fraction of the
            variance), for stability with few photos.
        calibration: real descriptions for the z-score (default: the fitting ones).
    """
    from sklearn.mixture import GaussianMixture  # type: ignore[import-untyped,unused-ignore]

    arr = np.asarray(x, dtype=np.float64)
    mean, proj = _pca(arr, pca_dims)
    z = (arr - mean) @ proj
    m = max(1, min(components, arr.shape[0] // 2))
    gmm = GaussianMixture(m, covariance_type="full", reg_covar=reg_covar, random_state=seed)
    gmm.fit(z)
    density = Density(
        mean=torch.from_numpy(mean).float(),
        proj=torch.from_numpy(proj).float(),
        weights=torch.from_numpy(gmm.weights_).float(),
        means=torch.from_numpy(gmm.means_).float(),
        prec_chol=torch.from_numpy(gmm.precisions_cholesky_).float(),
    )
    density.calibrate(torch.as_tensor(arr if calibration is None else np.asarray(calibration)))
    return density
