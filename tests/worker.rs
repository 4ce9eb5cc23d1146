//! Worker processes: the `voxflow` binary never maps libtorch, and a worker
//! that dies (SIGABRT from a libtorch `abort()`, SIGKILL) fails only its own
//! stage, with the signal and the tail of its stderr, while a sibling stage
//! finishes and is cached.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{stderr, voxflow, voxflow_bin, voxflow_json, Scratch};

/// The worker binary cargo built beside `voxflow`.
fn worker_bin() -> PathBuf {
    voxflow_bin().with_file_name("voxflow-worker")
}

/// Libraries a process has mapped, from its /proc/<pid>/maps text.
fn libraries(maps: &str) -> Vec<String> {
    let mut names: Vec<String> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter_map(|path| Path::new(path).file_name().map(|f| f.to_string_lossy().into_owned()))
        .filter(|name| name.contains(".so"))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_cli_never_maps_libtorch_and_the_worker_does() {
    // What the dynamic linker loads for each binary.
    let ldd = |binary: &Path| {
        let output = Command::new("ldd").arg(binary).output().expect("ldd");
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let cli = ldd(&voxflow_bin());
    assert!(!cli.contains("libtorch") && !cli.contains("libc10"), "voxflow links libtorch:\n{cli}");
    let worker = ldd(&worker_bin());
    assert!(worker.contains("libtorch_cpu"), "the worker should link libtorch:\n{worker}");

    // What a running scheduler has mapped, read from its child: a command
    // stage's shell copies /proc/$PPID/maps (its parent is `voxflow run`).
    let dir = Scratch::new("maps");
    let pipeline = dir.write(
        "maps.yaml",
        "name: maps\nstages:\n  maps:\n    kind: command\n    run: cat /proc/$PPID/maps > {outputs.maps}\n    outputs: {maps: maps.txt}\n",
    );
    voxflow_json(&["run", pipeline.to_str().unwrap(), "--format", "json"], 0);
    let object = std::fs::read_dir(dir.join(".voxflow/objects"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("maps.txt"))
        .find(|path| path.exists())
        .expect("the stage's output");
    let mapped = libraries(&std::fs::read_to_string(object).unwrap());
    assert!(mapped.iter().any(|name| name.starts_with("libc.so")), "not a process map: {mapped:?}");
    assert!(!mapped.iter().any(|name| name.contains("torch") || name.starts_with("libc10")), "{mapped:?}");
}

/// A stand-in for voxflow-worker that dies with `signal` when the stage it
/// is sent is named `boom`, and hands any other request to the real worker.
fn dying_worker(dir: &Scratch, signal: &str) -> PathBuf {
    let script = dir.join(&format!("worker-{signal}.sh"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/bash\nIFS= read -r request\nif [[ $request == *'\"name\":\"boom\"'* ]]; then\n  echo 'worker: loading the model' >&2\n  echo 'terminate called after throwing an instance of c10::Error' >&2\n  kill -{signal} $$\nfi\nexec {} < <(printf '%s\\n' \"$request\"; cat)\n",
            worker_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn run_with_worker(pipeline: &Path, worker: &Path) -> (Option<i32>, serde_json::Value, String) {
    let output = Command::new(voxflow_bin())
        .args(["run", pipeline.to_str().unwrap(), "--format", "json", "-j", "2"])
        .env("VOXFLOW_WORKER", worker)
        .env_remove("VOXFLOW_LOG")
        .output()
        .expect("run voxflow");
    let summary = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&output)));
    (output.status.code(), summary, stderr(&output))
}

#[test]
fn a_worker_that_dies_fails_only_its_own_stage() {
    let dir = Scratch::new("dying-worker");
    // features.lm always runs in a worker; the stand-in dies before it reads the model.
    dir.write("model/config.json", "{}");
    dir.write("words.csv", "story,word,onset,offset\ns1,hello,0.0,0.5\n");
    let pipeline = dir.write(
        "p.yaml",
        "name: dying\nstages:\n  words:\n    kind: load.table\n    params: {path: words.csv}\n  boom:\n    kind: features.lm\n    inputs: {words: words}\n    params: {model: model, layers: [0], device: cpu}\n  sibling:\n    kind: command\n    run: sleep 1 && echo done > {outputs.out}\n    outputs: {out: out.txt}\n",
    );
    for (signal, number, name) in [("ABRT", 6, "SIGABRT"), ("KILL", 9, "SIGKILL")] {
        let worker = dying_worker(&dir, signal);
        let (code, summary, err) = run_with_worker(&pipeline, &worker);
        assert_eq!(code, Some(1), "{err}");
        let statuses = common::statuses(&summary);
        assert_eq!(statuses["boom"], "failed", "{summary}");
        let error = common::stage(&summary, "boom")["error"].as_str().unwrap().to_string();
        assert!(error.contains(&format!("killed by signal {number} ({name})")), "{error}");
        assert!(error.contains("terminate called after throwing an instance of c10::Error"), "stderr tail: {error}");
        let hint = common::stage(&summary, "boom")["hint"].as_str().unwrap_or_default().to_string();
        assert!(!hint.is_empty(), "a worker's death comes with a hint");
        // The sibling ran on the other slot the first time, and is cached after.
        let expected = if signal == "ABRT" { "ran" } else { "cached" };
        assert_eq!(statuses["sibling"], expected, "{summary}");
    }
    // Nothing of the failed stage is in the store: a plain run tries it again.
    let plan = voxflow_json(&["plan", pipeline.to_str().unwrap(), "--format", "json"], 0);
    assert_eq!(common::statuses(&plan)["boom"], "dirty", "{plan}");
    let verify = voxflow(&["verify", pipeline.to_str().unwrap()]);
    assert!(verify.status.success(), "{}", stderr(&verify));
}

#[test]
fn a_missing_worker_is_an_error_that_says_how_to_get_one() {
    let dir = Scratch::new("no-worker");
    dir.write("model/config.json", "{}");
    dir.write("words.csv", "story,word,onset,offset\ns1,hello,0.0,0.5\n");
    let pipeline = dir.write(
        "p.yaml",
        "name: noworker\nstages:\n  words:\n    kind: load.table\n    params: {path: words.csv}\n  lm:\n    kind: features.lm\n    inputs: {words: words}\n    params: {model: model, layers: [0], device: cpu}\n",
    );
    let (code, summary, err) = run_with_worker(&pipeline, &dir.join("nowhere/voxflow-worker"));
    assert_eq!(code, Some(1), "{err}");
    let lm = common::stage(&summary, "lm");
    assert!(lm["error"].as_str().unwrap().contains("VOXFLOW_WORKER="), "{lm}");
    assert!(lm["hint"].as_str().unwrap().contains("voxflow-worker"), "{lm}");
}
