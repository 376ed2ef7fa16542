#!/usr/bin/env bash
# GPU validation in one command: build, check, sanitize and measure everything on a machine
# with a GPU, the CUDA toolkit, CuPy, PyTorch, pybind11, scikit-build-core, cmake and ninja
# already installed and no network (DESIGN.md §8.3, §9). Runs in under 8 minutes on an H100:
# every step has a time limit, and the whole run a deadline (GPU_CHECK_DEADLINE_S, 450 s).
#
#   bench/gpu_check.sh                 # everything; results in $OUT (else ./gpu_check_out)
#   bench/gpu_check.sh --check-only    # only the prerequisite and GPU checks
#   CCN_COMMIT=abc1234 bench/gpu_check.sh   # name the commit where the tree has no .git
#
# Steps (limit in seconds; a later step gets less if the deadline is nearer):
#   0 prerequisites  nvcc, python3 with cupy/torch/pybind11/scikit_build_core/pytest/hypothesis,
#                    cmake, ninja, nvidia-smi and a GPU (compute-sanitizer optional)
#   1 build     200  pip install --no-build-isolation --no-deps . for sm_90 (CUDA_ARCHS), the
#                    extensions also copied into the checkout so every import sees this build;
#                    a failure stops here with the compiler's message
#   2 info       30  card, driver, toolkit, versions; the cuda backend must be usable
#   3 pytest    130  the suite but the emulated tests (the cuda tests run now), on nproc/2 (<= 8) xdist workers
#   4 memcheck   45  compute-sanitizer --tool memcheck  bench/sanitize_subset.py
#   5 racecheck  45  compute-sanitizer --tool racecheck bench/sanitize_subset.py
#   6 conv_bench    75  bench/conv_bench.py   --json
#   7 kernel_bench  60  bench/kernel_bench.py --json
#   8 net_bench    110  bench/net_bench.py    --json (torch.compile limited to 50 s)
# A failing step is recorded and the run goes on (except the build).
#
# Output ($OUT, at most 8 files since only 8 come back from a lent GPU machine):
#   summary.md  steps, card, commit, and the three benchmark tables
#   logs.tar.gz every step's full log
#   conv_bench.json kernel_bench.json net_bench.json
#
# Exit status: 0 all steps passed; 1 a step failed; 2 no GPU (a dry run: prerequisites
# checked, nothing built); 3 prerequisites missing.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT_DIR=${OUT:-$ROOT/gpu_check_out}
PY=${PYTHON:-python3}
DEADLINE_S=${GPU_CHECK_DEADLINE_S:-450}
CHECK_ONLY=0
CMDLINE="$*"
[[ ${1:-} == --check-only ]] && CHECK_ONLY=1
START=$(date +%s)
# The commit the figures belong to: git's, or $CCN_COMMIT for a copy of the tree without
# .git (a lent GPU machine gets the files, not the repository): CCN_COMMIT=$(git rev-parse
# --short HEAD) on the calling side.
if [[ -n ${CCN_COMMIT:-} ]]; then
  COMMIT=$CCN_COMMIT
elif COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
  git -C "$ROOT" diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT+dirty"
else
  COMMIT="unknown (no .git here: pass CCN_COMMIT=<hash>)"
fi
export CCN_COMMIT=$COMMIT
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
STEPS=()    # markdown rows
FAILED=0

elapsed() { echo $(( $(date +%s) - START )); }
say() { echo "[gpu_check $(elapsed)s] $*"; }

# ------------------------------------------------------------------ 0 prerequisites
# The interpreter's own bin/ first (a venv's cmake, ninja, pytest), then the toolkit's.
if PYBIN=$("$PY" -c 'import os, sys; print(os.path.dirname(sys.executable))' 2>/dev/null); then
  PATH="$PYBIN:$PATH"
fi
[[ -d /usr/local/cuda/bin ]] && PATH="$PATH:/usr/local/cuda/bin"
export PATH

