"""Writing weight files the way a serving fleet needs them: atomically and readable.

``safetensors`` writes a new file with mode 0600 and in place. A service that runs as another
user than the one that trained (a Kubernetes pod reading a volume) then cannot open it, and a
watcher that reloads on change (``model.adapters_dir``) could read a half-written file. Here the
file is written next to its destination, given the permissions the umask allows (as ``open``
would), and renamed over the destination in one step.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

__all__ = ["write_safetensors"]


def _umask() -> int:
    """The process umask, read without changing it where Linux says it (other threads may be
    creating files); elsewhere set and restored at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def write_safetensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]
) -> None:
    """Write ``tensors`` + ``metadata`` to ``path`` atomically, mode ``0o666 & ~umask``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
