#!/usr/bin/env bash
# GPU check: on a machine with an NVIDIA GPU, run the PyTorch example as a job that asks
# for one GPU, and check the whole path in a few minutes:
#   1. the job is given a GPU (CUDA_VISIBLE_DEVICES) and trains on it (device cuda);
#   2. its system metrics show GPU utilisation above 0 and GPU memory in use (NVML);
#   3. its model is registered, deployed as an endpoint, and scores on the GPU;
#   4. the same job on the CPU (asking for no GPU, so it sees none) for the training time.
# It prints a short report and exits non-zero when a check fails.
#
#   bash benchmarks/gpu_check.sh            # uses $PYTHON (default python3) if it has torch,
#                                           # else makes benchmarks/.work/gpu-venv and installs
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
WORK=benchmarks/.work/gpu-check
mkdir -p "$WORK"
export CUMULO_HOME="$PWD/$WORK/home"
rm -rf "$CUMULO_HOME"

echo "== GPU check =="
if ! command -v nvidia-smi >/dev/null; then
    echo "FAIL: no nvidia-smi here: this check needs a machine with an NVIDIA GPU and its driver"
    exit 2
fi
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader

PY=${PYTHON:-python3}
if ! "$PY" -c "import torch, sklearn, cumulo" 2>/dev/null; then
    VENV=benchmarks/.work/gpu-venv
    echo "-- installing cumulo, torch and scikit-learn into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -e . "torch==2.14.1" "scikit-learn==1.9.1"
    PY="$VENV/bin/python"
fi
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name(0))"

run() {  # run.py with these arguments; its JSON report is its last line
    timeout 240 "$PY" examples/pytorch/run.py --json --epochs 80 --channels 64 --interval 0.5 "$@" \
        | tail -n 1
}
echo "-- the job asking for 1 GPU: train, register, deploy, score"
gpu=$(run --gpus 1)
echo "-- the same job on the CPU (no GPU asked, none visible)"
cpu=$(run --gpus 0 --no-deploy)

GPU_REPORT="$gpu" CPU_REPORT="$cpu" STARTED="$started" "$PY" - <<'PYEOF'
import json, os, sys, time

gpu, cpu = json.loads(os.environ["GPU_REPORT"]), json.loads(os.environ["CPU_REPORT"])
checks = [
    ("the GPU job trained on the GPU", gpu["device"] == "cuda", gpu["device"]),
    ("its GPU utilisation is above 0", (gpu["gpu_utilization_max"] or 0) > 0,
     f"peak {gpu['gpu_utilization_max']} %"),
    ("its GPU memory is in use", (gpu["gpu_memory_megabytes_max"] or 0) > 0,
     f"peak {gpu['gpu_memory_megabytes_max']} MB"),
    ("the endpoint scored on the GPU", gpu["scored"]["device"] == "cuda", gpu["scored"]["device"]),
    ("its answers are right", gpu["scored"]["labels"] == gpu["truth"],
     f"{gpu['scored']['labels']} vs {gpu['truth']}"),
    ("the CPU job saw no GPU", cpu["device"] == "cpu" and cpu["gpu_utilization_max"] is None,
     cpu["device"]),
]
print()
print("== report ==")
for what, ok, seen in checks:
    print(f"{'PASS' if ok else 'FAIL'}  {what} ({seen})")
print(f"training time: GPU {gpu['train_seconds']:.2f} s, CPU {cpu['train_seconds']:.2f} s "
      f"({cpu['train_seconds'] / gpu['train_seconds']:.1f}x); accuracy GPU {gpu['accuracy']:.3f}, "
      f"CPU {cpu['accuracy']:.3f}; scoring 8 rows: {gpu['score_seconds']} s")
print(f"took {time.time() - float(os.environ['STARTED']):.0f} s")
sys.exit(0 if all(ok for _, ok, _ in checks) else 1)
PYEOF
