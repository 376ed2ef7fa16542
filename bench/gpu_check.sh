#!/usr/bin/env bash
# GPU validation in one command: build, check, sanitize and measure everything on a machine
# with a GPU, the CUDA toolkit, CuPy, PyTorch, pybind11, scikit-build-core, cmake and ninja
# already installed and no network (ARCHITECTURE.md §8.3, §9). The whole run has a deadline
# (GPU_CHECK_DEADLINE_S, default 540 s) and every step a time limit; the limits add up to
# at most the deadline minus MARGIN_S (a step never starts with less than 10 s left).
#
#   bench/gpu_check.sh                 # everything; results in $OUT (else ./gpu_check_out)
#   bench/gpu_check.sh --check-only    # only the prerequisite and GPU checks
#   bench/gpu_check.sh --resume        # skip the steps $OUT/state records as passed
#   CCN_COMMIT=abc1234 bench/gpu_check.sh   # name the commit where the tree has no .git
#
# Steps, most valuable first (name, limit in seconds; a later step gets less if the deadline
# is nearer):
STEP_LIMITS=(
  build=90           # pip install --no-build-isolation --no-deps . for CUDA_ARCHS (default 90);
                     # the extensions also copied into the checkout; a failure stops here.
                     # Measured (2-core x86 dev machine, CUDA_ARCHS=90, every kernel and
                     # tensor-core instantiation, _C and _emu, nvcc 13.0): 113 s of CPU in
                     # all, the longest unit (gemm_tc.cu) 12.4 s, CMake's configure 3.6 s.
                     # PREDICTED on a 16-core GPU host (ninja runs the units in parallel):
                     # 20-40 s; the limit leaves twice that.
  info=15            # card, driver, toolkit, versions; the cuda backend must be usable
  memcheck=40        # compute-sanitizer memcheck, our kernels only, every kernel once
                     # (bench/sanitize_subset.py), CCN_SYNC_LAUNCHES=1: a fault names its kernel
  net_bench=75       # whole-net images/s, ours vs PyTorch eager, validated against a cpu twin
  conv_bench=45      # every conv layer: fwd, dgrad, wgrad, bwd vs cuDNN
  kernel_bench=35    # the memory-bound kernels and the fc GEMMs
  precision=50       # the tensor-core precisions (tf32, bf16, 3xtf32) against cuDNN / cuBLAS at
                     # the same precision: the grouped conv layers (fwd, dgrad, wgrad) and
                     # the fc GEMMs, 72 rows at 0.1 s of timed calls per side (PREDICTED ~40 s)
  model=25           # the SASS counts of this build and the performance model's predictions
                     # beside the benchmarks' measured times (measured / predicted), fp32 and
                     # the tensor-core rows
  racecheck=25       # compute-sanitizer racecheck, our kernels only
  cuda_tests=45      # pytest -m cuda: the cuda variants of the kernel, Net and bench tests
  torch_compile=45   # net_bench's torch.compile rows (the child is killed at 35 s)
)
MARGIN_S=50          # deadline minus the sum of the limits: process start-up, summaries
# Failing steps are recorded and the run goes on (except the build). Every finished step's
# log is in $OUT/logs/<step>.log and summary.md is rewritten after each step, so a run cut
# short (or killed) keeps everything it finished; --resume then runs only what is left.
#
# Output ($OUT): summary.md (steps, card, commit, the targets table: each GPU target with
# its worst measured ratio and PASS / FAIL, the benchmark tables, the model's measured /
# predicted), logs/<step>.log, conv_bench.json kernel_bench.json net_bench.json
# conv_bench_tc.json kernel_bench_tc.json net_bench_compile.json, targets.json, sass.json,
# predicted.json, state (one "<step> <status>" line per finished step).
# Recording it in bench/RESULTS.md: python bench/record_gpu_run.py $OUT --write.
#
# Prerequisites are checked before anything is built, one line per missing piece:
# commands (python, nvcc, cmake >= 3.24, ninja, nvidia-smi), Python modules (cupy, torch,
# pybind11, scikit_build_core, pytest, xdist, hypothesis, numpy, PIL, tqdm, sklearn,
# matplotlib) and a Python that pip may install into (not an "externally managed" system
# interpreter, PEP 668; use a virtual environment: PYTHON=/path/to/venv/bin/python).
# GPU_CHECK_FAKE_MISSING="PIL cmake ..." treats the named pieces as missing (to test this).
#
# Exit status: 0 all steps passed; 1 a step failed; 2 no GPU and nothing else missing (a
# dry run: prerequisites checked, nothing built); 3 prerequisites missing.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT_DIR=${OUT:-$ROOT/gpu_check_out}
PY=${PYTHON:-python3}
DEADLINE_S=${GPU_CHECK_DEADLINE_S:-540}
CHECK_ONLY=0
RESUME=0
CMDLINE="$*"
for arg in "$@"; do
  case $arg in
    --check-only) CHECK_ONLY=1 ;;
    --resume) RESUME=1 ;;
    *) echo "gpu_check: unknown argument $arg (use --check-only or --resume)"; exit 3 ;;
  esac
