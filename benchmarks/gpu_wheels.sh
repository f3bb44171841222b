#!/usr/bin/env bash
# Download the wheels benchmarks/gpu_check.sh needs on the bare GPU machine into .whl/ (ignored by git).
#
# That machine (Python 3.12, no registry) has torch, onnx, onnxruntime (CPU build), onnxscript, xarray, h5py,
# scipy, click, tqdm, pillow, matplotlib and pytest, and lacks what is listed below. Pure-Python wheels, pinned
# to the versions this project's venv is tested with; --no-deps (their own needs are all on that machine).
# onnxruntime-gpu cannot travel: its wheel is 244 MiB (1.31.1, cp312), the device tool carries 64 MiB, so
# the onnxruntime-on-CUDA checks skip there with a reason. dask and zarr are only needed by `compare`,
# which the check does not run.
#
#   benchmarks/gpu_wheels.sh            # from anywhere; PIP=... to use another pip
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PIP="${PIP:-python3 -m pip}"
WHEELS=(onnx2torch==1.5.15 h5netcdf==1.8.2)
mkdir -p "$REPO/.whl"
$PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$REPO/.whl" "${WHEELS[@]}"
ls -l "$REPO/.whl"
total=$(du -sk "$REPO/.whl" | cut -f1)
echo "gpu_wheels: ${#WHEELS[@]} wheels, $((total / 1024)) MiB in .whl/ (the device tool carries at most 64 MiB per call)"
[ "$total" -lt $((60 * 1024)) ] || { echo "gpu_wheels: .whl/ is over 60 MiB; drop wheels before carrying it" >&2; exit 1; }
