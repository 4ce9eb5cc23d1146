//! End-to-end behaviour of the engine through the `voxflow` binary:
//! validation, incremental reruns and their reasons, early cut-off, matrix
//! expansion, failures, crash safety, concurrent runs, gc and verify.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{statuses, stderr, stdout, voxflow, voxflow_json, Scratch};

/// a -> b -> c -> e, and d on its own. b writes its param `x`; c counts b's
/// lines, so a new `x` reruns c but gives c the same bytes, and e stays
/// fresh (early cut-off). `y` does not reach b's bytes at all.
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
    params: {x: 1, y: unused}
  c:
    kind: command
    inputs: [b]
    run: wc -l < {inputs.b} > {outputs.out}
    outputs: {out: c.txt}
  d:
    kind: command
    run: echo independent > {outputs.out}
    outputs: {out: d.txt}
  e:
    kind: command
    inputs: [c]
    run: cat {inputs.c} {inputs.c} > {outputs.out}
    outputs: {out: e.txt}
"#;

fn run_json(pipeline: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["run", pipeline, "--format", "json", "-j", "2"];
    args.extend_from_slice(extra);
    voxflow_json(&args, 0)
}

#[test]
fn param_change_reruns_exactly_the_dependents_and_says_why() {
    let dir = Scratch::new("incremental");
    let pipeline = dir.write("chain.yaml", CHAIN);
    let pipeline = pipeline.to_str().unwrap();

    let first = statuses(&run_json(pipeline, &[]));
    assert!(first.values().all(|s| s == "ran"), "{first:?}");
    let again = statuses(&run_json(pipeline, &[]));
    assert!(again.values().all(|s| s == "cached"), "{again:?}");

    let changed = run_json(pipeline, &["--set", "b.x=2"]);
    let status = statuses(&changed);
    assert_eq!(status["a"], "cached");
    assert_eq!(status["b"], "ran");
    assert_eq!(status["c"], "ran", "c's input changed");
    assert_eq!(status["e"], "cached", "c wrote the same line count: early cut-off");
    assert_eq!(status["d"], "cached");
    let b = common::stage(&changed, "b");
    assert_eq!(b["reason"], "param `x` changed: 1 -> 2");
    let text =
        std::fs::read_to_string(dir.join(".voxflow/objects").join(b["key"].as_str().unwrap()).join("b.txt")).unwrap();
    assert_eq!(text, "hello\n2\n");

    let c = common::stage(&changed, "c");
    assert!(c["reason"].as_str().unwrap().starts_with("input `b` changed"), "{c}");

    // A value with two lines changes c's count, and the change reaches e.
    let status = statuses(&run_json(pipeline, &["--set", "b.x=\"2\\n3\""]));
    assert_eq!((status["b"].as_str(), status["c"].as_str(), status["e"].as_str()), ("ran", "ran", "ran"));

    // Going back to an earlier value finds the earlier result in the store.
    let back = statuses(&run_json(pipeline, &[]));
    assert!(back.values().all(|s| s == "cached"), "{back:?}");
}

#[test]
fn identical_upstream_output_stops_the_cascade() {
    let dir = Scratch::new("cutoff");
    let pipeline = dir.write("chain.yaml", CHAIN);
    let pipeline = pipeline.to_str().unwrap();
    run_json(pipeline, &[]);
    let plan = voxflow_json(&["plan", pipeline, "--format", "json", "--set", "b.y=other"], 0);
    let plan_status = statuses(&plan);
    assert_eq!(plan_status["b"], "dirty");
    assert_eq!(plan_status["c"], "dirty", "the plan cannot know b's bytes yet");
    let c = common::stage(&plan, "c");
    assert_eq!(c["reason"], "upstream `b` runs first");

    let status = statuses(&run_json(pipeline, &["--set", "b.y=other"]));
    assert_eq!(status["b"], "ran");
    assert_eq!(status["c"], "cached", "b's bytes did not change");
    assert_eq!(status["e"], "cached");
}

