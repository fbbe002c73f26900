"""PDQ perceptual hash (Meta's reference C++ through ``pdqhash``), in HMA's hex form.

Hex and quality match what hasher-matcher-actioner (python-threatexchange ``pdq_hasher``)
produces for the same RGB pixels, so hashes can be banked and matched there. Hamming
distance <= 31 is HMA's default match threshold; near-duplicates of one picture (resized,
re-encoded, lightly cropped) usually land well inside it.
"""

from __future__ import annotations

import numpy as np

from provenance.findings import PdqHash

__all__ = ["pdq_hash"]


def pdq_hash(rgb: np.ndarray) -> PdqHash:
    """PDQ of ``rgb`` (``uint8 [H, W, 3]``): 256 bits as 64 hex characters, and quality."""
    import pdqhash

    bits, quality = pdqhash.compute(np.ascontiguousarray(rgb, dtype=np.uint8))
    value = int("".join("1" if b else "0" for b in bits), 2)
    return PdqHash(hex=f"{value:064x}", quality=int(quality))
