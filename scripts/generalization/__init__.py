"""Generalization studies: the LOFO protocol, recipes and tables.

Run from the repository root as ``python -m scripts.generalization.<name>``.
"""