{
  echo "prerequisites:"
  for cmd in "$PY" nvcc cmake ninja nvidia-smi; do
    if command -v "$cmd" >/dev/null 2>&1; then
      printf '  %-20s ok  %s\n' "$cmd" "$(command -v "$cmd")"
    else
      printf '  %-20s MISSING\n' "$cmd"
    fi
  done
  for mod in cupy torch pybind11 scikit_build_core pytest hypothesis numpy; do
    if "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$mod') is None)" 2>/dev/null; then
      printf '  %-20s ok  (python module)\n' "$mod"
    else
      printf '  %-20s MISSING (python module)\n' "$mod"
    fi
  done
  sanitizer=$(command -v compute-sanitizer || true)
  printf '  %-20s %s\n' compute-sanitizer "${sanitizer:-not found (the sanitizer steps will be skipped)}"
} | tee "$LOGS/prerequisites.log"
SANITIZER=$(command -v compute-sanitizer || true)
# shellcheck disable=SC2207
missing=($(grep -E 'MISSING' "$LOGS/prerequisites.log" | awk '{print ($3 == "(python") ? "python:" $1 : $1}'))

GPU=""
if command -v nvidia-smi >/dev/null 2>&1; then
  GPU=$(nvidia-smi -L 2>>"$LOGS/prerequisites.log" | grep -m1 '^GPU ' || true)
  nvidia-smi -L >>"$LOGS/prerequisites.log" 2>&1 || true
  NO_GPU_WHY="nvidia-smi lists no GPU"
else
  NO_GPU_WHY="nvidia-smi not found"
fi

