#!/usr/bin/env bash
# build.sh: the whole set-up of mtt on a Debian 12 machine, in one command.
#   ./build.sh run    install what is missing, build, run the example recipe (the main job)
#   ./build.sh test   install what is missing (incl. PyTorch for reference tests), build, run
#                     every test: ctest on the normal build, and the C tests again under
#                     AddressSanitizer + UndefinedBehaviorSanitizer
#   ./build.sh build  install build dependencies and build only
#   ./build.sh deps [test]   install packages only
set -euo pipefail
cd "$(dirname "$0")"

BUILD_PACKAGES=(build-essential cmake pkg-config git luajit libluajit-5.1-dev libopenblas-openmp-dev
  libarchive-dev libedit-dev lua-cjson)
TEST_PACKAGES=(python3-torch)
JOBS=$(nproc 2>/dev/null || echo 2)

missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

install_deps() {
  local wanted=("${BUILD_PACKAGES[@]}")
  [ "${1:-}" = test ] && wanted+=("${TEST_PACKAGES[@]}")
  local missing
  missing=$(missing_packages "${wanted[@]}")
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "build.sh: missing Debian packages:" $missing >&2
    echo "build.sh: run as root, or: sudo apt-get install -y" $missing >&2
    exit 1
  fi
  echo "build.sh: installing" $missing
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  # shellcheck disable=SC2086
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing
}

build() {
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j "$JOBS"
}

build_sanitized() {
  cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DMTT_SANITIZE=ON >/dev/null
  cmake --build build-sanitize -j "$JOBS"
}

case "${1:-}" in
  deps) install_deps "${2:-}" ;;
  build) install_deps; build ;;
  run) install_deps; build; ./build/mtt run recipes/example.lua ;;
  test)
    install_deps test
    build
    build_sanitized
    ctest --test-dir build --output-on-failure -j "$JOBS"
    # no block cache under the sanitizers, so that every use after free is caught
    MTT_CPU_CACHE_MB=0 ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-sanitize --output-on-failure -L c
    ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
