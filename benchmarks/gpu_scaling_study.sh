#!/usr/bin/env bash
# The whole scaling study (notebook 07, --preset full) on one GPU, plus the pipeline benchmark,
# as one command for a lent device machine (`run` tool): results land in $OUT and come back.
#
#   bash benchmarks/gpu_scaling_study.sh            # OUT defaults to ./runs/gpu
#
# Needs Fashion-MNIST: the full set from Debian's dataset-fashion-mnist (installed when root and
# apt are there), else the committed subset (then the study is not the full one; the results
# record which source they used). Resumable: rerunning skips finished runs.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu}"
mkdir -p "$OUT"
PY="${PY:-.venv/bin/python}"
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null \
        || echo "gpu_scaling_study: could not install dataset-fashion-mnist; using the committed subset"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt" || true
"$PY" benchmarks/bench_study_pipeline.py --device cuda --batch 1024 | tee "$OUT/bench_study_pipeline.txt"
start=$(date +%s)
"$PY" -m effnet_lab.lab.studies.scaling all --preset full --device cuda --jobs "${JOBS:-8}" --out "$OUT/scaling-full" \
    2> "$OUT/study.log"
echo "whole study: $(( $(date +%s) - start )) s" | tee "$OUT/study_time.txt"
