//! Run history and the command-line conventions around it, through the
//! binary: `runs`, `diff`, `why` after a `--set` run, `compare` and
//! `report` of one run, `gc --keep-runs`, `run --dry-run`, `plan`'s flags
//! and time column, `kinds KIND`, `VOXFLOW_STORE`, `--set` errors and file
//! reasons.

mod common;

use std::process::Command;

use common::{statuses, stderr, stdout, voxflow, voxflow_json, Scratch};

/// The encoding path on a small generated dataset: `score` writes a summary.
const ENCODING: &str = r#"
name: encoding
stages:
  synth:
    kind: synth.stories
    params: {stories: 3, words_per_story: 200, test_words: 200, voxels: 20, seed: 3}
  words:
    kind: align.words
    inputs: {words: synth.words}
  trs:
    kind: align.trs
    inputs: {responses: synth.responses}
  embedding:
    kind: features.random_embedding
    inputs: [words]
    params: {dim: 8, seed: 0}
  embedding_tr:
    kind: downsample
    inputs: {features: embedding, words: words, trs: trs}
  embedding_lagged:
    kind: lag
    inputs: {features: embedding_tr}
  prep:
    kind: prep
    inputs: {responses: synth.responses, repeats: synth.repeats, embedding: embedding_lagged}
    params: {trim: {start: 5, end: 5}}
  fit:
    kind: ridge
    inputs: {data: prep}
    params: {alphas: [1, 10, 100, 1000, 10000]}
  score:
    kind: evaluate
    inputs: {predictions: fit.predictions, actual: prep.y_test, repeats: prep.y_test_repeats, truth: synth.truth}
"#;

/// a -> b -> c; b writes its param `x`, c reads a script file.
const CHAIN: &str = r#"
name: chain
stages:
  a:
    kind: command
    run: echo hello > {outputs.out}
    outputs: {out: a.txt}
  b:
    kind: command
    inputs: [a]
    run: cat {inputs.a} > {outputs.out} && echo {params.x} >> {outputs.out}
    outputs: {out: b.txt}
    params: {x: 1}
  c:
    kind: command
    inputs: [b]
    run: sh scripts/count.sh {inputs.b} > {outputs.out}
    outputs: {out: c.txt}
    params: {files: [scripts/count.sh]}
"#;

fn chain(dir: &Scratch) -> String {
    dir.write("scripts/count.sh", "wc -l < \"$1\"\n");
    dir.write("chain.yaml", CHAIN).to_str().unwrap().to_string()
}

fn ok(args: &[&str]) -> String {
    let output = voxflow(args);
    assert_eq!(output.status.code(), Some(0), "voxflow {args:?}\n{}\n{}", stdout(&output), stderr(&output));
    stdout(&output)
}

