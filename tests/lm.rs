//! `features.lm` against transformers in Python: every word's features must
//! equal the one-pass-per-word definition (lm::windows) run by
//! `transformers.BertModel` / `GPT2Model` on the same tokens, max abs diff
//! below 1e-4, on several layers, context modes, pools and fresh texts; the
//! libtorch ridge against the faer ridge; and the bad-input messages.

mod common;
mod lm_support;

use common::{fresh_seed, run_python, stderr, voxflow, voxflow_json, Scratch};
use lm_support::*;
use serde_json::json;

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
