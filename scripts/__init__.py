"""Scripts outside the library, by purpose; run them from the repository root as modules
(``python -m scripts.bench.bench_pipeline ...``) with the project installed (``make install``):

- ``demo.py``: the end-to-end demo (``make demo``);
- ``bench/``: benchmarks (detector, pipeline, exactly-once, replay, soak, threads, provenance,
  adapters) and the GPU session (``bench/gpu_bench.sh``);
- ``tools/``: helpers for CI and tests (``ensure-helm.sh``, a throwaway PKI and C2PA signer);
- ``adapt_study.py``, ``generalization/``: research studies.
"""
