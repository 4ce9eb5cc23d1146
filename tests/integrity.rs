//! Store integrity through the `voxflow` binary: a damaged input is never
//! consumed and the next run repairs it, `verify` checks manifests and never
//! creates a store, symlink outputs are refused, a killed run leaves no
//! command alive (even killed between a command's spawn and its
//! registration, or a command's `setsid` child), and what validation
//! catches before anything runs.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use common::{statuses, stderr, stdout, voxflow, voxflow_json, Scratch};

/// a -> b -> c, a -> d: `a` writes random text given as a param.
fn chain(text: &str) -> String {
    format!(
        r#"
name: chain
stages:
  a:
    kind: command
    run: printf '%s\n' {{params.text}} > {{outputs.out}}; printf 'second\n' > {{outputs.more}}
    outputs: {{out: a.txt, more: more.txt}}
    params: {{text: "{text}"}}
  b:
    kind: command
    inputs: {{first: a.out}}
    run: cat {{inputs.first}} {{inputs.first}} > {{outputs.out}}
    outputs: {{out: b.txt}}
  c:
    kind: command
    inputs: [b]
    run: wc -c < {{inputs.b}} > {{outputs.out}}
    outputs: {{out: c.txt}}
  d:
    kind: command
    inputs: [a]
    run: cat {{inputs.a}}/more.txt {{inputs.a}}/a.txt > {{outputs.out}}
    outputs: {{out: d.txt}}
"#
    )
}

fn random_text(rng: &mut impl Rng) -> String {
    (0..rng.random_range(20..200)).map(|_| (b'a' + rng.random_range(0..26u8)) as char).collect()
}

/// Every object's output files, by key and file name (manifests, which
/// hold timings, and logs left out).
fn outputs(store: &Path) -> BTreeMap<(String, String), Vec<u8>> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(store.join("objects")).unwrap().flatten() {
        let key = entry.file_name().to_string_lossy().to_string();
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(entry.path().join("manifest.json")).unwrap()).unwrap();
        for output in manifest["outputs"].as_object().unwrap().values() {
            let file = output["file"].as_str().unwrap().to_string();
            found.insert((key.clone(), file.clone()), std::fs::read(entry.path().join(&file)).unwrap());
        }
    }
    found
}

fn flip_a_byte(path: &Path, rng: &mut impl Rng) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = rng.random_range(0..bytes.len());
    bytes[at] ^= 1 << rng.random_range(0..8);
    std::fs::write(path, &bytes).unwrap();
}

