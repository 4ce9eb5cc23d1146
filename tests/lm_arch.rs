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
mod lm_support;

use common::{fresh_seed, run_python, stderr, voxflow, voxflow_json, Scratch};
use lm_support::*;
use serde_json::json;

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