#[test]
fn why_and_plan_explain_in_words() {
    let dir = Scratch::new("why");
    let pipeline = dir.write("chain.yaml", CHAIN);
    let pipeline = pipeline.to_str().unwrap();
    let before = voxflow(&["why", pipeline, "a"]);
    assert!(stdout(&before).contains("new stage, no cached result"), "{}", stdout(&before));
    run_json(pipeline, &[]);
    let fresh = voxflow(&["why", pipeline, "b"]);
    assert!(stdout(&fresh).contains("b (command): fresh"), "{}", stdout(&fresh));
    let changed = voxflow(&["why", pipeline, "b", "--set", "b.x=5"]);
    assert!(stdout(&changed).contains("param `x` changed: 1 -> 5"), "{}", stdout(&changed));
    let forced = voxflow_json(&["plan", pipeline, "--format", "json", "--force=a"], 0);
    let a = &forced["stages"][0];
    assert_eq!(
        (a["name"].as_str(), a["status"].as_str(), a["reason"].as_str()),
        (Some("a"), Some("dirty"), Some("forced"))
    );

    // A removed result is reported as such, then rebuilt.
    let key = a["key"].as_str().unwrap();
    std::fs::remove_file(dir.join(".voxflow/objects").join(key).join("a.txt")).unwrap();
    let damaged = voxflow(&["why", pipeline, "a"]);
    assert!(stdout(&damaged).contains("output missing or damaged"), "{}", stdout(&damaged));
    let status = statuses(&run_json(pipeline, &[]));
    assert_eq!(status["a"], "ran");
}

#[test]
fn matrix_expands_stages_and_matches_inputs_by_value() {
    let dir = Scratch::new("matrix");
    let pipeline = dir.write(
        "m.yaml",
        r#"
name: sweep
matrix:
  method: [rect, lanczos]
  layer: [1, 2, 3]
stages:
  source:
    kind: command
    run: echo {params.method} > {outputs.out}
    outputs: {out: s.txt}
    params: {method: "${matrix.method}"}
  feature:
    kind: command
    inputs: {src: source}
    run: cat {inputs.src} > {outputs.out} && echo layer {params.layer} >> {outputs.out}
    outputs: {out: f.txt}
    params: {layer: "${matrix.layer}"}
  single:
    kind: command
    run: echo once > {outputs.out}
    outputs: {out: o.txt}
"#,
    );
    let pipeline = pipeline.to_str().unwrap();
    let summary = run_json(pipeline, &[]);
    let names: Vec<String> = statuses(&summary).into_keys().collect();
    assert_eq!(names.len(), 2 + 6 + 1, "{names:?}");
    assert!(names.contains(&"source[method=rect]".to_string()));
    assert!(names.contains(&"feature[method=lanczos,layer=3]".to_string()));
    assert!(names.contains(&"single".to_string()));
    let stage = common::stage(&summary, "feature[method=lanczos,layer=3]");
    assert_eq!(stage["matrix"], serde_json::json!({"method": "lanczos", "layer": 3}));
    let text = std::fs::read_to_string(dir.join(".voxflow/objects").join(stage["key"].as_str().unwrap()).join("f.txt"))
        .unwrap();
    assert_eq!(text, "lanczos\nlayer 3\n");
    let validate = voxflow(&["validate", pipeline]);
    assert!(stdout(&validate).contains("3 stages (9 after matrix expansion)"), "{}", stdout(&validate));
}

