"""Recipes that produce the shipped checkpoints, as tested modules (not research scripts).

- :mod:`detector.recipes.forensic_default`: ``glff-forensic-mobilenet_v2``, the default
  checkpoint (``python -m detector.recipes.forensic_default --help``);
- :mod:`detector.recipes.forensic_views` and :mod:`detector.recipes.forensic_fusion`: its
  parts, which the research study (``scripts/generalization/forensic_study.py``) reuses.
"""
