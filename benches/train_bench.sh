#!/usr/bin/env bash
# Training throughput on the CPU: voxflow's trainer alone, the same model and
# batch in PyTorch eager (transformers GPT2LMHeadModel + torch.optim.AdamW),
# and train.gpt run by the engine (worker process, progress messages,
# metrics) on the same config. Prints a Markdown table.
#
#   bash benches/train_bench.sh            # defaults below
#   CONFIG="4 4 128 128 8" STEPS=40 THREADS=2 bash benches/train_bench.sh
#
# CONFIG is N_LAYER N_HEAD N_EMBD CONTEXT BATCH (sequences per step).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$VOXFLOW_ROOT"
CONFIG=${CONFIG:-"4 4 128 128 8"}
STEPS=${STEPS:-40}
THREADS=${THREADS:-2}
read -r L H E C B <<<"$CONFIG"
cargo build --release --bins --example train_bench -q
BIN=$CARGO_TARGET_DIR/release

ours=$("$BIN/examples/train_bench" $L $H $E $C $B $STEPS $THREADS)
theirs=$("$VOXFLOW_PYTHON" benches/train_bench.py $L $H $E $C $B $STEPS $THREADS)

# The same config through the engine: a corpus of random ids, then train.gpt.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/voxflow-train-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/corpus.py" <<'PY'
import sys, random, json
import pyarrow as pa, pyarrow.parquet as pq
from tokenizers import Tokenizer, models, pre_tokenizers
out = sys.argv[1]
vocab = {f"w{i}": i for i in range(1024)}
tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
tok.save(f"{out}/tokenizer.json")
rng = random.Random(0)
for name, n in [("train", 400_000), ("valid", 20_000)]:
    ids = [rng.randrange(1024) for _ in range(n)]
    pq.write_table(pa.table({"document": pa.array([0] * n, pa.int32()), "id": pa.array(ids, pa.uint32())}), f"{out}/{name}.parquet")
PY
cat >"$WORK/p.yaml" <<YAML
name: train-bench
stages:
  corpus:
    kind: command
    run: $VOXFLOW_PYTHON $WORK/corpus.py {out_dir}
    outputs: {train: train.parquet, valid: valid.parquet, tokenizer: tokenizer.json}
  train:
    kind: train.gpt
    inputs: {corpus: corpus}
    resources: {threads: $THREADS}
    params: {n_layer: $L, n_head: $H, n_embd: $E, context_length: $C, batch_tokens: $((B * C)), steps: $((STEPS + 3)), warmup_steps: 0, learning_rate: 6e-4, min_lr: 6e-5, eval_every: 0, save_every: 100000, checkpoints: [], device: cpu}
YAML
"$BIN/voxflow" run "$WORK/p.yaml" >/dev/null 2>&1
log=$(find "$WORK/.voxflow/objects" -name train.log | head -1)
# Steps after the first 3, as the other two time them.
engine=$(python3 - "$log" "$B" "$C" <<'PY'
import sys, re
lines = [l for l in open(sys.argv[1]) if l.startswith("step ")][3:]
rates = [float(re.search(r"tokens/s (\S+)", l).group(1)) for l in lines]
tokens = int(sys.argv[2]) * int(sys.argv[3])
seconds = sum(tokens / r for r in rates)
print(f'{{"impl": "train.gpt", "tokens_per_s": {len(rates) * tokens / seconds:.1f}, "ms_per_step": {seconds * 1000 / len(rates):.3f}}}')
PY
)

python3 - "$ours" "$theirs" "$engine" "$CONFIG" "$STEPS" "$THREADS" <<'PY'
import json, sys
ours, theirs, engine = (json.loads(a) for a in sys.argv[1:4])
print(f"config (n_layer n_head n_embd context batch): {sys.argv[4]}, {ours['parameters']} parameters, {sys.argv[5]} timed steps, {sys.argv[6]} threads")
print()
print("| run | tokens/s | ms/step | vs PyTorch |")
print("|---|---:|---:|---:|")
for r in (theirs, ours, engine):
    print(f"| {r['impl']} | {r['tokens_per_s']:.0f} | {r['ms_per_step']:.2f} | {r['tokens_per_s'] / theirs['tokens_per_s']:.2f}x |")
print()
print(f"engine overhead per step (train.gpt vs the trainer alone): {100 * (engine['ms_per_step'] / ours['ms_per_step'] - 1):+.1f}%")
PY
