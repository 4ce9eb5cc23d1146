//! `voxflow init`: each template writes a pipeline that validates and runs
//! as written, and no file is ever written over another.

mod common;

use common::{fresh_seed, statuses, stderr, voxflow, voxflow_json, Scratch};

#[test]
fn the_encoding_starter_runs_as_written_and_recovers_the_generated_signal() {
    let dir = Scratch::new("init-encoding");
    let target = dir.join("study one");
    let output = voxflow(&["init", target.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let pipeline = target.join("pipeline.yaml");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    assert!(text.contains("name: study_one"), "the directory names the pipeline:\n{text}");
    assert_eq!(std::fs::read_to_string(target.join(".gitignore")).unwrap(), ".voxflow/\n");
    assert!(std::fs::read_to_string(target.join("README.md")).unwrap().starts_with("# study_one\n"));

    let pipeline = pipeline.to_str().unwrap();
    voxflow_json(&["validate", pipeline, "--format", "json"], 0);
    let run = voxflow_json(&["run", pipeline, "-j", "2", "--format", "json"], 0);
    let statuses = statuses(&run);
    assert!(statuses.values().all(|s| s == "ran"), "{statuses:?}");
    assert!(statuses.contains_key("fit[method=lanczos]") && statuses.contains_key("fit[method=average]"));
    // The features share the generating embedding, so held-out voxels are predicted.
    let compare = voxflow_json(&["compare", pipeline, "--format", "json"], 0);
    let rows = compare["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{compare}");
    for row in rows {
        let mean_r = row["mean_r"].as_f64().unwrap();
        assert!(mean_r > 0.1, "mean_r {mean_r}: {row}");
    }

    // A second init into the same directory writes nothing and names the files.
    let before = std::fs::read_to_string(target.join("README.md")).unwrap();
    let output = voxflow(&["init", target.to_str().unwrap(), "--template", "command"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("pipeline.yaml") && stderr(&output).contains("already there"),
        "{}",
        stderr(&output)
    );
    assert!(!target.join("scripts").exists());
    assert_eq!(std::fs::read_to_string(target.join("README.md")).unwrap(), before);
    let output = voxflow(&["init", dir.join("x").to_str().unwrap(), "--name", "no spaces"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn the_command_starter_runs_its_scripts_over_the_matrix() {
    let dir = Scratch::new("init-command");
    let target = dir.join("scripts-study");
    let output = voxflow(&["init", target.to_str().unwrap(), "--template", "command", "--name", "powers"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let pipeline = target.join("pipeline.yaml");
    let pipeline = pipeline.to_str().unwrap();
    let count = 5 + fresh_seed() % 40;
    let set = format!("numbers.count={count}");
    let run = voxflow_json(&["run", pipeline, "--set", &set, "--format", "json"], 0);
    assert_eq!(statuses(&run).len(), 3);
    for n in [3u32, 5] {
        let show = voxflow_json(&["show", pipeline, &format!("square[n={n}]"), "--set", &set, "--format", "json"], 0);
        let stage = &show["stages"][0];
        let file = std::path::Path::new(stage["directory"].as_str().unwrap())
            .join(stage["outputs"]["table"]["file"].as_str().unwrap());
        let text = std::fs::read_to_string(&file).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("x,x_pow"));
        let rows: Vec<(u64, f64)> = lines
            .map(|l| {
                let (x, p) = l.split_once(',').unwrap();
                (x.parse().unwrap(), p.parse().unwrap())
            })
            .collect();
        assert_eq!(rows.len() as u64, count);
        for (i, (x, p)) in rows.into_iter().enumerate() {
            assert_eq!(x, i as u64 + 1);
            assert_eq!(p, (x as f64).powi(n as i32), "{x}^{n}");
        }
    }
    // Editing a script reruns the stages that call it, nothing else.
    std::fs::write(
        target.join("scripts/power.sh"),
        std::fs::read_to_string(target.join("scripts/power.sh")).unwrap() + "# edited\n",
    )
    .unwrap();
    let run = voxflow_json(&["run", pipeline, "--set", &set, "--format", "json"], 0);
    let statuses = statuses(&run);
    assert_eq!(statuses["numbers"], "cached");
    assert_eq!(statuses["square[n=3]"], "ran");
    assert_eq!(statuses["square[n=5]"], "ran");
}
