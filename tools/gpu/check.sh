#!/usr/bin/env bash
# tools/gpu/check.sh: every GPU check of the cuda backend in one run, on a lent H100/H200 (about
# 6-9 minutes; each stage has its own time limit so that one hang cannot eat the lease).
#   1. the op suite against the cpu (tests/lua/test_cuda.lua on the real device)
#   2. the pre-training recipe's GPT (4 layers, width 256) trained 300 steps on cuda in f32, on cuda
#      in bf16 and on the cpu, same seed and batches (tools/gpu/train_compare.lua): the loss curves
#      side by side
#   2b. mtt.train itself with device = 'cuda' (f32, bf16), against the cpu, and resumed from a
#      checkpoint on cuda (tools/gpu/train_loop.lua; skips while mtt.train lacks the option)
#   3. GPT-2 small training throughput (seq 1024, batch 8, bf16), mtt against PyTorch eager on the
#      same GPU (tools/gpu/bench_gpt.lua, tools/gpu/bench_gpt_torch.py): tokens/s, MFU, ratio
# Prepare on the build machine first (tools/gpu/prepare.sh), then through the device tool:
#   run(command="tools/gpu/check.sh", carry=["build-gpu-run/rt.tar.xz"], timeout_s=600)
# Writes $OUT/check.log, $OUT/train.csv, $OUT/train_loop.txt and $OUT/bench.jsonl (or ./gpu-out/ without $OUT), and
# prints a summary table last.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUTDIR=${OUT:-$ROOT/gpu-out}
mkdir -p "$OUTDIR"
LOG=$OUTDIR/check.log
exec > >(tee "$LOG") 2>&1
START=$(date +%s)
stamp() { echo "[$(( $(date +%s) - START ))s] $*"; }
declare -a SUMMARY

# ---- the prepared binaries and the libraries they need ----
RT=$ROOT/build-gpu-run/rt
if [ ! -x "$RT/bin/mtt" ]; then
  [ -f "$ROOT/build-gpu-run/rt.tar.xz" ] || { echo "check.sh: build-gpu-run/rt.tar.xz missing: run tools/gpu/prepare.sh and carry it"; exit 2; }
  mkdir -p "$RT"
  python3 -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$ROOT/build-gpu-run/rt.tar.xz" "$RT" || exit 2
fi
# cuBLAS: the CUDA toolkit's, else the one PyTorch's wheels bring
CUBLAS_DIR=
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64 \
  $(python3 -c "import nvidia, os; print(' '.join(os.path.join(p, s) for p in nvidia.__path__ for s in ('cu13/lib', 'cublas/lib')))" 2>/dev/null); do
  if [ -e "$d/libcublas.so.13" ]; then CUBLAS_DIR=$d; break; fi
done
[ -z "$CUBLAS_DIR" ] && CUBLAS_DIR=$(dirname "$(ldconfig -p | awk '/libcublas.so.13 /{print $NF; exit}')" 2>/dev/null)
[ -z "$CUBLAS_DIR" ] && CUBLAS_DIR=$(dirname "$(find / -xdev -name libcublas.so.13 2>/dev/null | head -1)" 2>/dev/null)
export MTT_ROOT=$ROOT MTT_LIBRARY=$RT/lib/libmtt.so LD_LIBRARY_PATH=$RT/lib:${CUBLAS_DIR:-}:${LD_LIBRARY_PATH:-}
# Debian's OpenBLAS does not know recent Xeons: name the kernels (results are the same)
if grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX; elif grep -q avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
MTT="$RT/bin/mtt"

