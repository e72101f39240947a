#!/usr/bin/env bash
# tools/gpu/prepare.sh: build, on this machine, everything tools/gpu/check.sh runs on a lent GPU
# machine, so that no device time goes to compiling. Run from the repository root:
#   tools/gpu/prepare.sh          -> build-gpu-run/rt.tar.xz (about 30 MB; git ignores build*/)
# The archive holds the mtt command, libmtt.so with the CUDA backend (sm_90 for the H100/H200;
# CMAKE_CUDA_ARCHITECTURES overrides) and the shared libraries they need beyond glibc, the C++
# runtime, the CUDA driver and cuBLAS (which the GPU machine has). Then, with the device tool:
#   run(command="tools/gpu/check.sh", carry=["build-gpu-run/rt.tar.xz"], timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/../.."
ARCHS=${CMAKE_CUDA_ARCHITECTURES:-90}
JOBS=${JOBS:-2}

if [ ! -x /usr/local/cuda/bin/nvcc ] && ! command -v nvcc >/dev/null; then
  echo "prepare.sh: no CUDA toolkit here (nvcc): cannot build the CUDA backend" >&2
  exit 1
fi
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DMTT_CUDA_EMULATOR=OFF \
  -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" >/dev/null
cmake --build build-gpu -j "$JOBS" --target mtt mtt_core

stage=build-gpu-run/stage
rm -rf "$stage" && mkdir -p "$stage/bin" "$stage/lib"
cp build-gpu/mtt "$stage/bin/"
cp build-gpu/libmtt.so "$stage/lib/"
# what the loader would take from this machine, except what the GPU machine brings itself
skip='linux-vdso|ld-linux|/libc\.so|/libm\.so|/libdl\.so|/libpthread\.so|/librt\.so|libstdc\+\+|libgcc_s|libcublas|libcuda|libcudart'
for lib in $( (ldd build-gpu/mtt; ldd build-gpu/libmtt.so) | awk '/=> \//{print $3}' | sort -u | grep -Ev "$skip"); do
  cp -L "$lib" "$stage/lib/"
done
if ldd build-gpu/libmtt.so | grep -q 'libcudart'; then
  echo "prepare.sh: libmtt.so links libcudart dynamically; expected the static runtime" >&2
  exit 1
fi
git rev-parse HEAD >"$stage/COMMIT" 2>/dev/null || true
date -u +%FT%TZ >"$stage/BUILT"
tar -C "$stage" -cJf build-gpu-run/rt.tar.xz .
ls -l build-gpu-run/rt.tar.xz
echo "prepare.sh: ready. On the GPU machine: tools/gpu/check.sh (carry build-gpu-run/rt.tar.xz)"
