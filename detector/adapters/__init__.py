"""Few-shot adapters for new generators (LoRA, head-only or full tail fine-tuning) and
attribution: a base checkpoint plus adapter files, each naming the generator it detects."""

from detector.adapters.file import Adapter, AdapterMetadata, load_adapter, save_adapter
from detector.adapters.multi import AdapterScore, Attribution, combine

__all__ = [
    "Adapter",
    "AdapterMetadata",
    "AdapterScore",
    "Attribution",
    "combine",
    "load_adapter",
    "save_adapter",
]
