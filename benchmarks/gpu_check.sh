#!/usr/bin/env bash
# The one prepared device check (issue #14), for a bare GPU machine or any machine with the dependencies:
#   1. installs the carried wheels in .whl/ (benchmarks/gpu_wheels.sh) into /tmp, if that folder exists;
#   2. puts onnxattr on the path without installing it: a folder in /tmp whose onnxattr/ holds links to the
#      package's files plus converters/ as onnxattr.converters (pyproject's package-dir mapping);
#   3. runs tests/test_cuda.py (the CUDA parameters skip with a reason where torch sees no GPU);
#   4. runs benchmarks/gpu_bench.py (the table) on CUDA; without a GPU only with --quick (a CPU smoke run),
#      else it says it skips.
# Everything goes to stdout and OUTDIR/gpu_check.log; the table to OUTDIR/gpu_table.md. Exits non-zero when
# the package does not import or a test fails. Sized to finish in under 8 minutes on an H200.
#
#   benchmarks/gpu_check.sh [--quick] [OUTDIR]     OUTDIR defaults to $OUT, else benchmarks/out
#   PYTHON=.venv/bin/python benchmarks/gpu_check.sh --quick /tmp/check     (ONNXATTR_QUICK=1 = --quick)
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
QUICK=""
[ -n "${ONNXATTR_QUICK:-}" ] && QUICK="--quick"
OUTDIR="${OUT:-$REPO/benchmarks/out}"
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK="--quick" ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) OUTDIR="$arg" ;;
    esac
done
TOTAL_S="${GPU_CHECK_BUDGET_S:-450}"   # whole script; the benchmarks get what the tests leave
TESTS_S="${GPU_CHECK_TESTS_S:-200}"
mkdir -p "$OUTDIR"
exec > >(tee "$OUTDIR/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1
echo "== gpu_check: repo $REPO, python $("$PY" -c 'import sys; print(sys.version.split()[0])'), out $OUTDIR ${QUICK}"

# 1. carried wheels
SITE=""
if compgen -G "$REPO/.whl/*.whl" > /dev/null; then
    SITE="$(mktemp -d /tmp/onnxattr-site.XXXXXX)"
    PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$REPO"/.whl/*.whl \
        || { echo "gpu_check: installing the wheels in .whl/ failed"; exit 1; }
    echo "== wheels: $(cd "$REPO/.whl" && ls *.whl | tr '\n' ' ')-> $SITE"
else
    echo "== wheels: no .whl/ folder (benchmarks/gpu_wheels.sh makes it); using what is installed"
fi

# 2. the package on the path, onnxattr.converters mapped to converters/
PKG="$(mktemp -d /tmp/onnxattr-path.XXXXXX)"
mkdir "$PKG/onnxattr"
for entry in "$REPO"/onnxattr/*; do ln -s "$entry" "$PKG/onnxattr/"; done
ln -s "$REPO/converters" "$PKG/onnxattr/converters"
export PYTHONPATH="$PKG${SITE:+:$SITE}${PYTHONPATH:+:$PYTHONPATH}"
cd "$PKG" || exit 1   # python -m puts the working folder first on sys.path: this one holds the linked package
"$PY" - "$PKG" <<'EOF' || { echo "gpu_check: onnxattr does not import (a missing package? see benchmarks/gpu_wheels.sh)"; exit 1; }
import sys
import onnxattr, onnxattr.converters, onnx2torch, onnxruntime as ort, torch
where = onnxattr.converters.__file__
assert where.startswith(sys.argv[1]), f"onnxattr.converters came from {where}, not the linked folder"
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
print(f"== onnxattr {onnxattr.__version__} from {sys.argv[1]}; torch {torch.__version__} (CUDA {torch.version.cuda}, GPU: {gpu});"
      f" onnxruntime {ort.__version__} providers {', '.join(ort.get_available_providers())}")
EOF
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
HAS_CUDA="$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))')"
if [ "$HAS_CUDA" != 1 ]; then
    echo "== CUDA: torch sees no GPU here: the CUDA tests skip (reasons below) and only their CPU parameters run"
fi
if ! "$PY" -c 'import onnxruntime as o, sys; sys.exit("CUDAExecutionProvider" not in o.get_available_providers())'; then
    echo "== ORT CUDA: this onnxruntime has no CUDAExecutionProvider: the onnxruntime-on-CUDA checks skip"
fi

# 3. tests
echo "== tests: tests/test_cuda.py (limit ${TESTS_S} s)"
timeout "$TESTS_S" "$PY" -m pytest -q -p no:cacheprovider -ra --durations=5 --rootdir "$REPO" -c "$REPO/pyproject.toml" \
    "$REPO/tests/test_cuda.py"
TESTS_RC=$?
[ "$TESTS_RC" = 124 ] && echo "gpu_check: the tests ran past ${TESTS_S} s and were stopped"

# 4. benchmarks
if [ "$HAS_CUDA" = 1 ] || [ -n "$QUICK" ]; then
    LEFT=$((TOTAL_S - SECONDS))
    BUDGET=$((LEFT - 70))   # no new part starts after this; the longest part (LAM on DAT-light 128x128) fits in the rest
    if [ "$BUDGET" -lt 30 ]; then
        echo "== benchmarks: skipped, only ${LEFT} s of the ${TOTAL_S} s budget left"
    else
        echo "== benchmarks: gpu_bench.py ${QUICK} (new parts for ${BUDGET} s, stopped at ${LEFT} s)"
        timeout "$LEFT" "$PY" "$REPO/benchmarks/gpu_bench.py" $QUICK --budget-s "$BUDGET" --out "$OUTDIR" \
            || echo "gpu_check: gpu_bench.py ended with status $? (rows printed above are complete)"
    fi
else
    echo "== benchmarks: skipped: no CUDA GPU (the full sizes take hours on a CPU); --quick runs a CPU smoke"
fi
echo "== gpu_check: done in ${SECONDS} s, tests exit status ${TESTS_RC}"
exit "$TESTS_RC"
