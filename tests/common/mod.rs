//! Helpers shared by the integration tests: scratch directories, running the
//! `voxflow` binary, the reference Python environment.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir, removed on drop.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let path = std::env::temp_dir().join(format!("voxflow-test-{label}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Scratch { path }
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub fn voxflow_bin() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_voxflow") {
        Some(path) => PathBuf::from(path),
        // Tests of crates/voxflow-torch: the workspace's `voxflow`, one
        // directory above the test binary (target/release/deps/).
        None => {
            let exe = std::env::current_exe().expect("the test binary's path");
            exe.parent().and_then(|deps| deps.parent()).expect("target/release").join("voxflow")
        }
    }
}

/// Runs `voxflow ARGS` and returns its output.
pub fn voxflow(args: &[&str]) -> Output {
    Command::new(voxflow_bin()).args(args).env_remove("VOXFLOW_LOG").output().expect("run voxflow")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// Runs voxflow, asserts the exit code, returns stdout parsed as JSON.
pub fn voxflow_json(args: &[&str], expected_code: i32) -> serde_json::Value {
    let output = voxflow(args);
    assert_eq!(
        output.status.code(),
        Some(expected_code),
        "voxflow {args:?}\nstdout:\n{}\nstderr:\n{}",
        stdout(&output),
        stderr(&output)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(&output)))
}

/// The status of each stage in a `--format json` document, by name.
pub fn statuses(document: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    document["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["status"].as_str().unwrap().to_string()))
        .collect()
}

/// The entry of stage `name` in a `--format json` document.
pub fn stage<'a>(document: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    document["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage `{name}` in {document}"))
}

/// The reference Python (numpy, pyarrow, scikit-learn, himalaya), made by
/// scripts/setup-python.sh: `$VOXFLOW_PYTHON`, else `bin/python` in
/// `$VOXFLOW_VENV`, else in `~/.cache/voxflow-venv` (scripts/env.sh's
/// defaults). Tests that need it fail when it is missing.
pub fn python() -> PathBuf {
    if let Ok(path) = std::env::var("VOXFLOW_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = match std::env::var_os("VOXFLOW_VENV") {
        Some(venv) => PathBuf::from(venv),
        None => Path::new(&std::env::var_os("HOME").expect("HOME is not set")).join(".cache/voxflow-venv"),
    };
    let path = venv.join("bin/python");
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup-python.sh (the README's test command does)",
        path.display()
    );
    path
}

/// Runs a Python script with the reference environment; returns stdout.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let output = Command::new(python()).arg("-c").arg(script).args(args).output().expect("run python");
    assert!(output.status.success(), "python failed:\n{}\n{}", stdout(&output), stderr(&output));
    stdout(&output)
}

/// A seed that differs between runs; printed so a failure can be replayed.
pub fn fresh_seed() -> u64 {
    let seed = match std::env::var("VOXFLOW_TEST_SEED") {
        Ok(seed) => seed.parse().expect("VOXFLOW_TEST_SEED must be an integer"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64,
    };
    eprintln!("seed: {seed} (set VOXFLOW_TEST_SEED={seed} to replay)");
    seed
}
