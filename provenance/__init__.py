"""Provenance signals of an image, before any pixel is judged, and the moderator's decision.

Pure Python plus small native libraries (``c2pa-python``, ``pdqhash``, optionally
``invisible-watermark``): never imports torch or the messaging layer, never touches the
network. :class:`Extractor` reads C2PA content credentials, IPTC/XMP digital source type,
PNG generator text, EXIF/XMP software and (optionally) the SD/SDXL watermark, and computes
the PDQ hash; :func:`decide` turns a pixel score and those findings into
``synthetic | uncertain | real`` with reasons.
"""

from provenance.decision import CacheMatch, Decision, DecisionPolicy, Reason, decide
from provenance.extract import Extractor, ProvenanceConfig
from provenance.findings import AI_SOURCE_TYPES, Finding, PdqHash, ProvenanceReport, Unreadable
from provenance.pdq import pdq_hash

__all__ = [
    "AI_SOURCE_TYPES",
    "CacheMatch",
    "Decision",
    "DecisionPolicy",
    "Extractor",
    "Finding",
    "PdqHash",
    "ProvenanceConfig",
    "ProvenanceReport",
    "Reason",
    "Unreadable",
    "decide",
    "pdq_hash",
]
