//! The Slurm executor against a real Slurm cluster: scripts/slurm-start.sh
//! starts a single-node one (scripts/test.sh does it before `cargo test`).
//! Every test that needs the cluster fails, with a hint, when it is not up.
//!
//! Each test gives its pipeline a unique name, so the jobs of a run are the
//! ones named `voxflow:<pipeline>:*` in `squeue -t all`, even while other
//! tests submit their own.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{statuses, stderr, stdout, voxflow, voxflow_json, Scratch};

/// Panics (the test fails) unless a Slurm controller answers.
fn require_slurm() {
    let answer = Command::new("scontrol").arg("ping").output();
    let up = matches!(&answer, Ok(output) if String::from_utf8_lossy(&output.stdout).contains("UP"));
    assert!(
        up,
        "Slurm is not running here ({}): start it with `sudo scripts/slurm-start.sh` (scripts/test.sh does) and stop it with scripts/slurm-stop.sh",
        match &answer {
            Ok(output) => format!("scontrol ping: {}{}", stdout(output).trim(), stderr(output).trim()),
            Err(error) => format!("cannot run scontrol: {error}"),
        }
    );
}

/// A pipeline name no other test or run uses.
fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{label}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// (job id, state, stage) of every job of pipeline `name`, oldest first.
fn jobs_of(name: &str) -> Vec<(u64, String, String)> {
    let output = Command::new("squeue").args(["-h", "-t", "all", "-o", "%i|%T|%j"]).output().expect("run squeue");
    assert!(output.status.success(), "squeue: {}", stderr(&output));
    let prefix = format!("voxflow:{name}:");
    let mut jobs: Vec<(u64, String, String)> = stdout(&output)
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '|');
            let id = fields.next()?.parse().ok()?;
            let state = fields.next()?.to_string();
            let stage = fields.next()?.strip_prefix(&prefix)?.to_string();
            Some((id, state, stage))
        })
        .collect();
    jobs.sort();
    jobs
}

fn is_active(state: &str) -> bool {
    ["PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED"].contains(&state)
}

fn stage<'a>(document: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    document["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {document}"))
}

/// Runs voxflow with `args`, returns (exit code, stdout JSON, stderr).
fn run_json_any(args: &[&str]) -> (i32, serde_json::Value, String) {
    let output = voxflow(args);
    let document = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("voxflow {args:?}: not JSON ({e}):\n{}\n{}", stdout(&output), stderr(&output)));
    (output.status.code().unwrap_or(-1), document, stderr(&output))
}

/// A chain, a matrix fan-out, a script hashed by content and a param
/// overridden from the command line: everything that goes into a key.
fn equivalence_pipeline(name: &str) -> String {
    format!(
        r#"
name: {name}
matrix:
  n: [1, 2, 3]
stages:
  words:
    kind: command
    run: printf 'the\nbrain\nreads\nstories\n' > {{outputs.out}}
    outputs: {{out: words.txt}}
  count:
    kind: command
    inputs: [words]
    run: sh {{params.script}} {{inputs.words}} {{params.n}} > {{outputs.out}}
    params: {{n: "${{matrix.n}}", script: count.sh, files: [count.sh]}}
    outputs: {{out: count.txt}}
    resources: {{threads: 1, mem: 64M, time: "5"}}
  tag:
    kind: command
    inputs: [words]
    run: echo {{params.label}} | cat - {{inputs.words}} > {{outputs.a}} && wc -c < {{inputs.words}} > {{outputs.b}}
    params: {{label: plain}}
    outputs: {{a: tagged.txt, b: bytes.txt}}
  merge:
    kind: command
    inputs: {{counts: count, tagged: tag.a}}
    run: cat {{inputs.counts}} {{inputs.tagged}} > {{outputs.out}}
    outputs: {{out: merged.txt}}
"#
    )
}

