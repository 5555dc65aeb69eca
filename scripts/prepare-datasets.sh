#!/usr/bin/env bash
# Prepare the standard datasets of memgen's experiments under DATA_DIR (default: data/).
# Usage: scripts/prepare-datasets.sh [DATA_DIR]
# Sources that are not available on this machine (no Olivetti folder, no dataset-fashion-mnist
# package) are skipped with a note; add --force in MEMGEN_FLAGS to rebuild existing datasets.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-data}"
memgen=(cargo run --release --quiet --)
flags=(${MEMGEN_FLAGS:-})

prep() { # name, then the arguments of `memgen data prepare` before --out
  local name="$1"; shift
  if [ -f "$out/$name/manifest.json" ] && [[ " ${flags[*]} " != *" --force "* ]]; then
    echo "$out/$name exists, skipping"; return
  fi
  "${memgen[@]}" data prepare "$@" --out "$out/$name" "${flags[@]}"
}

if [ -d ../shared/data/olivetti-faces ]; then
  prep olivetti-32 olivetti --side 32
else
  echo "note: ../shared/data/olivetti-faces not found, skipping Olivetti"
fi
if [ -d /usr/share/datasets/fashion-mnist ]; then
  prep fashion-mnist-28 fashion-mnist-idx
else
  echo "note: install dataset-fashion-mnist for Fashion-MNIST (apt-get install dataset-fashion-mnist)"
fi
prep calpha4-16 calpha --side 16 --alpha 4 --count 100000
prep calpha4-32 calpha --side 32 --alpha 4 --count 50000
prep gaussian-8 gaussian --side 8 --count 20000