done
START=$(date +%s)
declare -A LIMIT
for kv in "${STEP_LIMITS[@]}"; do LIMIT[${kv%%=*}]=${kv#*=}; done
# The commit the figures belong to: git's, or $CCN_COMMIT for a copy of the tree without
# .git: CCN_COMMIT=$(git rev-parse --short HEAD) on the calling side.
if [[ -n ${CCN_COMMIT:-} ]]; then
  COMMIT=$CCN_COMMIT
elif COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
  git -C "$ROOT" diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT+dirty"
else
  COMMIT="unknown (no .git here: pass CCN_COMMIT=<hash>)"
fi
export CCN_COMMIT=$COMMIT
mkdir -p "$OUT_DIR/logs"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
LOGS=$OUT_DIR/logs
STATE=$OUT_DIR/state
((RESUME)) || : >"$STATE"
touch "$STATE"
STEPS=()    # markdown rows
FAILED=0

elapsed() { echo $(( $(date +%s) - START )); }
say() { echo "[gpu_check $(elapsed)s] $*"; }

# ------------------------------------------------------------------ prerequisites
# The interpreter's own bin/ first (a venv's cmake, ninja, pytest), then the toolkit's.
if PYBIN=$("$PY" -c 'import os, sys; print(os.path.dirname(sys.executable))' 2>/dev/null); then
  PATH="$PYBIN:$PATH"
fi
[[ -d /usr/local/cuda/bin ]] && PATH="$PATH:/usr/local/cuda/bin"
export PATH
FAKE_MISSING=" ${GPU_CHECK_FAKE_MISSING:-} "
faked() { [[ $FAKE_MISSING == *" $1 "* ]]; }
MISSING=()
ok() { printf '  %-20s ok  %s\n' "$1" "$2"; }
missing() { printf '  %-20s MISSING  %s\n' "$1" "$2"; MISSING+=("$1"); }

check_prerequisites() {
  echo "prerequisites:"
  local cmd mod path
  for cmd in "$PY" nvcc ninja nvidia-smi; do
    if ! faked "$cmd" && path=$(command -v "$cmd" 2>/dev/null); then ok "$cmd" "$path"
    else missing "$cmd" "(command not found)"; fi
  done
  local cmake_version
  cmake_version=$(cmake --version 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?')
  if faked cmake || [[ -z $cmake_version ]]; then
    missing cmake "(command not found; need >= 3.24)"
  elif [[ $(printf '%s\n3.24\n' "$cmake_version" | sort -V | head -1) != 3.24 ]]; then
    missing cmake "(version $cmake_version; need >= 3.24)"
  else
    ok cmake "$cmake_version"
  fi
  # Modules: the build (pybind11, scikit_build_core), the GPU path (cupy, torch), the test
  # suite's imports at collection time (pytest, xdist, hypothesis, PIL, tqdm, sklearn,
  # matplotlib: one collection error aborts the whole pytest step).
  for mod in numpy cupy torch pybind11 scikit_build_core pytest xdist hypothesis PIL tqdm sklearn matplotlib; do
    if ! faked "$mod" && "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$mod') is None)" \
        2>/dev/null; then
      ok "$mod" "(python module)"
    else
      missing "$mod" "(python module; pip install $(pip_name "$mod"))"
    fi
  done
  # PEP 668: pip refuses to install into an "externally managed" system interpreter.
  if faked externally-managed || "$PY" - <<'EOF' 2>/dev/null; then
import os, sys, sysconfig
venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
sys.exit(0 if (os.path.exists(marker) and not venv) else 1)
EOF
    missing externally-managed "($PY is an externally managed system Python, PEP 668: pip install . is refused; use a venv)"
  else
    ok pip-target "($PY accepts pip installs)"
  fi
  local sanitizer
  sanitizer=$(command -v compute-sanitizer || true)
  printf '  %-20s %s\n' compute-sanitizer "${sanitizer:-not found (the sanitizer steps will be skipped)}"
}

pip_name() {
  case $1 in
    PIL) echo Pillow ;; sklearn) echo scikit-learn ;; xdist) echo pytest-xdist ;;
    scikit_build_core) echo scikit-build-core ;; cupy) cupy_wheel ;; *) echo "$1" ;;
  esac
}