#[test]
fn slurm_run_gives_the_keys_and_digests_of_a_local_run_and_keeps_job_logs() {
    require_slurm();
    let dir = Scratch::new("slurm-same");
    let name = unique("same");
    let pipeline = dir.write("p.yaml", &equivalence_pipeline(&name));
    dir.write("count.sh", "head -n \"$2\" \"$1\" | wc -l\n");
    let pipeline = pipeline.to_str().unwrap();
    let local_store = dir.join("local-store");
    let slurm_store = dir.join("slurm-store");
    let (local_store, slurm_store) = (local_store.to_str().unwrap(), slurm_store.to_str().unwrap());

    let set = ["--set", "tag.label=overridden"];
    let mut args = vec!["run", pipeline, "--format", "json", "--store", local_store];
    args.extend(set);
    let local = voxflow_json(&args, 0);
    let mut args = vec!["run", pipeline, "--format", "json", "--store", slurm_store, "--executor", "slurm"];
    args.extend(set);
    let on_slurm = voxflow_json(&args, 0);

    let local_status = statuses(&local);
    assert_eq!(local_status.len(), 8, "{local_status:?}");
    assert!(statuses(&on_slurm).values().all(|s| s == "ran"), "{on_slurm}");
    let jobs = jobs_of(&name);
    assert_eq!(jobs.len(), 8, "one job per stage: {jobs:?}");
    assert!(jobs.iter().all(|(_, state, _)| state == "COMPLETED"), "{jobs:?}");

    for (stage_name, _) in local_status {
        let local_key = stage(&local, &stage_name)["key"].clone();
        assert_eq!(local_key, stage(&on_slurm, &stage_name)["key"], "key of {stage_name}");
        let mut show_args = vec!["show", pipeline, stage_name.as_str(), "--format", "json", "--store", local_store];
        show_args.extend(set);
        let shown_local = voxflow_json(&show_args, 0);
        show_args[6] = slurm_store;
        let shown_slurm = voxflow_json(&show_args, 0);
        let (a, b) = (&shown_local["stages"][0], &shown_slurm["stages"][0]);
        assert_eq!(a["digest"], b["digest"], "digest of {stage_name}");
        let digests = |m: &serde_json::Value| -> BTreeMap<String, String> {
            m["outputs"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v["digest"].as_str().unwrap().to_string()))
                .collect()
        };
        assert_eq!(digests(a), digests(b), "output digests of {stage_name}");
        assert!(!a["logs"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("slurm")), "{a}");

        // The job's log is kept beside the outputs and listed by `show`.
        let job = jobs.iter().find(|(_, _, s)| *s == stage_name).unwrap().0;
        let log = format!("logs/slurm-{job}.txt");
        assert!(b["logs"].as_array().unwrap().iter().any(|l| *l == log.as_str()), "{b}");
        let text = std::fs::read_to_string(std::path::Path::new(b["directory"].as_str().unwrap()).join(&log)).unwrap();
        assert!(text.contains(&format!("Slurm job {job}")) && text.contains("\"status\":\"ran\""), "{text}");
        assert_eq!(b["host"], a["host"], "single-node cluster: same host");
    }
    let human = voxflow(&["show", pipeline, "merge", "--store", slurm_store, "--set", "tag.label=overridden"]);
    assert_eq!(stdout(&human).matches("/logs/slurm-").count(), 3, "{}", stdout(&human));
    let merged = stage(&on_slurm, "merge[n=3]")["key"].as_str().unwrap().to_string();
    let text = std::fs::read_to_string(dir.join("slurm-store/objects").join(merged).join("merged.txt")).unwrap();
    assert_eq!(text, "3\noverridden\nthe\nbrain\nreads\nstories\n");
}

