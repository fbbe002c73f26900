"""Real-only zero-shot signal: forensic self-descriptions (Nguyen, Azizpour, Stamm, CVPR 2025).

Our own implementation of the published idea (no code or weights of the authors):

- :mod:`.filters`: a bank of 8 constrained prediction-error filters (15x15), learned on real
  photos only;
- :mod:`.describe`: per image or per box, a constrained least-squares model of the residuals
  at 3 scales; its coefficients are the image's self-description;
- :mod:`.density`: a Gaussian mixture of real photos' descriptions; the score is the
  negative log-likelihood as a z-score (higher = more synthetic);
- :mod:`.artifact`: the safetensors artifact and :class:`ZeroShotModel`;
- :mod:`.recipe` and :mod:`.cli` (fitting; scikit-learn from the ``train`` extra).

Inference needs only torch and numpy.
"""

from detector.zeroshot.artifact import FORMAT, ZeroShotModel, load_zeroshot, save_zeroshot
from detector.zeroshot.density import Density
from detector.zeroshot.describe import DescribeParams, describe_boxes, describe_image
from detector.zeroshot.filters import FilterBank, classical_filters

__all__ = [
    "FORMAT",
    "Density",
    "DescribeParams",
    "FilterBank",
    "ZeroShotModel",
    "classical_filters",
    "describe_boxes",
    "describe_image",
    "load_zeroshot",
    "save_zeroshot",
]
