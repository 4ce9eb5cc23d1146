#!/usr/bin/env bash
# The cost of the run token (issue 23, the kill window): 1000 trivial
# command stages (benches/engine.sh's benchmark 2: 100 chains of 10, each
# `: NAME > {outputs.out}`), cold runs at -j 1 and -j 2, a binary without
# the token against one with it, alternating, RUNS runs each. Prints one
# line per run and the medians.
#
#   BASE_BIN=/path/to/voxflow-before NEW_BIN=/path/to/voxflow bash benches/spawn_cost.sh
set -euo pipefail
BASE_BIN=${BASE_BIN:?the voxflow binary without the run token}
NEW_BIN=${NEW_BIN:?the voxflow binary with the run token}
RUNS=${RUNS:-5}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/voxflow-spawn.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
python3 - "$WORK" <<'PY'
import sys
work = sys.argv[1]
t = ["name: trivial1000", "stages:"]
for c in range(100):
    for k in range(10):
        t += [f"  t{c}_{k}:", "    kind: command"]
        if k:
            t.append(f"    inputs: [t{c}_{k-1}]")
        t += [f'    run: ": t{c}_{k} > {{outputs.out}}"', "    outputs: {out: o.txt}"]
open(f"{work}/pipeline.yaml", "w").write("\n".join(t) + "\n")
PY
# Stores are moved aside, not deleted, before each cold run (benches/README.md).
mkdir -p "$WORK/trash"
seconds() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); echo "scale=3; ($t1 - $t0) / 1000000000" | bc; }
declare -A ALL
for i in $(seq 1 "$RUNS"); do
  for jobs in 1 2; do
    for name in base new; do
      bin=BASE_BIN; [[ $name == new ]] && bin=NEW_BIN
      store="$WORK/store"
      [[ -e $store ]] && mv "$store" "$WORK/trash/$(date +%s%N)"
      s=$(seconds "${!bin}" run "$WORK/pipeline.yaml" --store "$store" -j "$jobs")
      echo "run $i -j $jobs $name ${s}s (load $(cut -d' ' -f1 /proc/loadavg))"
      ALL[$name-$jobs]+="$s "
    done
  done
done
for key in base-1 new-1 base-2 new-2; do
  echo "$key median $(echo ${ALL[$key]} | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') s of: ${ALL[$key]}"
done