#[test]
fn demo_pipeline_on_slurm_gives_the_digests_of_a_local_run() {
    require_slurm();
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/demo.yaml");
    let demo = demo.to_str().unwrap();
    let dir = Scratch::new("slurm-demo");
    let (local_store, slurm_store) = (dir.join("local"), dir.join("slurm"));
    let (local_store, slurm_store) = (local_store.to_str().unwrap(), slurm_store.to_str().unwrap());
    let local = voxflow_json(&["run", demo, "--format", "json", "--store", local_store], 0);
    let on_slurm = voxflow_json(&["run", demo, "--format", "json", "--store", slurm_store, "--executor", "slurm"], 0);
    let manifest = |store: &str, key: &serde_json::Value| -> serde_json::Value {
        let path = std::path::Path::new(store).join("objects").join(key.as_str().unwrap()).join("manifest.json");
        serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
    };
    let stages = local["stages"].as_array().unwrap();
    assert!(stages.len() > 10, "{local}");
    for local_stage in stages {
        let name = local_stage["name"].as_str().unwrap();
        let remote_stage = stage(&on_slurm, name);
        assert_eq!(remote_stage["status"], "ran", "{remote_stage}");
        assert_eq!(local_stage["key"], remote_stage["key"], "key of {name}");
        let (a, b) = (manifest(local_store, &local_stage["key"]), manifest(slurm_store, &remote_stage["key"]));
        assert_eq!(a["digest"], b["digest"], "digest of {name}");
        assert_eq!(a["outputs"], b["outputs"], "outputs of {name}");
        assert!(
            b["logs"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().starts_with("logs/slurm-")),
            "{name}: {b}"
        );
    }
}

#[test]
fn rerun_submits_nothing_when_everything_is_cached_and_force_submits_again() {
    require_slurm();
    let dir = Scratch::new("slurm-rerun");
    let name = unique("rerun");
    let pipeline = dir.write(
        "p.yaml",
        &format!(
            r#"
name: {name}
executor: slurm
stages:
  a:
    kind: command
    run: echo a > {{outputs.out}}
    outputs: {{out: a.txt}}
  b:
    kind: command
    inputs: [a]
    run: cat {{inputs.a}} {{inputs.a}} > {{outputs.out}}
    outputs: {{out: b.txt}}
"#
        ),
    );
    let pipeline = pipeline.to_str().unwrap();
    let first = voxflow_json(&["run", pipeline, "--format", "json"], 0);
    assert!(statuses(&first).values().all(|s| s == "ran"), "{first}");
    assert_eq!(jobs_of(&name).len(), 2);

    let again = voxflow_json(&["run", pipeline, "--format", "json"], 0);
    assert!(statuses(&again).values().all(|s| s == "cached"), "{again}");
    assert_eq!(jobs_of(&name).len(), 2, "a cached rerun submits nothing");

    let forced = voxflow_json(&["run", pipeline, "--format", "json", "--force=b"], 0);
    let status = statuses(&forced);
    assert_eq!((status["a"].as_str(), status["b"].as_str()), ("cached", "ran"));
    let jobs = jobs_of(&name);
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    assert_eq!(jobs.iter().filter(|(_, _, s)| s == "b").count(), 2);
    let shown = voxflow_json(&["show", pipeline, "b", "--format", "json"], 0);
    let logs = shown["stages"][0]["logs"].as_array().unwrap();
    let newest = jobs.iter().filter(|(_, _, s)| s == "b").map(|j| j.0).max().unwrap();
    assert!(
        logs.iter().any(|l| *l == format!("logs/slurm-{newest}.txt").as_str()),
        "the forced rebuild is a new object with its own log: {logs:?}"
    );

    // `--executor local` overrides `executor: slurm` in the file.
    let local = voxflow_json(&["run", pipeline, "--format", "json", "--force", "--executor", "local"], 0);
    assert!(statuses(&local).values().all(|s| s == "ran"), "{local}");
    assert_eq!(jobs_of(&name).len(), 3);
}

