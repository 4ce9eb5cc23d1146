//! `train.gpt` as a stage, through the `voxflow` binary and its worker: a
//! run killed with SIGKILL (the scheduler, or only its worker) resumes from
//! its last complete state and ends with the same bytes as an uninterrupted
//! run; checkpoints are directory outputs that `verify` re-hashes and that
//! `features.lm` takes as an input with the key the same directory gets by
//! path; bad input is reported with the stage, the param and the fix.

#[path = "../../../tests/common/mod.rs"]
mod common;
mod training;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fresh_seed, python, stage, statuses, stderr, voxflow, voxflow_bin, voxflow_json, Scratch};
use training::{corpus_script, output_digests};

fn write_pipeline(dir: &Scratch, seed: u64, train: &str) -> PathBuf {
    let script = corpus_script(dir, seed);
    dir.write(
        "train.yaml",
        &format!(
            "name: train\nstages:\n  corpus:\n    kind: command\n    run: {} {} {{out_dir}} {{params.docs}}\n    params: {{docs: 300}}\n    outputs: {{train: train.parquet, valid: valid.parquet, tokenizer: tokenizer.json}}\n  train:\n    kind: train.gpt\n    inputs: {{corpus: corpus}}\n    resources: {{threads: 1}}\n    params: {{{train}}}\n",
            python().display(),
            script.display()
        ),
    )
}

/// Small enough to train in seconds on one thread, long enough to be killed midway.
const TRAIN: &str = "n_layer: 2, n_head: 2, n_embd: 32, context_length: 32, batch_tokens: 256, steps: 240, warmup_steps: 20, eval_every: 40, save_every: 20, checkpoints: [0, 120, 240], seed: 7, device: cpu, dropout: 0.1";

fn key_of(summary: &serde_json::Value, name: &str) -> String {
    stage(summary, name)["key"].as_str().unwrap().to_string()
}

/// The highest `state-<step>` in the stage's work directory.
fn saved_step(store: &Path) -> Option<usize> {
    let work = std::fs::read_dir(store.join("work")).ok()?;
    work.flatten()
        .flat_map(|dir| std::fs::read_dir(dir.path()).into_iter().flatten().flatten())
        .filter_map(|e| e.file_name().to_string_lossy().strip_prefix("state-").and_then(|s| s.parse().ok()))
        .max()
}