write_summary() {  # $1: headline
  {
    echo "# gpu_check: $1"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), $(elapsed) s"
    echo "- commit: $COMMIT"
    echo "- card: ${CARD:-${GPU:-none}}"
    echo "- toolkit: ${TOOLKIT:-unknown}"
    echo "- command: bench/gpu_check.sh $CMDLINE"
    echo
    if ((${#STEPS[@]})); then
      echo "| step | status | seconds | detail |"
      echo "|---|---|---|---|"
      printf '%s\n' "${STEPS[@]}"
      echo
    fi
    "$PY" - "$OUT_DIR" <<'EOF' 2>/dev/null
import json, sys
from pathlib import Path
for name in ("conv_bench", "kernel_bench", "net_bench"):
    p = Path(sys.argv[1]) / f"{name}.json"
    if not p.exists():
        continue
    doc = json.loads(p.read_text())
    env = doc.get("env", {})
    print(f"## {name} ({env.get('device', '?')}, batch {env.get('batch', '?')}, {env.get('date', '?')})\n")
    if doc.get("partial"):
        print("**Partial: the run was cut short; these are the rows it finished.**\n")
    print(doc.get("table", "") + "\n")
    for note in doc.get("notes", []):
        print(f"- note: {note}")
    print()
EOF
    echo "## prerequisites"
    echo
    echo '```'
    cat "$LOGS/prerequisites.log"
    echo '```'
  } > "$OUT_DIR/summary.md"
  tar -czf "$OUT_DIR/logs.tar.gz" -C "$LOGS" . 2>/dev/null
}

if [[ -z $GPU ]]; then
  msg="no GPU ($NO_GPU_WHY)"
  ((${#missing[@]})) && msg="$msg; also missing: ${missing[*]}"
  echo "gpu_check: $msg. Dry run: prerequisites checked, nothing built or run."
  ((CHECK_ONLY)) || write_summary "$msg (dry run)"
  exit 2
fi
if ((${#missing[@]})); then
  echo "gpu_check: missing prerequisites: ${missing[*]} (GPU: $GPU). Nothing built."
  ((CHECK_ONLY)) || write_summary "missing prerequisites: ${missing[*]}"
  exit 3
fi
echo "gpu_check: prerequisites ok; $GPU"
((CHECK_ONLY)) && exit 0

# ------------------------------------------------------------------ steps
# step NAME LIMIT_S CMD... : run with a time limit, log to $LOGS/NAME.log, record the outcome.
step() {
  local name=$1 limit=$2; shift 2
  local left=$(( DEADLINE_S - $(elapsed) ))
  (( limit > left )) && limit=$left
  if (( limit < 10 )); then
    STEPS+=("| $name | skipped: out of time | 0 | deadline ${DEADLINE_S} s |")
    say "$name: skipped (out of time)"; FAILED=1; return 99
  fi
  say "$name (limit ${limit} s)"
  local t0=$(date +%s) rc
  timeout --kill-after=10 "$limit" "$@" >"$LOGS/$name.log" 2>&1
  rc=$?
  local dt=$(( $(date +%s) - t0 )) status detail
  detail=$(grep -v '^\s*$' "$LOGS/$name.log" | tail -1 | cut -c1-160 | tr '|' '/')
  if (( rc == 0 )); then status=ok
  elif (( rc == 124 || rc == 137 )); then status="TIMEOUT (${limit} s)"; FAILED=1
  else status="FAILED (exit $rc)"; FAILED=1
  fi
  STEPS+=("| $name | $status | $dt | $detail |")
  say "$name: $status in ${dt}s: $detail"
  return $rc
}

# 1 build: a failure stops everything, with the compiler's message.
if ! step build 200 "$PY" -m pip install --no-build-isolation --no-deps --no-index \
    --disable-pip-version-check -v . -Cbuild-dir=build/gpu_check \
    -Ccmake.define.CCN_CUDA=ON "-Ccmake.define.CMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS:-90}"; then
  echo "gpu_check: BUILD FAILED; the first errors:"
  grep -n -m 15 -E '(error|Error|ERROR)[: ]' "$LOGS/build.log" | cut -c1-300
  echo "--- last lines of the build log:"
  tail -n 25 "$LOGS/build.log"
  write_summary "build failed"
  exit 1
fi
# The same extensions in the checkout: the tests and benchmarks import this checkout.
cp build/gpu_check/_C*.so build/gpu_check/_emu*.so build/gpu_check/_build_info.py cuda_convnet/

# 2 info
info() {
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.sm,temperature.gpu,power.draw \
    --format=csv || true
  nvidia-smi || true
  nvcc --version
  "$PY" -c "import sys, numpy, torch, cupy; print('python', sys.version.split()[0], 'numpy', numpy.__version__,
'torch', torch.__version__, 'cupy', cupy.__version__, 'cudnn', torch.backends.cudnn.version())"
  "$PY" -c "import cuda_convnet as c, sys; print(c.__file__, c.build_info()); ok = c.has_cuda();
print('has_cuda:', ok); sys.exit(0 if ok else 1)"
}
export PY
step info 30 bash -c "$(declare -f info); info"
CARD=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
TOOLKIT=$(nvcc --version 2>/dev/null | grep -m1 release | sed 's/.*release //')

# 3 the test suite minus the emulated kernel tests (CI runs those on every commit, and this
# machine may lack Boost.Context, making the emulator ~20x slower): the cuda variants of
# every kernel, Net and bench test run now, beside the reference/data/cpu tests.
XDIST=()
workers=$(( $(nproc) / 2 )); (( workers > 8 )) && workers=8; (( workers < 1 )) && workers=1
"$PY" -c "import xdist" 2>/dev/null && XDIST=(-n "${GPU_CHECK_PYTEST_WORKERS:-$workers}")
step pytest 130 "$PY" -m pytest -q -p no:cacheprovider -rs -m "not emu" "${XDIST[@]}"

# 4, 5 compute-sanitizer over one call of every kernel
if [[ -n $SANITIZER ]]; then
  for tool in memcheck racecheck; do
    step "$tool" 45 "$SANITIZER" --tool "$tool" --report-api-errors no --error-exitcode 86 \
      "$PY" bench/sanitize_subset.py
  done
else
  STEPS+=("| memcheck, racecheck | skipped: compute-sanitizer not found | 0 | |")
fi

# 6-8 the benchmarks, GPU mode, moderate repeats
step conv_bench 75 "$PY" bench/conv_bench.py --backend cuda --time-budget 0.3 --json "$OUT_DIR/conv_bench.json"
step kernel_bench 60 "$PY" bench/kernel_bench.py --backend cuda --time-budget 0.2 --json "$OUT_DIR/kernel_bench.json"
step net_bench 110 "$PY" bench/net_bench.py --backend cuda --time-budget 4 --compile-timeout 50 \
  --json "$OUT_DIR/net_bench.json"

headline=$([[ $FAILED == 0 ]] && echo "all steps passed" || echo "some steps FAILED")
write_summary "$headline"
# The tables last, so that the tail of this output (what a remote run returns) has them.
for name in conv_bench kernel_bench net_bench; do
  [[ -f $LOGS/$name.log ]] && { echo; echo "=== $name"; grep -E '^\||^note|^[a-z_]+: ' "$LOGS/$name.log" | tail -n 60; }
done
echo
echo "=== steps ($(elapsed) s; card: ${CARD:-?}; toolkit: ${TOOLKIT:-?})"
printf '%s\n' "${STEPS[@]}"
echo "gpu_check: $headline; results in $OUT_DIR (summary.md, logs.tar.gz, *.json)"
exit $FAILED