# CuPy's wheel must match the CUDA major version the kernels are built with (nvcc's).
cupy_wheel() {
  local major
  major=$(nvcc --version 2>/dev/null | grep -oE 'release [0-9]+' | grep -oE '[0-9]+')
  if [[ -n $major ]] && ! faked nvcc; then echo "cupy-cuda${major}x, for nvcc's CUDA $major"
  else echo "cupy-cuda13x or cupy-cuda12x, matching the CUDA toolkit"; fi
}

check_prerequisites > "$LOGS/prerequisites.log"  # in this shell (no pipe): MISSING is filled here
cat "$LOGS/prerequisites.log"
SANITIZER=$(command -v compute-sanitizer || true)

GPU=""
if command -v nvidia-smi >/dev/null 2>&1 && ! faked nvidia-smi; then
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
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), $(elapsed) s of a ${DEADLINE_S} s deadline"
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
      # Each GPU target with its worst measured ratio and PASS / FAIL (bench/gpu_targets.py).
      "$PY" bench/gpu_targets.py "$OUT_DIR" --json "$OUT_DIR/targets.json" 2>/dev/null && echo
    fi
    "$PY" - "$OUT_DIR" <<'EOF' 2>/dev/null
import json, sys
from pathlib import Path
for name in ("net_bench", "conv_bench", "kernel_bench", "conv_bench_tc", "kernel_bench_tc", "net_bench_compile"):
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
    if [[ -s $LOGS/model.log ]]; then
      echo "## model (bench/perf_model.py, bench/calibrate_tc.py: every predicted figure is a model's)"
      echo
      cat "$LOGS/model.log"
      echo
    fi
    echo "## prerequisites"
    echo
    echo '```'
    cat "$LOGS/prerequisites.log"
    echo '```'
  } > "$OUT_DIR/summary.md.tmp" && mv "$OUT_DIR/summary.md.tmp" "$OUT_DIR/summary.md"
}