#[test]
fn failing_job_reports_failed_and_exit_code_and_blocks_only_its_descendants() {
    require_slurm();
    let dir = Scratch::new("slurm-fail");
    let name = unique("fail");
    let pipeline = dir.write(
        "p.yaml",
        &format!(
            r#"
name: {name}
stages:
  a:
    kind: command
    run: echo a > {{outputs.out}}
    outputs: {{out: a.txt}}
  bad:
    kind: command
    inputs: [a]
    run: echo about to fail >&2; exit 3
    outputs: {{out: never.txt}}
  child:
    kind: command
    inputs: [bad]
    run: cp {{inputs.bad}} {{outputs.out}}
    outputs: {{out: c.txt}}
  grandchild:
    kind: command
    inputs: [child]
    run: cp {{inputs.child}} {{outputs.out}}
    outputs: {{out: g.txt}}
  independent:
    kind: command
    inputs: [a]
    run: sleep 2; echo fine > {{outputs.out}}
    outputs: {{out: i.txt}}
"#
        ),
    );
    let pipeline = pipeline.to_str().unwrap();
    let (code, document, _) = run_json_any(&["run", pipeline, "--format", "json", "--executor", "slurm"]);
    assert_eq!(code, 1, "{document}");
    let status = statuses(&document);
    assert_eq!(status["a"], "ran");
    assert_eq!(status["bad"], "failed");
    assert_eq!(status["child"], "skipped");
    assert_eq!(status["grandchild"], "skipped");
    assert_eq!(status["independent"], "ran", "an independent branch finishes");
    let bad = stage(&document, "bad");
    let error = bad["error"].as_str().unwrap();
    let job = jobs_of(&name).into_iter().find(|(_, _, s)| s == "bad").unwrap();
    assert_eq!(job.1, "FAILED");
    assert!(error.contains(&format!("Slurm job {} FAILED (exit code 1, reason NonZeroExitCode)", job.0)), "{error}");
    assert!(error.contains("stage `bad`"), "{error}");
    // The log's tail carries the command's own exit code and stderr.
    assert!(error.contains("command failed (exit code 3)") && error.contains("about to fail"), "{error}");
    let log = dir.join(".voxflow/slurm-logs").join(&name).join(format!("bad-{}.txt", job.0));
    assert!(log.exists(), "the failed job's log is kept at {}", log.display());
    assert!(bad["hint"].as_str().unwrap().contains(log.to_str().unwrap()), "{bad}");
    assert_eq!(stage(&document, "child")["reason"], "upstream `bad` did not finish");
    assert!(
        jobs_of(&name).iter().all(|(_, _, s)| s != "child" && s != "grandchild"),
        "descendants are never submitted"
    );
}

