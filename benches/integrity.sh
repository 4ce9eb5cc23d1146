#!/usr/bin/env bash
# The cost of verifying a stage's inputs before it runs, on pipelines/demo.yaml:
#   cold       every stage runs in one process (inputs it reads were written,
#              and hashed, by the same run: nothing is re-hashed)
#   downstream every stage but `synth` is forced, so every stage that reads
#              synth's outputs (written by an earlier run) re-hashes them
# each timed RUNS times per binary, alternating the two binaries.
#
#   BASE_BIN=/path/to/voxflow-from-main NEW_BIN=/path/to/voxflow bash benches/integrity.sh
set -euo pipefail
BASE_BIN=${BASE_BIN:?the voxflow binary without input verification}
NEW_BIN=${NEW_BIN:?the voxflow binary with input verification}
RUNS=${RUNS:-3}
JOBS=${JOBS:-2}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/voxflow-integrity.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cp "$ROOT/pipelines/demo.yaml" "$WORK/demo.yaml"
FORCE=(--force=words --force=trs --force=rate --force=embedding --force=rate_tr --force=embedding_tr
       --force=rate_lagged --force=embedding_lagged --force=prep --force=fit --force=score)

seconds() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); echo "scale=3; ($t1 - $t0) / 1000000000" | bc; }

echo "| run | binary | seconds |"
echo "| --- | --- | --- |"
for i in $(seq 1 "$RUNS"); do
  for name in base new; do
    bin=BASE_BIN; [[ $name == new ]] && bin=NEW_BIN
    store="$WORK/store-$name"
    rm -rf "$store"
    echo "| cold $i | $name | $(seconds "${!bin}" run "$WORK/demo.yaml" --store "$store" -j "$JOBS") |"
    echo "| downstream $i | $name | $(seconds "${!bin}" run "$WORK/demo.yaml" --store "$store" -j "$JOBS" "${FORCE[@]}") |"
  done
done
du -sb "$WORK"/store-new/objects/* | sort -n | tail -3 | awk '{print "largest object bytes:", $1}'