/// A byte flipped (same size) in the object a forced stage reads: the stage
/// fails naming the object, its key and file, nothing downstream runs on
/// it, and the next plain run rebuilds the damaged object; the store then
/// verifies and equals a clean store byte for byte.
#[test]
fn a_damaged_input_fails_its_reader_and_the_next_run_repairs_the_store() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let dir = Scratch::new("damaged-input");
    let pipeline = dir.write("chain.yaml", &chain(&random_text(&mut rng)));
    let pipeline = pipeline.to_str().unwrap();
    let clean = dir.join("clean-store");
    voxflow_json(&["run", pipeline, "--format", "json", "--store", clean.to_str().unwrap()], 0);
    let first = voxflow_json(&["run", pipeline, "--format", "json"], 0);
    let a_key = common::stage(&first, "a")["key"].as_str().unwrap().to_string();
    let store = dir.join(".voxflow");
    let damaged_file = ["a.txt", "more.txt"][rng.random_range(0..2)];
    flip_a_byte(&store.join("objects").join(&a_key).join(damaged_file), &mut rng);

    // b reads a.out, but the whole object is checked.
    let forced = voxflow_json(&["run", pipeline, "--format", "json", "--force=b"], 1);
    let status = statuses(&forced);
    assert_eq!((status["a"].as_str(), status["b"].as_str(), status["c"].as_str()), ("cached", "failed", "skipped"));
    let error = common::stage(&forced, "b")["error"].as_str().unwrap();
    assert!(error.contains("input `first` is damaged"), "{error}");
    assert!(error.contains(&format!("object {a_key} of stage `a`")), "{error}");
    assert!(error.contains(damaged_file) && error.contains("digest"), "{error}");
    let hint = common::stage(&forced, "b")["hint"].as_str().unwrap();
    assert!(hint.contains("damaged") && hint.contains("run again"), "{hint}");
    assert!(!store.join("objects").join(&a_key).exists(), "the damaged object is still fresh");
    assert!(store.join("damaged").join(&a_key).join(damaged_file).exists());

    let repaired = voxflow_json(&["run", pipeline, "--format", "json"], 0);
    let reason = common::stage(&repaired, "a")["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("found its bytes changed") && reason.contains("damaged"), "{reason}");
    let repaired = statuses(&repaired);
    assert_eq!(repaired["a"], "ran", "{repaired:?}");
    for stage in ["b", "c", "d"] {
        assert_eq!(repaired[stage], "cached", "{stage} was built from good bytes: {repaired:?}");
    }
    voxflow_json(&["verify", pipeline, "--format", "json"], 0);
    assert_eq!(outputs(&store), outputs(&clean));
    // gc clears the quarantined copy.
    let gc = voxflow(&["gc", pipeline]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert!(stdout(&gc).contains(&format!("removed damaged/{a_key}")), "{}", stdout(&gc));
}

/// A stage that reads two upstream objects in one run, one of them built in
/// this run: only the damaged one is named; a run that rebuilds the damaged
/// object's stage itself is not blocked.
#[test]
fn only_the_damaged_object_is_named_and_a_forced_rebuild_of_it_runs() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let dir = Scratch::new("damaged-many");
    let pipeline = dir.write("chain.yaml", &chain(&random_text(&mut rng)));
    let pipeline = pipeline.to_str().unwrap();
    let first = voxflow_json(&["run", pipeline, "--format", "json"], 0);
    let b_key = common::stage(&first, "b")["key"].as_str().unwrap().to_string();
    flip_a_byte(&dir.join(".voxflow/objects").join(&b_key).join("b.txt"), &mut rng);
    // Forcing a and d as well: a is rebuilt (same bytes), d reads the fresh
    // a, c reads the damaged b.
    let forced = voxflow_json(&["run", pipeline, "--format", "json", "--force=a", "--force=c", "--force=d"], 1);
    let status = statuses(&forced);
    assert_eq!(status["a"], "ran");
    assert_eq!(status["b"], "cached");
    assert_eq!(status["d"], "ran");
    assert_eq!(status["c"], "failed");
    let error = common::stage(&forced, "c")["error"].as_str().unwrap();
    assert!(error.contains(&b_key) && error.contains("b.txt"), "{error}");
    // A forced rebuild of the damaged stage needs nothing from it.
    let again = statuses(&voxflow_json(&["run", pipeline, "--format", "json", "--force=b"], 0));
    assert_eq!(again["b"], "ran");
    voxflow_json(&["verify", pipeline, "--format", "json"], 0);
}