/// Inputs that a stage's params ask for (align.trs's default `source:
/// responses`, align.words's `source: table`, prep's confounds for motion
/// handling), ridge's `data` or its three matrices and prep's feature inputs
/// are checked before anything runs; with another source they are not
/// needed.
#[test]
fn inputs_that_the_params_ask_for_are_checked_at_validation() {
    let dir = Scratch::new("param-inputs");
    let pipeline = dir.write(
        "p.yaml",
        "name: p\nstages:\n  trs:\n    kind: align.trs\n    params: {tr: 2.0}\n  words:\n    kind: align.words\n  counted:\n    kind: align.trs\n    params: {source: counts, tr: 2.0, counts: {s: 10}}\n  fit:\n    kind: ridge\n    inputs: {x_train: counted, y_train: counted}\n  p1:\n    kind: prep\n    inputs: {responses: counted}\n  p2:\n    kind: prep\n    inputs: {responses: counted, emb: counted}\n    params: {motion: {mode: regress}}\n",
    );
    let output = voxflow(&["validate", pipeline.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    let file = pipeline.display().to_string();
    for expected in [
        format!("{file}:3: stage `trs`: kind `align.trs` needs an input named `responses`"),
        format!("{file}:6: stage `words`: kind `align.words` needs an input named `words`"),
        "or change the params that ask for it".to_string(),
        format!("{file}:11: stage `fit`: kind `ridge` needs a `data` input or inputs named x_train, y_train and x_test (missing: x_test)"),
        format!("{file}:14: stage `p1`: prep needs at least one feature input besides `responses`"),
        format!("{file}:17: stage `p2`: kind `prep` needs an input named `confounds`"),
        "5 errors found".to_string(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("`counted`"), "{text}");
    assert!(!dir.join(".voxflow").exists());
}

/// Params with a fixed set of values are enums: a value outside the set is
/// reported with the allowed values and the nearest one. Outputs that depend
/// on the params follow them: `band_weights` is an output of a banded ridge
/// only, so naming it on any other is a validation error, not a run failure.
#[test]
fn enum_params_and_param_dependent_outputs_are_checked_at_validation() {
    let dir = Scratch::new("typed-params");
    let pipeline = dir.write(
        "p.yaml",
        r#"name: p
stages:
  trs:
    kind: align.trs
    params: {source: counts, counts: {s: 10}}
  ds:
    kind: downsample
    inputs: {features: trs, words: trs, trs: trs}
    params: {method: lanczo}
  folds:
    kind: ridge
    inputs: {x_train: trs, y_train: trs, x_test: trs}
    params: {folds: {by: stroy}}
  dev:
    kind: ridge
    inputs: {x_train: trs, y_train: trs, x_test: trs}
    params: {device: tpu}
  fit:
    kind: ridge
    inputs: {x_train: trs, y_train: trs, x_test: trs}
  w:
    kind: lag
    inputs: {features: fit.band_weights}
  banded:
    kind: ridge
    inputs: {x_train: trs, y_train: trs, x_test: trs}
    params: {banded: true}
  wb:
    kind: lag
    inputs: {features: banded.band_weights}
"#,
    );
    let output = voxflow(&["validate", pipeline.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    let file = pipeline.display().to_string();
    for expected in [
        "stage `ds`: param `method`: unknown value `lanczo`: expected one of rect, average, sum, last, lanczos, sinc\n  hint: did you mean `lanczos`?".to_string(),
        "stage `folds`: param `folds.by`: unknown value `stroy`: expected one of story, contiguous, chunked\n  hint: did you mean `story`?".to_string(),
        "stage `dev`: param `device`: unknown value `tpu`: expected one of auto, cpu, cuda, cuda:N".to_string(),
        format!("{file}:23: stage `w`: stage `fit` has no output `band_weights`\n  hint: its outputs: alphas, cv_scores, weights, weight_columns, predictions"),
        "4 errors found".to_string(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("stage `wb`"), "{text}");
}

#[test]
fn validation_reports_every_error_with_file_and_line() {
    let dir = Scratch::new("validate");
    let pipeline = dir.write(
        "bad.yaml",
        r#"name: bad
stages:
  a:
    kind: comand
    run: echo
  b:
    kind: command
    run: echo {outputs.x}
    outputs: {x: x.txt}
    inputs: [c, nowhere]
    parms: {}
  c:
    kind: command
    run: echo {outputs.y}
    outputs: {y: y.txt}
    inputs: [b]
    resources: {threads: many}
  d:
    kind: load.table
    params: {path: 3}
"#,
    );
    let output = voxflow(&["validate", pipeline.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    let file = pipeline.display().to_string();
    for expected in [
        format!("{file}:4: stage `a`: unknown kind `comand`"),
        "did you mean `command`?".to_string(),
        format!("{file}:10: stage `b`: input `nowhere` names no stage"),
        format!("{file}:11: stage `b`: unknown key `parms` in a stage"),
        "did you mean `params`?".to_string(),
        format!("{file}:17: stage `c`: `threads` must be a non-negative integer"),
        "the inputs form a cycle: b -> c".to_string(),
        format!("{file}:20: stage `d`: param `path`: invalid type"),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    // Nothing ran, no store was made.
    assert!(!dir.join(".voxflow").exists());
    let run = voxflow(&["run", pipeline.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2));

    let set = voxflow(&["validate", dir.write("ok.yaml", CHAIN).to_str().unwrap(), "--set", "bb.x=1"]);
    assert_eq!(set.status.code(), Some(2));
    assert!(
        stderr(&set).contains("no stage named `bb`") && stderr(&set).contains("did you mean `b`?"),
        "{}",
        stderr(&set)
    );
}

#[test]
fn a_failing_stage_blocks_only_its_descendants_and_caches_nothing() {
    let dir = Scratch::new("failure");
    let pipeline = dir.write(
        "fail.yaml",
        r#"
name: fail
stages:
  bad:
    kind: command
    run: "echo about to fail >&2; echo reason: disk on fire >&2; exit 3"
    outputs: {out: o.txt}
  after_bad:
    kind: command
    inputs: [bad]
    run: cp {inputs.bad} {outputs.out}
    outputs: {out: o.txt}
  good:
    kind: command
    run: sleep 0.3; echo fine > {outputs.out}
    outputs: {out: o.txt}
"#,
    );
    let pipeline = pipeline.to_str().unwrap();
    let summary = voxflow_json(&["run", pipeline, "--format", "json", "-j", "2"], 1);
    let status = statuses(&summary);
    assert_eq!(status["bad"], "failed");
    assert_eq!(status["after_bad"], "skipped");
    assert_eq!(status["good"], "ran");
    let bad = common::stage(&summary, "bad");
    let error = bad["error"].as_str().unwrap();
    assert!(error.contains("exit code 3") && error.contains("reason: disk on fire"), "{error}");
    // Nothing was cached for the failed stage: the next run tries it again.
    let again = voxflow_json(&["run", pipeline, "--format", "json"], 1);
    assert_eq!(statuses(&again)["bad"], "failed");
    assert_eq!(statuses(&again)["good"], "cached");
    let objects = std::fs::read_dir(dir.join(".voxflow/objects")).unwrap().count();
    assert_eq!(objects, 1);
    assert_eq!(std::fs::read_dir(dir.join(".voxflow/tmp")).unwrap().count(), 0, "failed staging is moved out of tmp/");
}

/// The scheduler's bookkeeping: a stage reading one upstream under two roles
/// waits for it once, a failure skips the whole chain below it (and a stage
/// with one bad input among good ones), `--stage` runs only what the target
/// needs, and `--fail-fast` starts nothing after the first failure.
#[test]
fn fan_in_skips_targets_and_fail_fast_follow_the_graph() {
    let dir = Scratch::new("graph");
    let pipeline = dir.write(
        "graph.yaml",
        r#"
name: graph
stages:
  bad:
    kind: command
    run: exit 1
    outputs: {out: o.txt}
  root:
    kind: command
    run: echo root > {outputs.out}
    outputs: {out: o.txt}
  left:
    kind: command
    inputs: [root]
    run: cat {inputs.root} > {outputs.out}
    outputs: {out: o.txt}
  twice:
    kind: command
    inputs: {one: root, two: root}
    run: cat {inputs.one} {inputs.two} > {outputs.out}
    outputs: {out: o.txt}
  join:
    kind: command
    inputs: {l: left, t: twice}
    run: cat {inputs.l} {inputs.t} > {outputs.out}
    outputs: {out: o.txt}
  after_bad:
    kind: command
    inputs: [root, bad]
    run: cat {inputs.root} > {outputs.out}
    outputs: {out: o.txt}
  deep:
    kind: command
    inputs: [after_bad]
    run: cat {inputs.after_bad} > {outputs.out}
    outputs: {out: o.txt}
"#,
    );
    let pipeline = pipeline.to_str().unwrap();
    let store = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let fail_fast_store = store("fail-fast");
    let fail_fast = statuses(&voxflow_json(
        &["run", pipeline, "-j", "1", "--fail-fast", "--format", "json", "--store", &fail_fast_store],
        1,
    ));
    assert_eq!(fail_fast["bad"], "failed", "{fail_fast:?}");
    assert!(fail_fast.iter().filter(|(name, _)| *name != "bad").all(|(_, s)| s == "skipped"), "{fail_fast:?}");

    let targets_store = store("targets");
    let targets = statuses(&voxflow_json(
        &["run", pipeline, "-j", "2", "--stage", "join", "--format", "json", "--store", &targets_store],
        0,
    ));
    let names: Vec<&str> = targets.keys().map(String::as_str).collect();
    assert_eq!(names, ["join", "left", "root", "twice"]);
    assert!(targets.values().all(|s| s == "ran"), "{targets:?}");

    for jobs in ["1", "2", "8"] {
        let summary = voxflow_json(&["run", pipeline, "-j", jobs, "--format", "json", "--store", &store(jobs)], 1);
        let status = statuses(&summary);
        for name in ["root", "left", "twice", "join"] {
            assert_eq!(status[name], "ran", "-j {jobs}: {status:?}");
        }
        assert_eq!(status["bad"], "failed");
        assert_eq!((status["after_bad"].as_str(), status["deep"].as_str()), ("skipped", "skipped"));
        assert_eq!(common::stage(&summary, "deep")["reason"], "upstream `after_bad` did not finish");
        let twice = std::fs::read_to_string(
            dir.join(jobs)
                .join("objects")
                .join(common::stage(&summary, "twice")["key"].as_str().unwrap())
                .join("o.txt"),
        )
        .unwrap();
        assert_eq!(twice, "root\nroot\n");
    }
}

#[test]
fn kill_9_during_a_run_then_rerun_completes_with_a_clean_verify() {
    let dir = Scratch::new("kill9");
    let pipeline = dir.write(
        "slow.yaml",
        r#"
name: slow
stages:
  quick:
    kind: command
    run: echo quick > {outputs.out}
    outputs: {out: q.txt}
  slow:
    kind: command
    inputs: [quick]
    run: echo partial > {outputs.out}; sleep 30; echo done >> {outputs.out}
    outputs: {out: s.txt}
"#,
    );
    let mut child = Command::new(common::voxflow_bin())
        .args(["run", pipeline.to_str().unwrap(), "-j", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the slow stage has written its partial output in staging.
    let tmp = dir.join(".voxflow/tmp");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let staged =
            std::fs::read_dir(&tmp).map(|d| d.flatten().any(|e| e.path().join("s.txt").exists())).unwrap_or(false);
        if staged {
            break;
        }
        assert!(Instant::now() < deadline, "the slow stage never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc_kill(child.id() as i32, 9) };
    child.wait().unwrap();
    let plan = statuses(&voxflow_json(&["plan", pipeline.to_str().unwrap(), "--format", "json"], 0));
    assert_eq!(plan["quick"], "fresh");
    assert_eq!(plan["slow"], "dirty", "a killed stage must not look cached");
    let pipeline_fast = std::fs::read_to_string(&pipeline).unwrap().replace("sleep 30", "sleep 0");
    std::fs::write(&pipeline, pipeline_fast).unwrap();
    let status = statuses(&voxflow_json(&["run", pipeline.to_str().unwrap(), "--format", "json"], 0));
    assert_eq!((status["quick"].as_str(), status["slow"].as_str()), ("cached", "ran"));
    let verify = voxflow_json(&["verify", pipeline.to_str().unwrap(), "--format", "json"], 0);
    assert_eq!(verify["problems"].as_array().unwrap().len(), 0);
    assert_eq!(verify["objects"], 2);
    // gc clears the staging directory the killed run left behind.
    let gc = voxflow(&["gc", pipeline.to_str().unwrap()]);
    assert!(gc.status.success());
    assert!(stdout(&gc).contains("removed tmp/"), "{}", stdout(&gc));
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

/// Ctrl-C while a command runs: its process group is stopped at once (the
/// stage does not wait for `sleep` to end), the stage is cancelled, the
/// stage after it never starts, and nothing is stored for either.
#[test]
fn ctrl_c_stops_a_running_command_and_stores_nothing() {
    let dir = Scratch::new("ctrl-c");
    let marker = dir.join("after-sleep");
    let pipeline = dir.write(
        "slow.yaml",
        &format!(
            r#"
name: slow
stages:
  slow:
    kind: command
    run: echo partial > {{outputs.out}}; sleep 29.75; touch {marker}
    outputs: {{out: s.txt}}
  later:
    kind: command
    inputs: [slow]
    run: cat {{inputs.slow}} > {{outputs.out}}
    outputs: {{out: l.txt}}
"#,
            marker = marker.display()
        ),
    );
    let child = Command::new(common::voxflow_bin())
        .args(["run", pipeline.to_str().unwrap(), "-j", "2", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let tmp = dir.join(".voxflow/tmp");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_dir(&tmp).map(|d| d.flatten().any(|e| e.path().join("s.txt").exists())).unwrap_or(false) {
        assert!(Instant::now() < deadline, "the slow stage never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let interrupted = Instant::now();
    unsafe { libc_kill(child.id() as i32, 2) };
    let output = child.wait_with_output().unwrap();
    let seconds = interrupted.elapsed().as_secs_f64();
    assert_eq!(output.status.code(), Some(130));
    assert!(seconds < 10.0, "the run took {seconds:.1}s to stop");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let status = statuses(&summary);
    assert_eq!(status["slow"], "cancelled", "{summary}");
    // Whichever the scheduler sees first: the interruption, or `slow` ending.
    assert!(["cancelled", "skipped"].contains(&status["later"].as_str()), "{summary}");
    // Neither the shell (its command line names the marker) nor its `sleep` is left.
    let marker_text = marker.display().to_string();
    let alive = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            cmdline == b"sleep\x0029.75\0" || String::from_utf8_lossy(&cmdline).contains(&marker_text)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive() {
        assert!(Instant::now() < deadline, "the command's processes outlived the cancelled run");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!marker.exists());
    assert_eq!(std::fs::read_dir(dir.join(".voxflow/objects")).unwrap().count(), 0);
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

#[test]
fn two_concurrent_runs_on_one_store_do_each_stage_once() {
    let dir = Scratch::new("concurrent");
    let log = dir.join("executions.log");
    let mut text = String::from("name: concurrent\nstages:\n");
    for i in 0..8 {
        text.push_str(&format!(
            "  s{i}:\n    kind: command\n    run: echo s{i} >> {log}; sleep 0.2; echo {i} > {{outputs.out}}\n    outputs: {{out: o.txt}}\n",
            log = log.display()
        ));
    }
    text.push_str("  join:\n    kind: command\n    inputs: [s0, s7]\n    run: cat {inputs.s0} {inputs.s7} > {outputs.out}\n    outputs: {out: o.txt}\n");
    let pipeline = dir.write("c.yaml", &text);
    let spawn = || {
        Command::new(common::voxflow_bin())
            .args(["run", pipeline.to_str().unwrap(), "-j", "4", "--format", "json"])
            .output()
    };
    let (first, second) = std::thread::scope(|scope| {
        let a = scope.spawn(spawn);
        let b = scope.spawn(spawn);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert!(first.status.success() && second.status.success(), "{}\n{}", stderr(&first), stderr(&second));
    let executions = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = executions.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 8, "each stage ran exactly once across both runs:\n{executions}");
    lines.dedup();
    assert_eq!(lines.len(), 8);
    let ran = |output: &std::process::Output| {
        statuses(&serde_json::from_slice(&output.stdout).unwrap()).values().filter(|s| *s == "ran").count()
    };
    assert_eq!(ran(&first) + ran(&second), 9);
    let verify = voxflow_json(&["verify", pipeline.to_str().unwrap(), "--format", "json"], 0);
    assert_eq!(verify["objects"], 9);
    assert_eq!(verify["problems"].as_array().unwrap().len(), 0);
}

#[test]
fn verify_finds_a_damaged_artifact_and_fix_makes_the_next_run_rebuild_it() {
    let dir = Scratch::new("verify");
    let pipeline = dir.write("chain.yaml", CHAIN);
    let pipeline = pipeline.to_str().unwrap();
    let summary = run_json(pipeline, &[]);
    let a = common::stage(&summary, "a");
    let file = dir.join(".voxflow/objects").join(a["key"].as_str().unwrap()).join("a.txt");
    std::fs::write(&file, "jello\n").unwrap(); // same size, other bytes
    let verify = voxflow_json(&["verify", pipeline, "--format", "json"], 1);
    let problems = verify["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0]["stage"], "a");
    voxflow_json(&["verify", pipeline, "--fix", "--format", "json"], 1);
    let status = statuses(&run_json(pipeline, &[]));
    assert_eq!(status["a"], "ran");
    assert_eq!(status["b"], "cached", "a's rebuilt bytes are the same, so b stays fresh");
    voxflow_json(&["verify", pipeline, "--format", "json"], 0);
}

#[test]
fn gc_keeps_current_results_and_removes_the_rest() {
    let dir = Scratch::new("gc");
    let pipeline = dir.write("chain.yaml", CHAIN);
    let pipeline = pipeline.to_str().unwrap();
    run_json(pipeline, &[]);
    run_json(pipeline, &["--set", "b.x=7"]);
    let objects = || std::fs::read_dir(dir.join(".voxflow/objects")).unwrap().count();
    assert_eq!(objects(), 7, "a, b and c twice, d, e: e is shared");
    // gc keeps what the file (x=1) and the last run (x=7) reference.
    let gc = voxflow(&["gc", pipeline]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert_eq!(objects(), 7);
    run_json(pipeline, &[]);
    let gc = voxflow(&["gc", pipeline, "--keep-runs", "1"]);
    assert!(gc.status.success());
    assert_eq!(objects(), 5, "b and c of x=7 are referenced by nothing now:\n{}", stdout(&gc));
    let status = statuses(&run_json(pipeline, &[]));
    assert!(status.values().all(|s| s == "cached"), "{status:?}");
}

#[test]
fn input_files_are_hashed_by_content() {
    let dir = Scratch::new("files");
    dir.write("data/table.csv", "a,b\n1,2\n3,4\n");
    let pipeline = dir.write(
        "load.yaml",
        "name: load\nstages:\n  table:\n    kind: load.table\n    params: {path: data/table.csv}\n  copy:\n    kind: command\n    inputs: [table]\n    run: cp {inputs.table} {outputs.out}\n    outputs: {out: t.parquet}\n",
    );
    let pipeline = pipeline.to_str().unwrap();
    run_json(pipeline, &[]);
    // Same content, new mtime: nothing reruns.
    std::thread::sleep(Duration::from_millis(20));
    dir.write("data/table.csv", "a,b\n1,2\n3,4\n");
    let status = statuses(&run_json(pipeline, &[]));
    assert!(status.values().all(|s| s == "cached"), "{status:?}");
    // New content: the loader reruns and says which file changed.
    dir.write("data/table.csv", "a,b\n1,2\n3,5\n");
    let summary = run_json(pipeline, &[]);
    let table = common::stage(&summary, "table");
    assert_eq!(table["status"], "ran");
    assert!(table["reason"].as_str().unwrap().starts_with("file `data/table.csv` (`path`) changed"), "{table}");
    // Moving the file (same content) keeps the key.
    std::fs::create_dir_all(dir.join("moved")).unwrap();
    std::fs::rename(dir.join("data/table.csv"), dir.join("moved/t.csv")).unwrap();
    let status = statuses(&run_json(pipeline, &["--set", "table.path=moved/t.csv"]));
    assert_eq!(status["table"], "cached");
}

#[test]
fn show_lists_artifacts_and_logs() {
    let dir = Scratch::new("show");
    let pipeline = dir.write("chain.yaml", CHAIN);
    let pipeline = pipeline.to_str().unwrap();
    run_json(pipeline, &[]);
    let shown = voxflow_json(&["show", pipeline, "b", "--format", "json"], 0);
    let stage = &shown["stages"][0];
    assert_eq!(stage["name"], "b");
    assert_eq!(stage["outputs"]["out"]["file"], "b.txt");
    assert_eq!(stage["outputs"]["out"]["digest"].as_str().unwrap().len(), 32);
    assert_eq!(stage["logs"], serde_json::json!(["logs/stdout.txt", "logs/stderr.txt"]));
    let human = voxflow(&["show", pipeline, "b"]);
    assert!(stdout(&human).contains("output out:"), "{}", stdout(&human));
}

#[test]
fn the_command_example_runs_and_reruns_only_what_changed() {
    let dir = Scratch::new("example");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/commands/pipeline.yaml");
    let store = dir.join("store");
    let store = store.to_str().unwrap();
    let first = voxflow_json(&["run", example, "--store", store, "--format", "json"], 0);
    assert!(statuses(&first).values().all(|s| s == "ran"), "{first}");
    let report = common::stage(&first, "report");
    let text =
        std::fs::read_to_string(dir.join("store/objects").join(report["key"].as_str().unwrap()).join("report.md"))
            .unwrap();
    // Braces written as {{ }} reach the shell as { }.
    assert!(text.starts_with("# top words\nword,count\nthe,5\n"), "{text}");
    let second =
        statuses(&voxflow_json(&["run", example, "--store", store, "--set", "counts.top=3", "--format", "json"], 0));
    assert_eq!(
        (second["words"].as_str(), second["counts"].as_str(), second["lengths"].as_str(), second["report"].as_str()),
        ("cached", "ran", "cached", "ran")
    );
}

#[test]
fn a_failed_command_keeps_its_log_outside_the_objects() {
    let dir = Scratch::new("failed-log");
    let pipeline = dir.write(
        "f.yaml",
        "name: f\nstages:\n  s:\n    kind: command\n    run: echo details >&2; exit 4\n    outputs: {o: o.txt}\n",
    );
    let run = voxflow_json(&["run", pipeline.to_str().unwrap(), "--format", "json"], 1);
    let hint = run["stages"][0]["hint"].as_str().unwrap();
    let log = hint.strip_prefix("the full log is ").unwrap();
    assert!(log.contains("/failed/"), "{hint}");
    assert_eq!(std::fs::read_to_string(log).unwrap(), "details\n");
}

/// `voxflow run > run.log 2>&1` (a cluster job's output): each stage's line
/// once, cached stages included, and a failure's hint; with stdout apart
/// from stderr, the lines go to stderr and the table to stdout.
#[test]
fn a_log_of_both_streams_lists_each_stage_once() {
    let dir = Scratch::new("one-log");
    let pipeline = dir.write(
        "log.yaml",
        "name: log\nstages:\n  first:\n    kind: command\n    run: echo one > {outputs.o}\n    outputs: {o: o.txt}\n  \
         second:\n    kind: command\n    run: echo two > {outputs.o}\n    outputs: {o: o.txt}\n  \
         broken:\n    kind: command\n    inputs: [first]\n    run: exit 5\n    outputs: {o: o.txt}\n",
    );
    let pipeline = pipeline.to_str().unwrap();
    let run_into_one_file = |name: &str| {
        let path = dir.join(name);
        let log = std::fs::File::create(&path).unwrap();
        let status = Command::new(common::voxflow_bin())
            .args(["run", pipeline])
            .env_remove("VOXFLOW_LOG")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(1), "a stage failed");
        std::fs::read_to_string(path).unwrap()
    };
    let count = |text: &str, needle: &str| text.lines().filter(|line| line.contains(needle)).count();
    let log = run_into_one_file("first.log");
    for stage in ["first", "second"] {
        assert_eq!(count(&log, &format!("ran       {stage} (")), 1, "{log}");
        assert_eq!(count(&log, stage), 1, "each stage once:\n{log}");
    }
    assert_eq!(count(&log, "FAILED    broken: "), 1, "{log}");
    assert_eq!(count(&log, "hint: the full log is "), 1, "{log}");
    assert_eq!(count(&log, "log: 2 ran, 0 cached, 1 failed, 0 skipped"), 1, "{log}");
    let again = run_into_one_file("again.log");
    assert_eq!(count(&again, "cached    first"), 1, "{again}");
    assert_eq!(count(&again, "cached    second"), 1, "{again}");
    assert_eq!(again.lines().count(), 5, "two cached, one failure with its hint, the counts:\n{again}");

    let apart = voxflow(&["run", pipeline]);
    assert_eq!(apart.status.code(), Some(1));
    let (out, err) = (stdout(&apart), stderr(&apart));
    assert_eq!(count(&out, "cached    first"), 1, "the table on stdout:\n{out}");
    assert_eq!(count(&out, "error: "), 1, "{out}");
    assert_eq!(count(&err, "cached    first"), 1, "the stage lines on stderr:\n{err}");
    assert_eq!(count(&err, "log: 0 ran, 2 cached, 1 failed"), 1, "{err}");
}

/// After an upstream param changes, `plan` says of every stage below it only
/// that the upstream runs first: no param of its own that did not change
/// (the ridge stages' `device`, which is not keyed, once showed up here).
#[test]
fn plan_after_an_upstream_change_names_no_unchanged_param() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/demo.yaml");
    let dir = Scratch::new("demo-plan");
    let store = dir.join("store");
    let small = [
        "--store",
        store.to_str().unwrap(),
        "--set",
        "synth.stories=4",
        "--set",
        "synth.words_per_story=600",
        "--set",
        "synth.test_words=600",
        "--set",
        "synth.voxels=40",
    ];
    let run = run_json(demo, &small);
    assert!(statuses(&run).values().all(|s| s == "ran"), "{run}");
    let mut args = vec!["plan", demo, "--format", "json"];
    args.extend_from_slice(&small);
    args.extend_from_slice(&["--set", "synth.seed=8"]);
    let plan = voxflow_json(&args, 0);
    let stages = plan["stages"].as_array().unwrap();
    assert!(stages.len() > 10, "{plan}");
    for stage in stages {
        let (name, reason) = (stage["name"].as_str().unwrap(), stage["reason"].as_str().unwrap());
        assert_eq!(stage["status"], "dirty", "{stage}");
        if name == "synth" {
            assert_eq!(reason, "param `seed` changed: 7 -> 8");
        } else {
            let upstream = reason.strip_prefix("upstream `").and_then(|r| r.strip_suffix("` runs first"));
            assert!(upstream.is_some_and(|u| !u.contains('`')), "{name}: {reason}");
        }
    }
}
