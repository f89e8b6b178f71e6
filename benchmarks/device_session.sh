#!/usr/bin/env bash
# One prepared accelerator session: every Pallas kernel compiled and checked against XLA, then
# timed against its XLA baseline, in priority order, each step under its own time limit so a
# hang costs one step, not the lease. Output: one log per step (and env.txt) under $OUT
# (the device tool's folder) or outputs/device. Total under 9 minutes of wall time.
#
#   bash benchmarks/device_session.sh            # on a GPU (or TPU) machine, from the repo root
#   TINY=1 bash benchmarks/device_session.sh     # CPU smoke run of the same steps (interpret)
#
# Needs only jax, flax, optax, numpy and absl on the machine (no grain, ml_collections or
# tensorflow-datasets): the steps import pallas_kernels/ and reasoning_jax.ops only.
set -u -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out="${OUT:-outputs/device}"
mkdir -p "$out"
py="${PYTHON:-python3}"
tiny="${TINY:-}"

step() {  # step NAME SECONDS ARGS...: runs `python ARGS` under a time limit, logs to NAME.log
  local name="$1" limit="$2"
  shift 2
  echo "== $name (limit ${limit}s): $py $*"
  local start=$SECONDS
  timeout "$limit" "$py" "$@" 2>&1 | tee "$out/$name.log"
  local rc=$?
  echo "== $name: rc $rc in $((SECONDS - start)) s" | tee -a "$out/$name.log"
}

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
  "$py" -c "import jax; print('jax', jax.__version__, jax.devices())"
} >"$out/env.txt" 2>&1
cat "$out/env.txt"

if [ -n "$tiny" ]; then
  step kernel_check 300 benchmarks/kernel_check.py --tiny
  step sparse_decode_gpu 120 benchmarks/sparse_decode.py --quick --section kernels
  exit 0
fi
# 1. Correctness of every kernel compiled natively (flash, GLA, OVQ, dequant, sparse decode).
step kernel_check 180 benchmarks/kernel_check.py
# 2. LycheeDecode kernel B vs dense decode (issue 19's goal: >= 3x at 128k, budget 4096).
step sparse_decode_gpu 110 benchmarks/sparse_decode.py --section gpu --repeats 5
# 3. BPDQ dequant-matmul vs XLA dequantize-then-matmul (issue 14).
step dequant_matmul 90 benchmarks/dequant_matmul.py --shapes 4096x4096,11008x4096 --ms 1,8,64 \
  --bits 2 --group-size 256 --repeats 20 --gpu-kernels mosaic,triton
# 4. Flash attention (Mosaic GPU and Triton schedules; and sliding window) vs XLA attention.
step attention 90 benchmarks/attention.py --seq-lens 4096,16384 --windows none,1024 --batch 1 \
  --heads 8 --kv-heads 2 --head-dim 128 --dtype bfloat16 --repeats 5
# 5. GLA / OVQ chunked kernels vs their XLA forms (issue 21).
step layers 60 benchmarks/layers.py --seq-lens 4096,16384 --dtype bfloat16 --heads 8 \
  --head-dim 128 --repeats 3