#[test]
fn runs_diff_why_compare_and_report_follow_the_recorded_runs() {
    let dir = Scratch::new("history");
    let pipeline = dir.write("encoding.yaml", ENCODING);
    let pipeline = pipeline.to_str().unwrap();
    let first = voxflow_json(&["run", pipeline, "--format", "json"], 0);
    assert_eq!(first["run"], 1);
    let second = voxflow_json(&["run", pipeline, "--format", "json", "--set", "fit.alphas=[100000]"], 0);
    assert_eq!(second["run"], 2);
    assert_eq!(statuses(&second)["fit"], "ran");

    // `runs` lists both, with the overrides and the counts.
    let runs = voxflow_json(&["runs", pipeline, "--format", "json"], 0);
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0]["id"].as_u64(), runs[1]["id"].as_u64()), (Some(1), Some(2)));
    assert_eq!(runs[0]["overrides"], serde_json::json!([]));
    assert_eq!(runs[1]["overrides"], serde_json::json!(["fit.alphas=[100000]"]));
    assert_eq!(runs[0]["ran"], 9);
    assert_eq!((runs[1]["ran"].as_u64(), runs[1]["cached"].as_u64()), (Some(2), Some(7)), "fit and score rerun");
    assert_eq!(runs[0]["pipeline_digest"], runs[1]["pipeline_digest"]);
    let listed = ok(&["runs", pipeline]);
    assert!(listed.lines().nth(2).unwrap().contains("--set fit.alphas=[100000]"), "{listed}");

    // `diff` (the last two) names the changed param and puts the metrics side by side.
    let diff = voxflow_json(&["diff", pipeline, "--format", "json"], 0);
    let params = diff["params"].as_array().unwrap();
    assert_eq!(params.len(), 1, "{diff}");
    assert_eq!(params[0]["stage"], "fit");
    assert_eq!(params[0]["param"], "alphas");
    assert_eq!(params[0]["a"], serde_json::json!([1, 10, 100, 1000, 10000]));
    assert_eq!(params[0]["b"], serde_json::json!([100000]));
    let metrics = diff["metrics"].as_array().unwrap();
    let mean_r = metrics.iter().find(|m| m["stage"] == "score" && m["metric"] == "mean_r").expect("mean_r");
    let (r1, r2) = (mean_r["a"].as_f64().unwrap(), mean_r["b"].as_f64().unwrap());
    assert_ne!(r1, r2, "another alpha gives other predictions");
    assert!((mean_r["change"].as_f64().unwrap() - (r2 - r1)).abs() < 1e-12);
    let text = ok(&["diff", pipeline]);
    let alphas = text.lines().find(|l| l.starts_with("fit")).unwrap_or_else(|| panic!("{text}"));
    assert!(alphas.contains("alphas") && alphas.contains("[1,10,100,1000,10000]") && alphas.contains("[100000]"));
    let line =
        text.lines().find(|l| l.starts_with("score") && l.contains("mean_r ")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(&voxflow::history::significant(r1)) && line.contains(&voxflow::history::significant(r2)));
    // Explicit runs, in either order.
    let reversed = voxflow_json(&["diff", pipeline, "2", "1", "--format", "json"], 0);
    assert_eq!(reversed["params"][0]["a"], serde_json::json!([100000]));

    // `why` without the override: fresh (run 1 left that result), and says
    // what differs from the last run in plan's words.
    let why = ok(&["why", pipeline, "fit"]);
    assert!(why.contains("fit (ridge): fresh"), "{why}");
    assert!(why.contains("param `alphas` changed: [100000] -> [1,10,100,1000,10000]"), "{why}");

    // `compare` shows the last run's numbers (the --set run), `--run 1` the first's.
    let last = voxflow_json(&["compare", pipeline, "--format", "json"], 0);
    assert_eq!(last["run"], 2);
    assert_eq!(last["rows"][0]["mean_r"].as_f64(), Some(r2));
    let earlier = voxflow_json(&["compare", pipeline, "--format", "json", "--run", "1"], 0);
    assert_eq!(earlier["rows"][0]["mean_r"].as_f64(), Some(r1));
    // With --set and no --run: the current plan of those params.
    let planned = voxflow_json(&["compare", pipeline, "--format", "json", "--set", "fit.alphas=[100000]"], 0);
    assert_eq!(planned["rows"][0]["mean_r"].as_f64(), Some(r2));
    let missing = voxflow(&["compare", pipeline, "--run", "9"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("no run 9") && stderr(&missing).contains("1 to 2"), "{}", stderr(&missing));

    // `report` shows the last run: its overrides marked, its numbers.
    let out = dir.join("report.html");
    ok(&["report", pipeline, "--out", out.to_str().unwrap()]);
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("<h2>Run 2</h2>"), "no run heading");
    assert!(html.contains("--set fit.alphas=[100000]"));
    assert!(html.contains("alphas: [100000] (--set)"), "the override is marked");
    // The comparison table: this run's mean r, with 4 significant digits.
    let cell = format!("<td class=num>{}</td>", voxflow::history::significant(r2));
    assert!(html.contains(&cell), "no {cell} in the comparison table");
    ok(&["report", pipeline, "--out", out.to_str().unwrap(), "--run", "1"]);
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("<h2>Run 1</h2>") && html.contains("alphas: [1,10,100,1000,10000];"));
    assert!(!html.contains("(--set)"));
}

#[test]
fn gc_keeps_the_last_runs_and_names_what_it_removes() {
    let dir = Scratch::new("history-gc");
    let pipeline = chain(&dir);
    let pipeline = pipeline.as_str();
    voxflow_json(&["run", pipeline, "--format", "json"], 0);
    let seven = voxflow_json(&["run", pipeline, "--format", "json", "--set", "b.x=7"], 0);
    let b7 = common::stage(&seven, "b")["key"].as_str().unwrap().to_string();
    voxflow_json(&["run", pipeline, "--format", "json"], 0);
    let objects = || std::fs::read_dir(dir.join(".voxflow/objects")).unwrap().count();
    assert_eq!(objects(), 5, "a, and b and c twice");
    // The default keeps the last 5 runs: the x=7 results stay.
    let gc = ok(&["gc", pipeline]);
    assert_eq!(objects(), 5, "{gc}");
    let dry = ok(&["gc", pipeline, "--keep-runs", "1", "--dry-run"]);
    assert!(dry.contains(&format!("would remove b {b7} (chain run 2)")), "{dry}");
    assert_eq!(objects(), 5);
    let removed = ok(&["gc", pipeline, "--keep-runs", "1"]);
    assert_eq!(removed.lines().count(), 2, "{removed}");
    assert!(removed.contains(&format!("removed b {b7} (chain run 2)")), "{removed}");
    assert_eq!(objects(), 3);
}

