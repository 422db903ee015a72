#!/usr/bin/env bash
# The CPU figures in benchmarks/README.md, in one sitting. Results: benchmarks/results/*.json
# Run on an otherwise idle machine; every figure is a steady-state median.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
mkdir -p "$out"
last() { tail -n 1; }

# Every recipe variant, one step of each in turn (robust to a loaded machine), and the same for
# inference at 1024x1024: the per-CPU-kind tables in benchmarks/README.md.
python scripts/benchmark.py train --steps 4 --warmup 1 --variants "reference,fp32 channels_last batchnorm-IN,fp32 channels_last aten-IN,fp32 NCHW aten-IN,fp32 NCHW batchnorm-IN,bf16 channels_last batchnorm-IN" | last > "$out/train_variants.json"
python scripts/benchmark.py infer --size 1024 --compare --runs 2 --warmup 1 | last > "$out/infer_compare.json"
# Default training path vs pytorch/examples' recipe, alternating ABAB in one process.
python scripts/benchmark.py train --compare --rounds 2 --steps 8 --warmup 2 --json | last > "$out/train_compare.json"
# One change at a time, against the default path.
python scripts/benchmark.py train --steps 8 --warmup 2 trainer.precision=32-true --json | last > "$out/train_fp32.json"
python scripts/benchmark.py train --steps 8 --warmup 2 model.channels_last=false --json | last > "$out/train_no_channels_last.json"
python scripts/benchmark.py train --steps 8 --warmup 2 model.compile=true --json | last > "$out/train_compile.json"
# Data pipeline: photos/s delivered by the DataModule (decode, EXIF, resize, crop).
python scripts/benchmark.py data --num-workers 2 --steps 100 --warmup 10 --json | last > "$out/data_2workers.json"
python scripts/benchmark.py data --num-workers 0 --steps 50 --warmup 5 --json | last > "$out/data_0workers.json"
# Same training in bf16 and fp32: one fixed batch, 200 steps, 128 px.
python scripts/benchmark.py overfit --steps 200 --image-size 128 --json | last > "$out/overfit_bf16_vs_fp32.json"