# The libraries come from Debian 12 (glibc 2.36); where this system is older and has its own
# copy of one, its copy goes first.
if ! "$MTT" -e '' 2>/dev/null; then
  mkdir -p "$RT/lib.unused"
  for f in "$RT"/lib/*.so.*; do
    name=$(basename "$f")
    case $name in libmtt.so | libopenblas* | libluajit* | libgfortran* | libquadmath*) continue ;; esac
    if ldconfig -p | grep -q " $name "; then mv "$f" "$RT/lib.unused/"; fi
  done
  echo "check.sh: the bundled libraries did not load; using the system's copies of: $(ls "$RT/lib.unused" | tr '\n' ' ')"
fi

stamp "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader || true
echo "cpu: $(nproc) cores; cuBLAS from ${CUBLAS_DIR:-?}; build $(cat "$RT/COMMIT" 2>/dev/null) $(cat "$RT/BUILT" 2>/dev/null)"
if ! "$MTT" -e 'print(require("ffi").string(require("mtt.ffi").C.mtt_cuda_device_info()))'; then
  echo "check.sh: the prepared mtt does not start here; the loader says:"
  ldd "$MTT_LIBRARY" "$MTT" | grep -E 'not found|=>' | head -40
  exit 3
fi
if ! "$MTT" -e 'os.exit(mtt.cuda.available() and 0 or 1)'; then
  echo "check.sh: mtt sees no usable CUDA device here (the line above says why); nothing to check"
  exit 4
fi
export MTT_CUDA_EXPECT_DEVICE=1 # test_cuda.lua fails instead of skipping

# ---- 1. op suite ----
stamp "1. op suite: tests/lua/test_cuda.lua"
timeout 240 "$MTT" run tests/lua/test_cuda.lua
rc=$?
SUMMARY+=("op suite (tests/lua/test_cuda.lua)|$([ $rc -eq 0 ] && echo PASS || echo "FAIL (rc $rc)")")

# ---- 2. training: cpu vs cuda f32 vs cuda bf16 ----
stamp "2. training comparison: tools/gpu/train_compare.lua"
timeout 300 "$MTT" run tools/gpu/train_compare.lua steps=300 csv="$OUTDIR/train.csv" | tee "$OUTDIR/train.txt"
rc=$?
SUMMARY+=("training 300 steps (train.csv)|$([ $rc -eq 0 ] && echo done || echo "FAIL (rc $rc)")")
while IFS= read -r line; do SUMMARY+=("  ${line#  }|"); done < <(grep ' vs ' "$OUTDIR/train.txt")

# ---- 2b. mtt.train itself on cuda (device = / precision = options, resume) ----
stamp "2b. mtt.train on cuda: tools/gpu/train_loop.lua"
timeout 120 "$MTT" run tools/gpu/train_loop.lua dir="${TMPDIR:-/tmp}" | tee "$OUTDIR/train_loop.txt"
rc=${PIPESTATUS[0]}
if grep -q '^skipped' "$OUTDIR/train_loop.txt"; then
  SUMMARY+=("mtt.train on cuda (train_loop.lua)|$(grep -m1 '^skipped' "$OUTDIR/train_loop.txt" | cut -c1-60)")
else
  SUMMARY+=("mtt.train on cuda (train_loop.lua)|$([ $rc -eq 0 ] && echo PASS || echo "FAIL (rc $rc)")")
fi

# ---- 3. throughput: GPT-2 small, seq 1024, batch 8 ----
stamp "3. GPT-2 small training throughput, mtt vs PyTorch (seq 1024, batch 8)"
: >"$OUTDIR/bench.jsonl"
bench() { # label, command...
  local label=$1
  shift
  local line
  line=$(timeout 150 "$@" 2>&1 | tee /dev/stderr | grep '^{' | tail -1)
  if [ -n "$line" ]; then echo "$line" >>"$OUTDIR/bench.jsonl"; else SUMMARY+=("benchmark: $label|FAILED"); fi
}
bench "torch eager bf16" python3 tools/gpu/bench_gpt_torch.py --precision bf16
bench "mtt medium (bf16, packed operands)" "$MTT" run tools/gpu/bench_gpt.lua precision=medium
MTT_CUDA_BF16_GEMM=cublas bench "mtt medium (bf16, cuBLAS converts)" "$MTT" run tools/gpu/bench_gpt.lua precision=medium
bench "mtt high (tf32)" "$MTT" run tools/gpu/bench_gpt.lua precision=high steps=10
bench "mtt medium, Lua collecting every 256 MB" "$MTT" run tools/gpu/bench_gpt.lua precision=medium gc_mb=256 steps=10
bench "torch eager bf16, clip 1.0" python3 tools/gpu/bench_gpt_torch.py --precision bf16 --clip 1.0
bench "mtt medium, clip 1.0" "$MTT" run tools/gpu/bench_gpt.lua precision=medium clip=1.0

# ---- summary ----
stamp "summary"
python3 - "$OUTDIR/bench.jsonl" <<'EOF' | tee "$OUTDIR/bench_summary.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
torch = {r["clip"] > 0: r for r in rows if r["impl"] == "torch"}
print("%-44s %10s %10s %7s %8s" % ("GPT-2 small, seq 1024, batch 8", "tokens/s", "ms/step", "MFU", "vs torch"))
for r in rows:
    ref = torch.get(float(r["clip"]) > 0)
    name = "%s %s%s%s%s" % (r["impl"], r["precision"], " (%s)" % r["bf16_gemm"] if r["impl"] == "mtt" and r["precision"] == "medium" else "",
                            ", clip" if float(r["clip"]) > 0 else "", ", gc 256 MB" if r.get("gc_mb") == 256 else "")
    ratio = "%.2fx" % (r["tokens_per_s"] / ref["tokens_per_s"]) if ref else "-"
    mfu = "%.1f%%" % (100 * r["mfu"]) if r.get("mfu") else "-"
    print("%-44s %10.0f %10.1f %7s %8s" % (name, r["tokens_per_s"], r["ms_per_step"], mfu, ratio))
EOF
echo
printf '%s\n' "${SUMMARY[@]}" | awk -F'|' '{printf "%-70s %s\n", $1, $2}'
stamp "done"
