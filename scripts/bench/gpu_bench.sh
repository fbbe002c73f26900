#!/usr/bin/env bash
# One GPU session for docs/detector.md: run from the repository root on an H100/H200 box with
# the project installed (make install). Everything goes to $OUT (default ./gpu-out).
#   OUT=/tmp/out bash scripts/bench/gpu_bench.sh          # about 10 minutes on one H100/H200
#   bash scripts/bench/gpu_bench.sh --dry                 # CPU, tiny sizes: checks the code paths
set -uo pipefail
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
PY="${PYTHON:-.venv/bin/python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
DRY=0; [[ "${1:-}" == "--dry" ]] && DRY=1
{ nvidia-smi || true; "$PY" -c "import torch; print(torch.__version__, torch.cuda.is_available())"; } > "$OUT/env.txt" 2>&1

if [[ $DRY == 1 ]]; then
  "$PY" -m scripts.bench.bench_detector --device cpu --backbones mobilenet_v2 --batch-sizes 1 \
    --images 1 --runtimes reference,torch --repeats 1 --threads 1 > "$OUT/bench_detector_dry.txt" 2>&1
  "$PY" -m scripts.bench.gpu_bench --dry --out "$OUT" > "$OUT/gpu_bench.txt" 2>&1
  echo "dry run: exit codes ok; see $OUT"; exit 0
fi

# 1. old engine / engines / naive / floor tables, bf16 and fp16, batch 1..256 (256 images per row)
SIZES=256x256,384x512,512x384,320x480,448x448,300x400
timeout 300 "$PY" -m scripts.bench.bench_detector --device cuda --precision bf16 \
  --backbones mobilenet_v2,resnet50 --batch-sizes 1,8,32,64,128,256 --images 256 --sizes "$SIZES" \
  --runtimes reference,torch,torch-cl --repeats 3 > "$OUT/bench_detector_bf16.txt" 2>&1
timeout 120 "$PY" -m scripts.bench.bench_detector --device cuda --precision fp16 \
  --backbones mobilenet_v2,resnet50 --batch-sizes 64,256 --images 256 --sizes "$SIZES" \
  --runtimes reference,torch,torch-cl --repeats 3 > "$OUT/bench_detector_fp16.txt" 2>&1
# 2. nvJPEG vs CPU decode, torch.compile / CUDA graphs, verdicts/s with decoding included
timeout 240 "$PY" -m scripts.bench.gpu_bench --out "$OUT" --precision bf16 > "$OUT/gpu_bench.txt" 2>&1
# 3. the whole consumer pipeline against a local broker (needs Java 17+ and devkafka/libs)
timeout 180 "$PY" - > "$OUT/pipeline.txt" 2>&1 <<'PYEOF'
import subprocess, sys, tempfile
from pathlib import Path
from devkafka.broker import KafkaBroker
with tempfile.TemporaryDirectory() as tmp:
    broker = KafkaBroker(Path(tmp))
    broker.start()
    try:
        subprocess.run([sys.executable, "-m", "scripts.bench.bench_pipeline", "--bootstrap",
                        broker.bootstrap_servers, "--device", "cuda", "--events", "2048",
                        "--batch-sizes", "64,256", "--size", "384x384", "--max-wait-ms", "5"],
                       check=False)
    finally:
        broker.stop()
PYEOF
echo "done; see $OUT"