#[test]
fn dry_run_plan_flags_and_the_time_column() {
    let dir = Scratch::new("history-plan");
    let pipeline = chain(&dir);
    let pipeline = pipeline.as_str();
    // -n and --dry-run print the plan and run nothing.
    for flag in ["-n", "--dry-run"] {
        let plan = ok(&["run", pipeline, flag]);
        assert_eq!(plan.lines().count(), 3, "{plan}");
        assert!(plan.lines().all(|l| l.starts_with("dirty") && l.contains(" - ")), "no time yet:\n{plan}");
    }
    assert!(
        !dir.join(".voxflow/objects").exists() || std::fs::read_dir(dir.join(".voxflow/objects")).unwrap().count() == 0
    );
    voxflow_json(&["run", pipeline, "--format", "json"], 0);
    // The time column: each stage's measured time.
    let plan = voxflow_json(&["plan", pipeline, "--format", "json"], 0);
    for stage in plan["stages"].as_array().unwrap() {
        assert!(stage["last_seconds"].as_f64().unwrap() > 0.0, "{stage}");
    }
    // --force before the path takes no value; --force=STAGE names one; --stage narrows.
    let forced = voxflow_json(&["plan", "--force", pipeline, "--format", "json"], 0);
    assert!(statuses(&forced).values().all(|s| s == "dirty"), "{forced}");
    let one = voxflow_json(&["plan", pipeline, "--force=b", "--stage", "b", "--format", "json"], 0);
    let status = statuses(&one);
    assert_eq!(status.len(), 2, "b and what it needs: {one}");
    assert_eq!((status["a"].as_str(), status["b"].as_str()), ("fresh", "dirty"));
    // --set on plan, as on run.
    let set = voxflow_json(&["plan", pipeline, "--set", "b.x=2", "--format", "json"], 0);
    assert_eq!(common::stage(&set, "b")["reason"], "param `x` changed: 1 -> 2");
    // A changed script is named by its path.
    dir.write("scripts/count.sh", "wc -l < \"$1\" # counted\n");
    let changed = voxflow_json(&["plan", pipeline, "--format", "json"], 0);
    let reason = common::stage(&changed, "c")["reason"].as_str().unwrap().to_string();
    assert!(reason.starts_with("file `scripts/count.sh` changed:"), "{reason}");
}

#[test]
fn kinds_describe_params_store_from_the_environment_and_set_errors_cite_a_real_param() {
    let kinds = ok(&["kinds", "ridge"]);
    let alphas = kinds.lines().find(|l| l.trim_start().starts_with("alphas")).unwrap_or_else(|| panic!("{kinds}"));
    assert!(alphas.contains("list of numbers") && alphas.contains("[1,3.16"), "{alphas}");
    let folds = kinds.lines().find(|l| l.trim_start().starts_with("folds.by")).unwrap_or_else(|| panic!("{kinds}"));
    assert!(folds.contains("story | contiguous | chunked") && folds.contains(" story "), "{folds}");
    assert!(
        kinds.contains("outputs (with the defaults): alphas, cv_scores, weights, weight_columns, predictions"),
        "{kinds}"
    );
    // A kind with a required param lists it as such.
    let table = ok(&["kinds", "load.table"]);
    assert!(table.lines().any(|l| l.trim_start().starts_with("path") && l.contains("(required)")), "{table}");
    let lag = ok(&["kinds", "lag"]);
    assert!(lag.contains("delays") && lag.contains("[1,2,3,4]") && lag.contains("one column block per delay"), "{lag}");
    let completions = ok(&["completions", "bash"]);
    assert!(completions.contains("_voxflow()") && completions.contains("--keep-runs"), "not a bash completion script");
    let unknown = voxflow(&["kinds", "rigde"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("did you mean `ridge`?"), "{}", stderr(&unknown));

    let dir = Scratch::new("history-env");
    let pipeline = chain(&dir);
    let store = dir.join("elsewhere");
    let output = Command::new(common::voxflow_bin())
        .args(["run", &pipeline, "--format", "json"])
        .env("VOXFLOW_STORE", &store)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(store.join("objects").read_dir().unwrap().count() == 3);
    assert!(!dir.join(".voxflow").exists());

    let bad = voxflow(&["plan", &pipeline, "--set", "b=3"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("as in `b.x=1`"), "{}", stderr(&bad));
}