#[test]
fn verify_checks_the_combined_digest_and_sizes() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let dir = Scratch::new("verify-manifest");
    let pipeline = dir.write("chain.yaml", &chain(&random_text(&mut rng)));
    let pipeline = pipeline.to_str().unwrap();
    let first = voxflow_json(&["run", pipeline, "--format", "json"], 0);
    let edit = |stage: &str, change: &dyn Fn(&mut serde_json::Value)| {
        let key = common::stage(&first, stage)["key"].as_str().unwrap().to_string();
        let path = dir.join(".voxflow/objects").join(&key).join("manifest.json");
        let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        change(&mut manifest);
        std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
        key
    };
    let digest_key = edit("c", &|m| m["digest"] = serde_json::json!("0123456789abcdef0123456789abcdef"));
    let bytes_key = edit("d", &|m| {
        let bytes = m["outputs"]["out"]["bytes"].as_u64().unwrap();
        m["outputs"]["out"]["bytes"] = serde_json::json!(bytes + 1);
    });
    let verify = voxflow_json(&["verify", pipeline, "--format", "json"], 1);
    let problems = verify["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{verify}");
    let detail = |key: &str| {
        problems.iter().find(|p| p["key"] == key).unwrap_or_else(|| panic!("{key} not reported: {verify}"))["detail"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(detail(&digest_key).contains("combined digest"), "{verify}");
    assert!(detail(&bytes_key).contains("bytes, the manifest says"), "{verify}");
}

/// `verify` never creates a store; a stray file in objects/ is reported by
/// verify and gc, removed by `verify --fix`; a removal that fails is
/// reported with its cause and a non-zero exit; `--store` naming a regular
/// file is a usage error (exit 2).
#[test]
fn verify_and_gc_on_missing_stores_stray_files_and_failed_removals() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let dir = Scratch::new("verify-store");
    let pipeline = dir.write("chain.yaml", &chain(&random_text(&mut rng)));
    let pipeline = pipeline.to_str().unwrap();

    let nowhere = dir.join("nonexistent/x");
    let output = voxflow(&["verify", "--store", nowhere.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("no store at"), "{}", stderr(&output));
    assert!(!dir.join("nonexistent").exists(), "verify created the store");
    let output = voxflow(&["verify", pipeline]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(!dir.join(".voxflow").exists(), "verify created the store");

    let file = dir.write("a-file", "not a store");
    for args in [
        vec!["run", pipeline, "--store", file.to_str().unwrap()],
        vec!["gc", pipeline, "--store", file.to_str().unwrap()],
        vec!["verify", "--store", file.to_str().unwrap()],
    ] {
        let output = voxflow(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
    }

    let first = voxflow_json(&["run", pipeline, "--format", "json"], 0);
    let objects = dir.join(".voxflow/objects");
    std::fs::write(objects.join("junkfile"), "stray").unwrap();
    let gc = voxflow(&["gc", pipeline]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert!(stderr(&gc).contains("objects/junkfile is not an object directory"), "{}", stderr(&gc));
    let verify = voxflow_json(&["verify", pipeline, "--format", "json"], 1);
    assert_eq!(verify["problems"][0]["key"], "junkfile", "{verify}");

    // An object that cannot be removed, and one that can.
    let b_key = common::stage(&first, "b")["key"].as_str().unwrap().to_string();
    flip_a_byte(&objects.join(&b_key).join("b.txt"), &mut rng);
    let guard = Unremovable::new(&objects.join(&b_key));
    let fix = voxflow(&["verify", pipeline, "--fix"]);
    assert_eq!(fix.status.code(), Some(1));
    let text = stdout(&fix);
    assert!(text.contains(&format!("not removed {b_key}:")), "{text}\n{}", stderr(&fix));
    assert!(stderr(&fix).contains("1 could not be removed"), "{}", stderr(&fix));
    assert!(!objects.join("junkfile").exists(), "the stray file was not removed");
    drop(guard);
    voxflow_json(&["verify", pipeline, "--fix", "--format", "json"], 1);
    voxflow_json(&["run", pipeline, "--format", "json"], 0);
    voxflow_json(&["verify", pipeline, "--format", "json"], 0);
}

/// A directory `remove_dir_all` fails on: read-only for a user, an
/// immutable file inside it for root (who ignores permissions).
struct Unremovable {
    undo: Box<dyn Fn()>,
}

impl Unremovable {
    fn new(dir: &Path) -> Unremovable {
        use std::os::unix::fs::PermissionsExt;
        let dir = dir.to_path_buf();
        if unsafe { geteuid() } != 0 {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
            return Unremovable {
                undo: Box::new(move || std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap()),
            };
        }
        let file: PathBuf = dir.join("manifest.json");
        let status = Command::new("chattr").arg("+i").arg(&file).status().expect("chattr");
        assert!(status.success(), "chattr +i {} failed", file.display());
        Unremovable {
            undo: Box::new(move || {
                Command::new("chattr").arg("-i").arg(&file).status().unwrap();
            }),
        }
    }
}

impl Drop for Unremovable {
    fn drop(&mut self) {
        (self.undo)();
    }
}

extern "C" {
    fn geteuid() -> u32;
    fn kill(pid: i32, signal: i32) -> i32;
}

/// A command output that is a symbolic link, or a directory holding one,
/// is refused with the reason; a directory of regular files is an output.
#[test]
fn symlink_outputs_are_refused_and_directories_of_files_are_kept() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let dir = Scratch::new("symlinks");
    let text = random_text(&mut rng);
    dir.write("target.txt", &text);
    let pipeline = dir.write(
        "links.yaml",
        r#"
name: links
stages:
  link:
    kind: command
    run: ln -s $PWD/target.txt {outputs.o}
    outputs: {o: o.txt}
  system:
    kind: command
    run: ln -s /etc/hostname {outputs.o}
    outputs: {o: o.txt}
  inside:
    kind: command
    run: mkdir {outputs.d} && cp target.txt {outputs.d}/a.txt && ln -s $PWD/target.txt {outputs.d}/b.txt
    outputs: {d: d}
  tree:
    kind: command
    run: mkdir -p {outputs.d}/sub && cp target.txt {outputs.d}/sub/a.txt
    outputs: {d: d}
"#,
    );
    let pipeline = pipeline.to_str().unwrap();
    let summary = voxflow_json(&["run", pipeline, "--format", "json"], 1);
    let status = statuses(&summary);
    assert_eq!(status["tree"], "ran", "{summary}");
    for (stage, shown) in [("link", "o.txt ->"), ("system", "o.txt -> /etc/hostname"), ("inside", "d/b.txt ->")] {
        assert_eq!(status[stage], "failed", "{summary}");
        let error = common::stage(&summary, stage)["error"].as_str().unwrap();
        assert!(error.contains("is a symbolic link") && error.contains(shown), "{stage}: {error}");
        assert!(error.contains("cannot change after it is stored"), "{error}");
    }
    let tree = common::stage(&summary, "tree")["key"].as_str().unwrap();
    let stored = dir.join(".voxflow/objects").join(tree).join("d/sub/a.txt");
    assert_eq!(std::fs::read_to_string(stored).unwrap(), text);
    assert_eq!(std::fs::read_dir(dir.join(".voxflow/objects")).unwrap().count(), 1);
    voxflow_json(&["verify", pipeline, "--format", "json"], 0);
}

/// kill -9 of `voxflow run` while a command waits on a grandchild: within
/// a few seconds no process of that run is alive; the rerun finds no stale
/// lock, and gc leaves no staging directory behind.
#[test]
fn kill_9_of_the_runner_leaves_no_command_alive() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let dir = Scratch::new("orphans");
    // A unique number in the command lines of the shell, its subshell and `sleep`.
    let token = format!("60.{}", rng.random_range(100_000_000u64..999_999_999));
    let yaml = format!(
        r#"
name: orphans
stages:
  slow:
    kind: command
    run: echo started > {{outputs.out}}; (sleep {token}; echo late) & bash -c 'sleep {token} & wait'; wait
    outputs: {{out: s.txt}}
  after:
    kind: command
    inputs: [slow]
    run: cat {{inputs.slow}} > {{outputs.out}}
    outputs: {{out: a.txt}}
"#
    );
    let pipeline = dir.write("orphans.yaml", &yaml);
    let mut child = Command::new(common::voxflow_bin())
        .args(["run", pipeline.to_str().unwrap(), "-j", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The commands name the token; the runner and its forks (the run's
    // reaper is one) name the pipeline file.
    let file = pipeline.display().to_string();
    let alive = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|entry| {
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                (cmdline.contains(&token) || cmdline.contains(&file))
                    .then(|| format!("{}: {cmdline}", entry.file_name().to_string_lossy()))
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    // Both sleeps (the subshell's and the grandchild shell's) have started.
    while alive().iter().filter(|p| p.contains(&format!("sleep {token}"))).count() < 2 {
        assert!(Instant::now() < deadline, "the command never started: {:?}", alive());
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { kill(child.id() as i32, 9) };
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = alive();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "processes of the killed run are alive: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The rerun takes the key's lock at once and runs everything.
    std::fs::write(&pipeline, yaml.replace(&format!("sleep {token}"), "sleep 0")).unwrap();
    let started = Instant::now();
    let status = statuses(&voxflow_json(&["run", pipeline.to_str().unwrap(), "--format", "json"], 0));
    assert_eq!((status["slow"].as_str(), status["after"].as_str()), ("ran", "ran"));
    assert!(started.elapsed() < Duration::from_secs(20), "the rerun waited {:?}", started.elapsed());
    let gc = voxflow(&["gc", pipeline.to_str().unwrap()]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert_eq!(std::fs::read_dir(dir.join(".voxflow/tmp")).unwrap().count(), 0);
}

/// A command's background processes end with it, whether it succeeds or fails.
#[test]
fn a_commands_background_processes_end_with_it() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let dir = Scratch::new("background");
    let token = format!("61.{}", rng.random_range(100_000_000u64..999_999_999));
    let pipeline = dir.write(
        "bg.yaml",
        &format!(
            "name: bg\nstages:\n  left:\n    kind: command\n    run: (sleep {token} &) ; echo x > {{outputs.out}}\n    outputs: {{out: o.txt}}\n  code:\n    kind: command\n    run: exit 3\n    outputs: {{out: o.txt}}\n"
        ),
    );
    let summary = voxflow_json(&["run", pipeline.to_str().unwrap(), "--format", "json"], 1);
    let error = common::stage(&summary, "code")["error"].as_str().unwrap();
    assert!(error.contains("exit code 3"), "the command's exit code is kept: {error}");
    assert_eq!(statuses(&summary)["left"], "ran");
    let running = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
            String::from_utf8_lossy(&std::fs::read(entry.path().join("cmdline")).unwrap_or_default()).contains(&token)
        })
    };
    // SIGKILL is sent as the command ends; a loaded machine takes a moment to deliver it.
    let deadline = Instant::now() + Duration::from_secs(3);
    while running() {
        assert!(Instant::now() < deadline, "a background process outlived its command by 3 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The processes whose command line holds `marker`, as "PID: CMDLINE".
fn processes_naming(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(marker).then(|| format!("{}: {cmdline}", entry.file_name().to_string_lossy()))
        })
        .collect()
}

/// Waits up to `seconds` for no process to name any of `markers`.
fn none_left(markers: &[&str], seconds: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let left: Vec<String> = markers.iter().flat_map(|m| processes_naming(m)).collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: alive after {seconds} s: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// kill -9 of `voxflow run` at random moments of its start, while it
/// spawns commands (`sleep` stages at -j 2 and -j 16): some kills land
/// between a command's spawn and its registration with the reaper, which
/// then finds the command by the run's token in its environment. No
/// command (nor the reaper) is alive a few seconds after any of the kills.
#[test]
fn a_kill_9_at_any_moment_of_the_start_leaves_no_command_alive() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let dir = Scratch::new("kill-window");
    let token = format!("62.{}", rng.random_range(100_000_000u64..999_999_999));
    let mut yaml = String::from("name: window\nstages:\n");
    for i in 0..24 {
        yaml.push_str(&format!(
            "  s{i}:\n    kind: command\n    run: echo {i} > {{outputs.out}}; sleep {token}\n    outputs: {{out: o.txt}}\n"
        ));
    }
    let pipeline = dir.write("window.yaml", &yaml);
    let file = pipeline.display().to_string();
    // How long the runner takes to start its first command: the kills are
    // spread over twice that.
    let started = Instant::now();
    let mut child = Command::new(common::voxflow_bin())
        .args(["run", &file, "-j", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while processes_naming(&format!("sleep {token}")).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "the commands never started");
        std::thread::sleep(Duration::from_millis(1));
    }
    let first = started.elapsed();
    unsafe { kill(child.id() as i32, 9) };
    child.wait().unwrap();
    none_left(&[&token, &file], 5, "after the first kill");
    let span = (first * 2).max(Duration::from_millis(20));
    for trial in 0..16 {
        let jobs = if trial % 2 == 0 { "2" } else { "16" };
        let _ = std::fs::remove_dir_all(dir.join(".voxflow"));
        let mut child = Command::new(common::voxflow_bin())
            .args(["run", &file, "-j", jobs])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(span.mul_f64(rng.random_range(0.0..1.0)));
        unsafe { kill(child.id() as i32, 9) };
        child.wait().unwrap();
        none_left(&[&token, &file], 5, &format!("trial {trial} (-j {jobs})"));
    }
}

/// A command's processes that leave its process group (`setsid`) still
/// carry the run's token: the reaper kills them when the run is killed,
/// and when it ends normally.
#[test]
fn processes_that_leave_the_group_end_with_the_run() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let dir = Scratch::new("setsid");
    let (escaped, waiting) = (
        format!("63.{}", rng.random_range(100_000_000u64..999_999_999)),
        format!("64.{}", rng.random_range(100_000_000u64..999_999_999)),
    );
    // Killed: the command waits while a setsid process runs beside it.
    let pipeline = dir.write(
        "killed.yaml",
        &format!(
            "name: killed\nstages:\n  s:\n    kind: command\n    run: setsid sleep {escaped} & echo x > {{outputs.out}}; sleep {waiting}\n    outputs: {{out: o.txt}}\n"
        ),
    );
    let file = pipeline.display().to_string();
    let mut child = Command::new(common::voxflow_bin())
        .args(["run", &file])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while processes_naming(&format!("sleep {escaped}")).is_empty()
        || processes_naming(&format!("sleep {waiting}")).is_empty()
    {
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    unsafe { kill(child.id() as i32, 9) };
    child.wait().unwrap();
    none_left(&[&escaped, &waiting, &file], 5, "after kill -9 of the runner");

    // Ended: the command succeeds and leaves a setsid process behind.
    let escaped = format!("65.{}", rng.random_range(100_000_000u64..999_999_999));
    let pipeline = dir.write(
        "ended.yaml",
        &format!(
            "name: ended\nstages:\n  s:\n    kind: command\n    run: (setsid sleep {escaped} &); echo x > {{outputs.out}}\n    outputs: {{out: o.txt}}\n"
        ),
    );
    let summary = voxflow_json(&["run", pipeline.to_str().unwrap(), "--format", "json"], 0);
    assert_eq!(statuses(&summary)["s"], "ran");
    none_left(&[&escaped], 5, "after the run ended");
}

/// A `voxflow run` inside a command adds its own token beside the outer
/// run's: kill -9 of the outer runner ends the inner run's commands too.
#[test]
fn a_nested_runs_commands_end_with_the_outer_run() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let dir = Scratch::new("nested");
    let token = format!("66.{}", rng.random_range(100_000_000u64..999_999_999));
    let inner = dir.write(
        "inner.yaml",
        &format!(
            "name: inner\nstages:\n  s:\n    kind: command\n    run: setsid sleep {token} & echo x > {{outputs.out}}; sleep {token}\n    outputs: {{out: o.txt}}\n"
        ),
    );
    let outer = dir.write(
        "outer.yaml",
        &format!(
            "name: outer\nstages:\n  s:\n    kind: command\n    run: {} run {} --store {}; echo x > {{outputs.out}}\n    outputs: {{out: o.txt}}\n",
            common::voxflow_bin().display(),
            inner.display(),
            dir.join("inner-store").display()
        ),
    );
    let file = outer.display().to_string();
    let mut child = Command::new(common::voxflow_bin())
        .args(["run", &file])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while processes_naming(&format!("sleep {token}")).len() < 2 {
        assert!(Instant::now() < deadline, "the inner commands never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    unsafe { kill(child.id() as i32, 9) };
    child.wait().unwrap();
    none_left(&[&token, &file, &inner.display().to_string()], 5, "after kill -9 of the outer runner");
}

/// Placeholders must name declared inputs, params and outputs; the error
/// names the stage and the placeholder and lists what is declared.
#[test]
fn placeholders_must_name_declared_inputs_params_and_outputs() {
    let dir = Scratch::new("placeholders");
    let pipeline = dir.write(
        "p.yaml",
        r#"name: p
stages:
  a:
    kind: command
    run: echo hi > {outputs.o}
    outputs: {o: o.txt}
  b:
    kind: command
    inputs: [a]
    run: cat {inputs.zz} > {outputs.o}
    outputs: {o: o.txt}
  c:
    kind: command
    inputs: [a]
    run: cat {inputs.a} {params.colour} > {outputs.o} {outputs.p}
    outputs: {o: o.txt}
    params: {color: red}
"#,
    );
    let output = voxflow(&["validate", pipeline.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    for expected in [
        ":7: stage `b`: `{inputs.zz}` in `run:` names no declared input; declared: a",
        "stage `c`: param `run`: `{params.colour}` names no declared param; declared: color",
        "stage `c`: param `run`: `{outputs.p}` names no declared output; declared: o",
        "3 errors found",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!dir.join(".voxflow").exists());
}

/// Words that run far past the last TR of their story are a warning kept
/// in the manifest and shown by `run` (responses are often trimmed at the
/// end, so a user may mean it); a story whose responses have no rows is an
/// error naming the story and the file.
#[test]
fn words_past_the_last_tr_warn_and_a_story_without_responses_fails() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let dir = Scratch::new("data-checks");
    let n_trs = rng.random_range(60..120);
    let mut tsv = String::from("word\tonset\toffset\n");
    let mut t = 0.5;
    let mut times = Vec::new();
    // Words run to about twice the TRs' span (2 s each).
    while t < 4.0 * n_trs as f64 {
        let onset = format!("{t:.3}");
        tsv.push_str(&format!("{}\t{onset}\t{:.3}\n", random_text(&mut rng), t + 0.2));
        times.push(onset.parse::<f64>().unwrap());
        t += rng.random_range(0.2..0.6);
    }
    dir.write("words/s.tsv", &tsv);
    let last_tr = (n_trs - 1) as f64 * 2.0;
    let past = times.iter().filter(|&&t| t > last_tr + 2.0).count();
    let cols = rng.random_range(2..50);
    std::fs::create_dir_all(dir.join("responses")).unwrap();
    let rows = rng.random_range(3..20);
    let data: Vec<f32> = (0..rows * cols).map(|_| rng.random::<f32>() - 0.5).collect();
    voxflow::formats::npy::write_npy(
        &dir.join("responses/full.npy"),
        &voxflow::numeric::Matrix::from_vec(rows, cols, data),
    )
    .unwrap();
    voxflow::formats::npy::write_npy(
        &dir.join("responses/empty.npy"),
        &voxflow::numeric::Matrix::from_vec(0, cols, Vec::new()),
    )
    .unwrap();
    let pipeline = dir.write(
        "late.yaml",
        &format!(
            r#"name: late
stages:
  words:
    kind: align.words
    params: {{source: tsv, dir: words}}
  trs:
    kind: align.trs
    params: {{source: counts, tr: 2.0, lead_in: 0, offset: 0, counts: {{s: {n_trs}}}}}
  rate:
    kind: features.word_rate
    inputs: [words]
  rate_tr:
    kind: downsample
    inputs: {{features: rate, words: words, trs: trs}}
    params: {{method: average, word_time: onset}}
  responses:
    kind: load.responses
    params: {{format: npy, dir: responses}}
"#
        ),
    );
    let summary = voxflow_json(&["run", pipeline.to_str().unwrap(), "--format", "json"], 1);
    let status = statuses(&summary);
    assert_eq!(status["rate_tr"], "ran", "{summary}");
    let warnings = common::stage(&summary, "rate_tr")["warnings"].as_array().cloned().unwrap_or_default();
    assert_eq!(warnings.len(), 1, "{summary}");
    let warning = warnings[0].as_str().unwrap();
    let expected = format!("story `s`: {past} of {} words", times.len());
    assert!(warning.contains(&expected) && warning.contains(&format!("{n_trs} TRs")), "{warning}\nwanted {expected}");
    // Kept in the manifest.
    let key = common::stage(&summary, "rate_tr")["key"].as_str().unwrap();
    let manifest = std::fs::read_to_string(dir.join(".voxflow/objects").join(key).join("manifest.json")).unwrap();
    assert!(manifest.contains(&expected), "{manifest}");

    assert_eq!(status["responses"], "failed");
    let error = common::stage(&summary, "responses")["error"].as_str().unwrap();
    assert!(error.contains("story `empty`") && error.contains("empty.npy") && error.contains("0 TRs"), "{error}");
}

/// A one-tier long-form TextGrid with intervals given as (xmin, xmax) text.
fn textgrid(intervals: &[(String, String)]) -> String {
    let end = intervals.last().map(|(_, b)| b.clone()).unwrap_or_else(|| "0".into());
    let mut text = format!(
        "File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n\nxmin = 0 \nxmax = {end} \ntiers? <exists> \nsize = 1 \n\
         item []: \n    item [1]:\n        class = \"IntervalTier\" \n        name = \"words\" \n        xmin = 0 \n\
         \x20       xmax = {end} \n        intervals: size = {} \n",
        intervals.len()
    );
    for (i, (a, b)) in intervals.iter().enumerate() {
        text.push_str(&format!(
            "        intervals [{}]:\n            xmin = {a} \n            xmax = {b} \n            text = \"w{i}\" \n",
            i + 1
        ));
    }
    text
}

/// TextGrid intervals that cannot belong to a recording (an absurd or
/// negative time, an interval ending before it starts, overlapping
/// intervals) are refused naming the file and the interval's line.
#[test]
fn textgrid_intervals_with_impossible_times_are_refused_with_file_and_line() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let dir = Scratch::new("textgrid-times");
    let n = rng.random_range(3..40);
    let mut bounds = vec![0.0f64];
    for _ in 0..n {
        bounds.push(bounds.last().unwrap() + rng.random_range(0.05..0.9));
    }
    let good: Vec<(String, String)> =
        (0..n).map(|i| (format!("{:.4}", bounds[i]), format!("{:.4}", bounds[i + 1]))).collect();
    let path = dir.write("good.TextGrid", &textgrid(&good));
    let grid = voxflow::formats::textgrid::read_textgrid(&path).unwrap();
    assert_eq!(grid.tiers[0].intervals.len(), n);

    let k = rng.random_range(1..n); // 0-based, never the first interval
    let line = 16 + 4 * k; // the line of interval k+1's xmin
    let cases: Vec<(Vec<(String, String)>, String)> = vec![
        {
            let mut bad = good.clone();
            bad[k].1 = "1e300".into();
            (bad, format!("interval {} of tier \"words\" has xmax = 1e300", k + 1))
        },
        {
            let mut bad = good.clone();
            bad[0].0 = "-0.5".into();
            (bad, "interval 1 of tier \"words\" has xmin = -0.5".to_string())
        },
        {
            let mut bad = good.clone();
            bad[k].0 = format!("{:.4}", bounds[k] - 0.04);
            (bad, format!("intervals overlap"))
        },
        {
            let mut bad = good.clone();
            bad[k].1 = format!("{:.4}", bounds[k] - 0.01);
            (bad, format!("interval {} of tier \"words\" ends before it starts", k + 1))
        },
    ];
    let banana = dir.write(
        "banana.TextGrid",
        &textgrid(&good).replacen(
            &format!("xmax = {} \n            text", good[k].1),
            "xmax = banana \n            text",
            1,
        ),
    );
    let error = voxflow::formats::textgrid::read_textgrid(&banana).expect_err("banana").to_string();
    assert!(
        error.starts_with(&format!("{}:{}: \"banana\" after `=` is not a number", banana.display(), line + 1)),
        "{error}"
    );
    // An error about the token just read names that token's line (this
    // one named line 0 until tests/fuzz.rs found it).
    let sound = dir.write("sound.TextGrid", "File type = \"ooTextFile\"\nObject class = \"Sound\"\n");
    let error = voxflow::formats::textgrid::read_textgrid(&sound).expect_err("Sound").to_string();
    assert!(error.starts_with(&format!("{}:2: object class is \"Sound\"", sound.display())), "{error}");
    for (i, (bad, expected)) in cases.into_iter().enumerate() {
        let path = dir.write(&format!("bad{i}.TextGrid"), &textgrid(&bad));
        let error = voxflow::formats::textgrid::read_textgrid(&path).expect_err(&expected).to_string();
        let line = if i == 1 { 16 } else { line };
        assert!(error.starts_with(&format!("{}:{line}: ", path.display())), "{error}");
        assert!(error.contains(&expected), "{error}\nwanted {expected}");
    }
}

/// A word that ends before it starts is named by its story, its file and
/// its number counted from 1.
#[test]
fn an_invalid_word_interval_names_story_file_and_word_from_one() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let dir = Scratch::new("word-interval");
    let n = rng.random_range(3..30);
    let bad = rng.random_range(0..n);
    let mut tsv = String::from("word\tonset\toffset\n");
    for i in 0..n {
        let onset = i as f64 + 0.5;
        let offset = if i == bad { onset - 0.25 } else { onset + 0.25 };
        tsv.push_str(&format!("w{i}x\t{onset}\t{offset}\n"));
    }
    let file = dir.write("words/story.tsv", &tsv);
    let pipeline = dir
        .write("w.yaml", "name: w\nstages:\n  words:\n    kind: align.words\n    params: {source: tsv, dir: words}\n");
    let summary = voxflow_json(&["run", pipeline.to_str().unwrap(), "--format", "json"], 1);
    let error = common::stage(&summary, "words")["error"].as_str().unwrap();
    let expected = format!("story `story` ({}), word {} (`w{bad}x`", file.display(), bad + 1);
    assert!(error.contains(&expected), "{error}\nwanted {expected}");
}