NOT_GPU=()
for piece in "${MISSING[@]}"; do [[ $piece == nvidia-smi ]] || NOT_GPU+=("$piece"); done
if ((${#NOT_GPU[@]})); then
  echo "gpu_check: ${#NOT_GPU[@]} prerequisite(s) missing: ${NOT_GPU[*]}${GPU:+ (GPU: $GPU)}${GPU:- (and no GPU: $NO_GPU_WHY)}. Nothing built."
  ((CHECK_ONLY)) || write_summary "missing prerequisites: ${NOT_GPU[*]}"
  exit 3
fi
if [[ -z $GPU ]]; then
  msg="no GPU ($NO_GPU_WHY)"
  echo "gpu_check: $msg. Dry run: prerequisites checked, nothing built or run."
  ((CHECK_ONLY)) || write_summary "$msg (dry run)"
  exit 2
fi
echo "gpu_check: prerequisites ok; $GPU"
((CHECK_ONLY)) && exit 0

# ------------------------------------------------------------------ steps
# step NAME CMD... : run under NAME's limit (less if the deadline is nearer), log to
# logs/NAME.log, record the outcome in the summary and in $STATE. `timeout` signals the
# command's whole process group (TERM, then KILL 10 s later); net_bench passes the TERM on
# to its torch.compile child, which leads a process group of its own.
step() {
  local name=$1; shift
  local limit=${LIMIT[$name]}
  if ((RESUME)) && grep -qx "$name ok" "$STATE"; then
    STEPS+=("| $name | ok (earlier run, --resume) | 0 | logs/$name.log |")
    say "$name: passed in an earlier run; skipped (--resume)"; return 0
  fi
  local left=$(( DEADLINE_S - $(elapsed) - 10 ))
  (( limit > left )) && limit=$left
  if (( limit < 10 )); then
    STEPS+=("| $name | skipped: out of time | 0 | deadline ${DEADLINE_S} s |")
    say "$name: skipped (out of time)"; FAILED=1; write_summary "running (cut at $name)"; return 99
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
  echo "$name ${status%% *}" >>"$STATE"
  say "$name: $status in ${dt}s: $detail"
  write_summary "running (last finished: $name)"
  return $rc
}

# build: a failure stops everything, with the compiler's message.
if ! step build "$PY" -m pip install --no-build-isolation --no-deps --no-index \
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
cp build/gpu_check/_C*.so build/gpu_check/_emu*.so build/gpu_check/_build_info.py cuda_convnet/ 2>/dev/null

info() {
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.sm,temperature.gpu,power.draw \
    --format=csv || true
  nvcc --version
  "$PY" -c "import sys, numpy, torch, cupy; print('python', sys.version.split()[0], 'numpy', numpy.__version__,
'torch', torch.__version__, 'cupy', cupy.__version__, 'cudnn', torch.backends.cudnn.version())"
  "$PY" -c "import cuda_convnet as c, sys; print(c.__file__, c.build_info()); ok = c.has_cuda();
print('has_cuda:', ok, c.cuda_unavailable_reason()); sys.exit(0 if ok else 1)"
}
export PY
step info bash -c "$(declare -f info); info"
CARD=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
TOOLKIT=$(nvcc --version 2>/dev/null | grep -m1 release | sed 's/.*release //')

# compute-sanitizer on our kernels only: every kernel is in namespace ccn, so the substring
# "ccn" matches each one's mangled (_ZN3ccn...) and demangled (ccn::...) name and none of
# CuPy's or CUB's kernels, which are then neither instrumented nor reported.
SANITIZER_FILTER=(--kernel-name "kns=${GPU_CHECK_SANITIZER_KERNELS:-ccn}")
if [[ -n $SANITIZER ]] && ! "$SANITIZER" --help 2>/dev/null | grep -q -- '--kernel-name'; then
  say "this compute-sanitizer has no --kernel-name filter: every kernel is checked"
  SANITIZER_FILTER=()
fi
sanitize() {  # sanitize TOOL
  step "$1" env CCN_SYNC_LAUNCHES=1 "$SANITIZER" --tool "$1" "${SANITIZER_FILTER[@]}" --report-api-errors no \
    --error-exitcode 86 "$PY" bench/sanitize_subset.py
}
if [[ -n $SANITIZER ]]; then sanitize memcheck
else STEPS+=("| memcheck | skipped: compute-sanitizer not found | 0 | |"); fi

step net_bench "$PY" bench/net_bench.py --backend cuda --time-budget 3 --no-compile --json "$OUT_DIR/net_bench.json"
step conv_bench "$PY" bench/conv_bench.py --backend cuda --time-budget 0.2 --json "$OUT_DIR/conv_bench.json"
step kernel_bench "$PY" bench/kernel_bench.py --backend cuda --time-budget 0.15 --json "$OUT_DIR/kernel_bench.json"
# The tensor-core precisions, each against cuDNN / cuBLAS at the same precision
# (bench/harness/precision.py), validated before timing like the float32 rows: the grouped
# conv layers (what the Net runs; fwd, dgrad, wgrad: bwd is their sum) and the FC GEMMs.
# The GEMMs first (the shorter part): a step cut by its limit keeps them and the conv
# layers it finished (conv_bench writes its JSON after every layer). Both run even if the
# first fails; the step fails if either does.
step precision bash -c '"$1" bench/kernel_bench.py --backend cuda --only gemm --precision tf32,bf16,3xtf32 \
  --time-budget 0.1 --json "$2/kernel_bench_tc.json"; rc=$?
  "$1" bench/conv_bench.py --backend cuda --layers grouped --directions fwd,dgrad,wgrad \
  --precision tf32,bf16,3xtf32 --time-budget 0.1 --json "$2/conv_bench_tc.json" || rc=1; exit $rc' \
  precision "$PY" "$OUT_DIR"
# The model calibrated: SASS counts of the kernels just built (--build-dir: the objects of
# the build step, which sass_report would otherwise compile again, for sm_80 and sm_90),
# then every predicted time beside the measured one, float32 and the tensor-core rows. A
# prediction is never a measurement: the ratios printed here tell how far to trust the model.
step model bash -c '"$1" bench/sass_report.py --arch 90 --build-dir build/gpu_check --json "$2/sass.json" \
  >/dev/null && "$1" bench/perf_model.py --tc --sass-json "$2/sass.json" --json "$2/predicted.json" \
  --calibrate "$2/conv_bench.json" "$2/kernel_bench.json" "$2/net_bench.json" && \
  "$1" bench/calibrate_tc.py --sass-json "$2/sass.json" "$2/conv_bench_tc.json" "$2/kernel_bench_tc.json"' \
  model "$PY" "$OUT_DIR"

if [[ -n $SANITIZER ]]; then sanitize racecheck
else STEPS+=("| racecheck | skipped: compute-sanitizer not found | 0 | |"); fi

# The cuda variants only (CI runs the emulated and host tests on every commit); after the
# sanitizers, so a kernel fault has already been named by memcheck. CCN_SYNC_LAUNCHES=1:
# a fault fails the test that launched it, not the next one.
XDIST=()
workers=$(( $(nproc) / 2 )); (( workers > 8 )) && workers=8; (( workers < 1 )) && workers=1
"$PY" -c "import xdist" 2>/dev/null && XDIST=(-n "${GPU_CHECK_PYTEST_WORKERS:-$workers}")
step cuda_tests env CCN_SYNC_LAUNCHES=1 "$PY" -m pytest -q -p no:cacheprovider -rs -m cuda "${XDIST[@]}"

step torch_compile "$PY" bench/net_bench.py --backend cuda --time-budget 3 --compile-only --compile-timeout 35 \
  --json "$OUT_DIR/net_bench_compile.json"

headline=$([[ $FAILED == 0 ]] && echo "all steps passed" || echo "some steps FAILED")
write_summary "$headline"
# The tables last, so that the tail of this output has them.
for name in net_bench conv_bench kernel_bench precision model torch_compile; do
  [[ -f $LOGS/$name.log ]] && { echo; echo "=== $name"; grep -E '^\||^note|^[a-z_]+: ' "$LOGS/$name.log" | tail -n 60; }
done
echo
echo "=== targets (ratio = ours / baseline; bench/gpu_targets.py)"
"$PY" bench/gpu_targets.py "$OUT_DIR" --brief 2>&1
echo
echo "=== steps ($(elapsed) s; card: ${CARD:-?}; toolkit: ${TOOLKIT:-?})"
printf '%s\n' "${STEPS[@]}"
echo "gpu_check: $headline; results in $OUT_DIR (summary.md, logs/, *.json)"
exit $FAILED
