"""Helpers for CI and tests: ``ensure-helm.sh``, a throwaway PKI and C2PA signer."""