/// Starts `voxflow run`, waits until the training has saved a state at
/// step >= 60, then SIGKILLs the scheduler (`worker_only` false) or only
/// its worker.
fn run_and_kill(pipeline: &Path, store: &Path, worker_only: bool) {
    let mut child = Command::new(voxflow_bin())
        .args(["run", pipeline.to_str().unwrap(), "--store", store.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while saved_step(store).is_none_or(|step| step < 60) {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        assert!(Instant::now() < deadline, "no training state was saved");
        std::thread::sleep(Duration::from_millis(10));
    }
    if worker_only {
        // The worker is the scheduler's child running voxflow-worker.
        let children =
            std::fs::read_to_string(format!("/proc/{}/task/{}/children", child.id(), child.id())).unwrap_or_default();
        let mut killed = false;
        for pid in children.split_whitespace() {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            if exe.file_name().is_some_and(|f| f == "voxflow-worker") {
                Command::new("kill").args(["-9", pid]).status().unwrap();
                killed = true;
            }
        }
        if !killed {
            // Workers run on the scheduler's job threads; look at every thread.
            for task in std::fs::read_dir(format!("/proc/{}/task", child.id())).unwrap().flatten() {
                let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
                for pid in list.split_whitespace() {
                    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
                    if exe.file_name().is_some_and(|f| f == "voxflow-worker") {
                        Command::new("kill").args(["-9", pid]).status().unwrap();
                        killed = true;
                    }
                }
            }
        }
        assert!(killed, "no worker process found");
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(1), "a killed worker fails its stage");
    } else {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[test]
fn a_killed_training_resumes_and_ends_with_the_bytes_of_an_uninterrupted_run() {
    let seed = fresh_seed();
    let dir = Scratch::new("train-resume");
    let pipeline = write_pipeline(&dir, seed, TRAIN);
    let path = pipeline.to_str().unwrap();

    let whole = dir.join("whole");
    let summary = voxflow_json(&["run", path, "--store", whole.to_str().unwrap(), "--format", "json"], 0);
    let key = key_of(&summary, "train");
    let expected = output_digests(&whole, &key);
    assert_eq!(
        expected.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(),
        ["metrics", "step0", "step120", "step240"]
    );
    assert!(!whole.join("work").join(&key).exists(), "the work directory goes once the result is committed");

    // The metrics: one row per step, validation where due, loss falling.
    let metrics = common::run_python(
        "import sys, pyarrow.parquet as pq; t = pq.read_table(sys.argv[1]).to_pydict(); print(len(t['step']), sum(v is not None for v in t['val_loss']), t['loss'][0], sum(t['loss'][-20:]) / 20)",
        &[whole.join("objects").join(&key).join("metrics.parquet").to_str().unwrap()],
    );
    let fields: Vec<f64> = metrics.split_whitespace().map(|v| v.parse().unwrap()).collect();
    assert_eq!((fields[0], fields[1]), (240.0, 6.0), "{metrics}");
    assert!(fields[3] < fields[2] - 0.5, "the loss should fall: {metrics}");

    for worker_only in [false, true] {
        let store = dir.join(if worker_only { "worker-killed" } else { "run-killed" });
        run_and_kill(&pipeline, &store, worker_only);
        let step = saved_step(&store).unwrap();
        // What a kill during a state's write leaves: a temporary directory, never resumed from.
        let work = store.join("work").join(&key);
        std::fs::create_dir_all(work.join(format!(".state-{}.tmp-1-2", step + 20))).unwrap();
        std::fs::write(work.join(format!(".state-{}.tmp-1-2/trainer.json", step + 20)), "{\"trunc").unwrap();
        // `show` tells where the interrupted stage stands.
        let show = voxflow(&["show", path, "--store", store.to_str().unwrap(), "train"]);
        let shown = common::stdout(&show);
        assert!(shown.contains("running or interrupted: last reported ") && shown.contains("/240 at "), "{shown}");
        let output = voxflow(&["run", path, "--store", store.to_str().unwrap(), "--format", "json"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let said = stderr(&output);
        assert!(said.contains(&format!("train: resuming from step {step} of 240")), "{said}");
        let rerun: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(statuses(&rerun)["train"], "ran");
        assert_eq!(
            output_digests(&store, &key),
            expected,
            "resumed (killed {}) != uninterrupted",
            if worker_only { "worker" } else { "run" }
        );
        let verify = voxflow(&["verify", path, "--store", store.to_str().unwrap()]);
        assert!(verify.status.success(), "{}", stderr(&verify));
        assert!(!work.exists(), "the work directory goes once the result is committed");
    }
}

#[test]
fn checkpoints_are_directory_outputs_that_features_lm_reads_by_input_or_path() {
    let seed = fresh_seed();
    let dir = Scratch::new("train-ckpt");
    let train = "n_layer: 1, n_head: 2, n_embd: 16, context_length: 16, batch_tokens: 64, steps: 10, eval_every: 0, checkpoints: [10], device: cpu";
    let pipeline = write_pipeline(&dir, seed, train);
    dir.write(
        "words.csv",
        "story,word,onset,offset\ns1,the,0.0,0.3\ns1,dog,0.3,0.6\ns1,sees,0.6,0.9\ns1,a,0.9,1.0\ns1,cat,1.0,1.4\n",
    );
    let extra = "  words:\n    kind: load.table\n    params: {path: words.csv}\n  by_input:\n    kind: features.lm\n    inputs: {words: words, model: train.step10}\n    params: {layers: [0, 1], lookback: 8, device: cpu}\n";
    let text = std::fs::read_to_string(&pipeline).unwrap() + extra;
    std::fs::write(&pipeline, &text).unwrap();
    let path = pipeline.to_str().unwrap();
    let summary = voxflow_json(&["run", path, "--format", "json"], 0);
    let key = key_of(&summary, "train");
    let checkpoint = dir.join(".voxflow/objects").join(&key).join("step10");
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(checkpoint.join(file).is_file(), "{file} in the checkpoint");
    }
    // transformers opens the checkpoint.
    common::run_python(
        "import sys; from transformers import GPT2LMHeadModel; m = GPT2LMHeadModel.from_pretrained(sys.argv[1]); assert m.config.n_layer == 1",
        &[checkpoint.to_str().unwrap()],
    );

    // The same directory by path: the same key, hence cached.
    let copy = dir.join("model-copy");
    std::fs::create_dir_all(&copy).unwrap();
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(checkpoint.join(file), copy.join(file)).unwrap();
    }
    let by_path = "  by_path:\n    kind: features.lm\n    inputs: {words: words}\n    params: {model: model-copy, layers: [0, 1], lookback: 8, device: cpu}\n";
    std::fs::write(&pipeline, text.clone() + by_path).unwrap();
    let both = voxflow_json(&["run", path, "--format", "json"], 0);
    assert_eq!(key_of(&both, "by_path"), key_of(&both, "by_input"));
    assert_eq!(statuses(&both)["by_path"], "cached", "{both}");

    // One changed byte in the checkpoint: a different digest for the copy, and verify finds the stored one.
    let weights = checkpoint.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let at = bytes.len() - 1 - (seed as usize % 64);
    bytes[at] ^= 0x01;
    std::fs::write(&weights, &bytes).unwrap();
    std::fs::write(copy.join("model.safetensors"), &bytes).unwrap();
    let plan = voxflow_json(&["plan", path, "--format", "json"], 0);
    assert_eq!(statuses(&plan)["by_path"], "dirty", "the copy's content changed: {plan}");
    let verify = voxflow(&["verify", path, "--format", "json"]);
    assert!(!verify.status.success());
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    assert!(problems[0]["detail"].as_str().unwrap().starts_with("output `step10` digest"), "{report}");
}

#[test]
fn bad_training_input_names_the_stage_the_param_and_the_fix() {
    let seed = fresh_seed();
    let dir = Scratch::new("train-bad");
    // Validation: caught before anything runs, all at once.
    let pipeline = write_pipeline(
        &dir,
        seed,
        "n_embd: 30, n_head: 4, steps: 10, checkpoints: [0, 20], batch_tokens: 100, context_length: 64",
    );
    let output = voxflow(&["validate", pipeline.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let said = stderr(&output);
    for expected in [
        "n_embd (30) is not divisible by n_head (4)",
        "checkpoint step 20 is beyond `steps` (10)",
        "batch_tokens (100) is not a multiple of context_length (64)",
    ] {
        assert!(said.contains(expected), "{expected}\n{said}");
    }
    assert!(said.contains("stages.train.params.n_embd") || said.contains("train"), "{said}");

    // At run time: a corpus shorter than one window, and a vocabulary larger than the embedding.
    let run_error = |train: &str, docs: usize| {
        let dir = Scratch::new("train-bad-run");
        let pipeline = write_pipeline(&dir, seed, train);
        let output =
            voxflow(&["run", pipeline.to_str().unwrap(), "--format", "json", "--set", &format!("corpus.docs={docs}")]);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let train = stage(&summary, "train");
        assert_eq!(train["status"], "failed");
        // Nothing of it is cached.
        let plan = voxflow_json(
            &["plan", pipeline.to_str().unwrap(), "--format", "json", "--set", &format!("corpus.docs={docs}")],
            0,
        );
        assert_eq!(statuses(&plan)["train"], "dirty");
        (train["error"].as_str().unwrap().to_string(), train["hint"].as_str().unwrap_or_default().to_string())
    };
    let (error, hint) = run_error("context_length: 512, batch_tokens: 512, steps: 2, device: cpu", 20);
    assert!(error.contains("fewer than one context window plus one (513)"), "{error}");
    assert!(hint.contains("context_length"), "{hint}");
    let (error, hint) =
        run_error("vocab_size: 8, n_embd: 16, context_length: 16, batch_tokens: 64, steps: 2, device: cpu", 300);
    assert!(error.contains("param `vocab_size` (8) is smaller than the tokenizer's vocabulary (15 tokens"), "{error}");
    assert!(hint.contains("at least 15"), "{hint}");

    // A tokenizer.json that does not parse.
    let dir = Scratch::new("train-bad-tokenizer");
    let pipeline =
        write_pipeline(&dir, seed, "n_embd: 16, context_length: 16, batch_tokens: 64, steps: 2, device: cpu");
    let text = std::fs::read_to_string(&pipeline)
        .unwrap()
        .replace("{params.docs}", "{params.docs} && echo '[1, 2' > {outputs.tokenizer}");
    std::fs::write(&pipeline, text).unwrap();
    let output = voxflow(&["run", pipeline.to_str().unwrap(), "--format", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let train = stage(&summary, "train");
    assert!(train["error"].as_str().unwrap().contains("tokenizer.json"), "{train}");
    assert!(train["hint"].as_str().unwrap().contains("tokenizer.json that the tokenizers library loads"), "{train}");
}

/// pipelines/train-gpt.yaml, shrunk with --set: corpus.grammar, corpus.text,
/// train.gpt, features.lm at each checkpoint, the encoding-model path, and
/// `compare` by checkpoint.
#[test]
fn the_train_gpt_pipeline_runs_shrunk_and_compares_by_checkpoint() {
    let dir = Scratch::new("train-gpt-pipeline");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/train-gpt.yaml");
    let store = dir.join("store");
    let sets = [
        "grammar.documents=300",
        "train.steps=80",
        "train.warmup_steps=10",
        "train.eval_every=20",
        "train.checkpoints=[0, 80]",
        "matrix.step=[0, 80]",
        "synth.voxels=200",
    ];
    let mut args = vec!["run", file.to_str().unwrap(), "--store", store.to_str().unwrap(), "--format", "json"];
    for set in &sets {
        args.extend(["--set", set]);
    }
    let summary = voxflow_json(&args, 0);
    assert!(statuses(&summary).values().all(|s| s == "ran"), "{summary}");
    let train = key_of(&summary, "train");
    let metrics = common::run_python(
        "import sys, pyarrow.parquet as pq; t = pq.read_table(sys.argv[1]).to_pydict(); v = [x for x in t['val_loss'] if x is not None]; print(len(t['step']), v[0], v[-1])",
        &[store.join("objects").join(&train).join("metrics.parquet").to_str().unwrap()],
    );
    let fields: Vec<f64> = metrics.split_whitespace().map(|v| v.parse().unwrap()).collect();
    assert_eq!(fields[0], 80.0);
    assert!(fields[2] < fields[1], "the validation loss falls: {metrics}");

    args[0] = "compare";
    let compare = voxflow_json(&args, 0);
    let rows = compare["rows"].as_array().unwrap_or_else(|| panic!("{compare}"));
    let steps: Vec<&str> = rows.iter().map(|row| row["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["0", "80"], "{compare}");
}