#[test]
fn stage_over_its_time_limit_reports_timeout() {
    require_slurm();
    let dir = Scratch::new("slurm-timeout");
    let name = unique("timeout");
    // Slurm's shortest limit is one minute, checked every 30 s: ~60-95 s.
    let pipeline = dir.write(
        "p.yaml",
        &format!(
            r#"
name: {name}
stages:
  slow:
    kind: command
    run: sleep 600; echo late > {{outputs.out}}
    outputs: {{out: s.txt}}
    resources: {{time: "0:30"}}
  after:
    kind: command
    inputs: [slow]
    run: cp {{inputs.slow}} {{outputs.out}}
    outputs: {{out: a.txt}}
"#
        ),
    );
    let started = Instant::now();
    let (code, document, _) =
        run_json_any(&["run", pipeline.to_str().unwrap(), "--format", "json", "--executor", "slurm"]);
    assert_eq!(code, 1, "{document}");
    let status = statuses(&document);
    assert_eq!((status["slow"].as_str(), status["after"].as_str()), ("failed", "skipped"));
    let slow = stage(&document, "slow");
    let error = slow["error"].as_str().unwrap();
    assert!(
        error.contains("TIMEOUT") && error.contains("time limit of 1 min") && error.contains("reason TimeLimit"),
        "{error}"
    );
    assert!(slow["hint"].as_str().unwrap().contains("retry_time_factor"), "{slow}");
    let jobs = jobs_of(&name);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].1, "TIMEOUT");
    eprintln!("TIMEOUT reported after {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn gpu_request_on_a_cluster_without_gpus_is_refused_in_voxflows_words() {
    require_slurm();
    let dir = Scratch::new("slurm-gpu");
    let name = unique("gpu");
    let pipeline = dir.write(
        "p.yaml",
        &format!(
            r#"
name: {name}
stages:
  train:
    kind: command
    run: echo trained > {{outputs.out}}
    outputs: {{out: t.txt}}
    resources: {{gpu: 1}}
  prepare:
    kind: command
    run: echo ok > {{outputs.out}}
    outputs: {{out: p.txt}}
"#
        ),
    );
    let (code, document, _) =
        run_json_any(&["run", pipeline.to_str().unwrap(), "--format", "json", "--executor", "slurm"]);
    assert_eq!(code, 1, "{document}");
    let train = stage(&document, "train");
    assert_eq!(train["status"], "failed");
    let error = train["error"].as_str().unwrap();
    assert!(
        error.contains("stage `train` asks for 1 GPU (`resources: {gpu: 1}`), and Slurm refused the job"),
        "{error}"
    );
    assert!(error.contains("Invalid generic resource"), "Slurm's own words are kept: {error}");
    assert!(train["hint"].as_str().unwrap().contains("partition"), "{train}");
    assert_eq!(stage(&document, "prepare")["status"], "ran");
    assert!(jobs_of(&name).iter().all(|(_, _, s)| s != "train"), "the refused job never existed");

    let human = voxflow(&["run", pipeline.to_str().unwrap(), "--executor", "slurm"]);
    assert!(
        stdout(&human).contains("error: stage `train` asks for 1 GPU")
            && stdout(&human).contains("hint: submit to a partition with GPU nodes"),
        "{}",
        stdout(&human)
    );
}

#[test]
fn ctrl_c_cancels_the_jobs_of_this_run_and_nothing_else() {
    require_slurm();
    let dir = Scratch::new("slurm-cancel");
    let name = unique("cancel");
    let bystander_name = format!("bystander-{name}");
    let bystander = Command::new("sbatch")
        .args(["--parsable", "-J", &bystander_name, "-o", "/dev/null", "--wrap", "sleep 300"])
        .output()
        .expect("sbatch");
    assert!(bystander.status.success(), "{}", stderr(&bystander));
    let bystander: u64 = stdout(&bystander).trim().parse().unwrap();
    let pipeline = dir.write(
        "p.yaml",
        &format!(
            r#"
name: {name}
stages:
  one:
    kind: command
    run: sleep 300; echo > {{outputs.out}}
    outputs: {{out: o.txt}}
  two:
    kind: command
    run: sleep 300; echo > {{outputs.out}}
    outputs: {{out: t.txt}}
  after:
    kind: command
    inputs: [one]
    run: cp {{inputs.one}} {{outputs.out}}
    outputs: {{out: a.txt}}
"#
        ),
    );
    let child = Command::new(common::voxflow_bin())
        .args(["run", pipeline.to_str().unwrap(), "--format", "json", "--executor", "slurm"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start voxflow");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = jobs_of(&name);
        if jobs.len() == 2 && jobs.iter().all(|(_, state, _)| state == "RUNNING") {
            break;
        }
        assert!(Instant::now() < deadline, "the jobs did not start: {jobs:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let interrupted = Instant::now();
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    let seconds = interrupted.elapsed().as_secs_f64();
    assert_eq!(output.status.code(), Some(130), "{}\n{}", stdout(&output), stderr(&output));
    assert!(seconds < 30.0, "took {seconds:.1}s to stop");
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let status = statuses(&document);
    assert_eq!(
        (status["one"].as_str(), status["two"].as_str(), status["after"].as_str()),
        ("cancelled", "cancelled", "cancelled"),
        "{document}"
    );

    let jobs = jobs_of(&name);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.iter().all(|(_, state, _)| state == "CANCELLED"), "no job of the run is left in the queue: {jobs:?}");
    let bystander_state =
        Command::new("squeue").args(["-h", "-t", "all", "-j", &bystander.to_string(), "-o", "%T"]).output().unwrap();
    let bystander_state = stdout(&bystander_state).trim().to_string();
    let _ = Command::new("scancel").arg(bystander.to_string()).status();
    assert!(is_active(&bystander_state), "another job must not be cancelled: {bystander_state}");
    eprintln!("stopped {seconds:.1}s after SIGINT");
}

#[test]
fn retries_resubmit_a_failed_job_with_more_memory_and_keep_every_log() {
    require_slurm();
    let dir = Scratch::new("slurm-retry");
    let name = unique("retry");
    let counter = dir.join("attempts");
    let memory = dir.join("memory");
    let pipeline = dir.write(
        "p.yaml",
        &format!(
            r#"
name: {name}
slurm:
  mem: 100M
stages:
  flaky:
    kind: command
    run: n=$(cat {{params.counter}} 2>/dev/null || echo 0); echo $((n+1)) > {{params.counter}}; echo "$SLURM_MEM_PER_NODE" >> {{params.memory}}; [ "$n" -ge 1 ] && echo ok > {{outputs.out}}
    params: {{counter: {}, memory: {}}}
    outputs: {{out: f.txt}}
    retries: 2
    retry_mem_factor: 2
"#,
            counter.display(),
            memory.display()
        ),
    );
    let pipeline = pipeline.to_str().unwrap();
    let document = voxflow_json(&["run", pipeline, "--format", "json", "--executor", "slurm"], 0);
    assert_eq!(statuses(&document)["flaky"], "ran");
    assert_eq!(std::fs::read_to_string(&memory).unwrap(), "100\n200\n", "the second attempt had twice the memory");
    let jobs = jobs_of(&name);
    assert_eq!(jobs.iter().map(|j| j.1.as_str()).collect::<Vec<_>>(), ["FAILED", "COMPLETED"], "{jobs:?}");
    let shown = voxflow_json(&["show", pipeline, "flaky", "--format", "json"], 0);
    let logs = shown["stages"][0]["logs"].as_array().unwrap();
    for (id, _, _) in &jobs {
        assert!(logs.iter().any(|l| *l == format!("logs/slurm-{id}.txt").as_str()), "{logs:?}");
    }
}

#[test]
fn slurm_block_maps_to_sbatch_options() {
    require_slurm();
    let dir = Scratch::new("slurm-options");
    let name = unique("options");
    let pipeline = dir.write(
        "p.yaml",
        &format!(
            r#"
name: {name}
executor: slurm
slurm:
  partition: debug
  time: 1h30m
  mem: 1G
  max_jobs: 2
  sbatch_args: [--comment=from-the-slurm-block]
stages:
  defaults:
    kind: command
    run: echo "$SLURM_CPUS_PER_TASK $SLURM_MEM_PER_NODE" > {{outputs.out}}
    outputs: {{out: d.txt}}
  own:
    kind: command
    run: echo "$SLURM_CPUS_PER_TASK $SLURM_MEM_PER_NODE" > {{outputs.out}}
    outputs: {{out: o.txt}}
    resources: {{threads: 3, mem: 300M, time: "00:10:00"}}
"#
        ),
    );
    let pipeline = pipeline.to_str().unwrap();
    voxflow_json(&["run", pipeline, "--format", "json", "--sbatch-arg=--nice=5"], 0);
    let field = |id: u64, key: &str| -> String {
        let output = Command::new("scontrol").args(["-o", "show", "job", &id.to_string()]).output().unwrap();
        let text = stdout(&output);
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .to_string()
    };
    let jobs = jobs_of(&name);
    assert_eq!(jobs.len(), 2);
    for (id, state, stage) in jobs {
        assert_eq!(state, "COMPLETED");
        assert_eq!(field(id, "Partition"), "debug");
        assert_eq!(field(id, "Comment"), "from-the-slurm-block");
        assert_eq!(field(id, "Nice"), "5");
        assert_eq!(field(id, "JobName"), format!("voxflow:{name}:{stage}"));
        let expected = if stage == "own" { ("00:10:00", "300M", "3") } else { ("01:30:00", "1G", "1") };
        assert_eq!(
            (field(id, "TimeLimit").as_str(), field(id, "MinMemoryNode").as_str(), field(id, "CPUs/Task").as_str()),
            expected,
            "{stage}"
        );
    }
    let own = voxflow_json(&["show", pipeline, "own", "--format", "json"], 0);
    let out = std::path::Path::new(own["stages"][0]["directory"].as_str().unwrap()).join("o.txt");
    assert_eq!(std::fs::read_to_string(out).unwrap(), "3 300\n");

    // Slurm options on a local run are a mistake, said before anything runs.
    let output = voxflow(&["run", pipeline, "--executor", "local", "--partition", "debug"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("Slurm options were given, but the run is local"), "{}", stderr(&output));
}

/// Needs no cluster: the file's executor keys are checked like the rest.
#[test]
fn executor_keys_are_validated_with_file_and_line() {
    let dir = Scratch::new("slurm-validate");
    let pipeline = dir.write(
        "p.yaml",
        r#"name: bad-keys
executor: kubernetes
slurm:
  partiton: gpu
  time: soon
  max_jobs: 0
stages:
  a:
    kind: command
    run: echo > {outputs.out}
    outputs: {out: a.txt}
    retries: -1
    retry_mem_factor: 0.5
    resources: {mem: 4Q}
"#,
    );
    let output = voxflow(&["validate", pipeline.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    let file = pipeline.display().to_string();
    for expected in [
        format!("{file}:2: unknown executor \"kubernetes\""),
        format!("{file}:4: unknown key `partiton` in `slurm`\n  hint: did you mean `partition`?"),
        format!("{file}:5: `time`: `soon` is not a time limit"),
        format!("{file}:6: `max_jobs` must be a positive integer"),
        format!("{file}:12: stage `a`: `retries` must be a whole number"),
        format!("{file}:13: stage `a`: `retry_mem_factor` must be a number from 1 to 100"),
        format!("{file}:14: stage `a`: `mem`: `4Q` has an unknown unit"),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
}

/// Needs no cluster: the limits sbatch gets.
#[test]
fn time_and_memory_limits_convert_to_slurm_units() {
    use voxflow::exec::slurm::{parse_mem_mb, parse_time_minutes};
    for (text, minutes) in [
        ("1", 1),
        ("90", 90),
        ("0:30", 1),
        ("1:30", 2),
        ("01:00:00", 60),
        ("1:00:01", 61),
        ("2-0", 2880),
        ("1-02:30", 1590),
        ("1-00:00:30", 1441),
        ("90s", 2),
        ("45m", 45),
        ("1h", 60),
        ("1h30m", 90),
        ("2d", 2880),
    ] {
        assert_eq!(parse_time_minutes(text), Ok(minutes), "{text}");
    }
    for bad in ["", "0", "0:00", "soon", "1:2:3:4", "-5"] {
        assert!(parse_time_minutes(bad).is_err(), "{bad}");
    }
    for (text, mb) in [
        ("512", 512),
        ("512M", 512),
        ("4G", 4096),
        ("4g", 4096),
        ("4GB", 4096),
        ("4GiB", 4096),
        ("1.5G", 1536),
        ("1T", 1048576),
        ("2048K", 2),
        ("100K", 1),
    ] {
        assert_eq!(parse_mem_mb(text), Ok(mb), "{text}");
    }
    for bad in ["", "0", "4Q", "G", "-1G", "lots"] {
        assert!(parse_mem_mb(bad).is_err(), "{bad}");
    }
}
