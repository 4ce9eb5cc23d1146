//! `voxflow export mlflow` against a real MLflow tracking server (mlflow
//! 3.17.2 with a SQLite backend in a temporary directory, from the
//! environment scripts/setup-python.sh makes), read back with MLflow's own
//! client (`mlflow.search_runs`, `MlflowClient.get_metric_history`).

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{fresh_seed, stderr, stdout, voxflow, Scratch};

/// The encoding path on a small generated dataset (`score` writes summary
/// metrics) and a command stage that writes a training-curve table.
const PIPELINE: &str = r#"
name: tracked
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
  prep:
    kind: prep
    inputs: {responses: synth.responses, repeats: synth.repeats, embedding: embedding_tr}
    params: {trim: {start: 5, end: 5}}
  fit:
    kind: ridge
    inputs: {data: prep}
    params: {alphas: [1, 10, 100, 1000, 10000]}
  score:
    kind: evaluate
    inputs: {predictions: fit.predictions, actual: prep.y_test, repeats: prep.y_test_repeats, truth: synth.truth}
  curve:
    kind: command
    run: PYTHON curve.py {params.seed} {outputs.metrics}
    outputs: {metrics: metrics.parquet}
    params: {seed: SEED, files: [curve.py]}
"#;

/// A `metrics` table as the training kinds write it: step, loss, lr.
const CURVE: &str = r#"
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq
rng = np.random.default_rng(int(sys.argv[1]))
steps = np.arange(0, 50, 5, dtype=np.int64)
table = pa.table({"step": steps, "loss": rng.random(len(steps)) * 4, "lr": rng.random(len(steps)) * 1e-3})
pq.write_table(table, sys.argv[2])
"#;

/// Reads the experiment back: every run's tags, params, metrics, status,
/// and the metric history of each `train.*` metric.
const READ_BACK: &str = r#"
import json, sys, mlflow
from mlflow.tracking import MlflowClient
mlflow.set_tracking_uri(sys.argv[1])
client = MlflowClient()
runs = []
for run in client.search_runs([client.get_experiment_by_name(sys.argv[2]).experiment_id], max_results=1000):
    history = {k: [[m.step, m.value] for m in client.get_metric_history(run.info.run_id, k)]
               for k in run.data.metrics if k.startswith("train.")}
    runs.append({"id": run.info.run_id, "name": run.info.run_name, "status": run.info.status,
                 "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.") or k == "mlflow.parentRunId"},
                 "params": run.data.params, "metrics": run.data.metrics, "history": history})
df = mlflow.search_runs(experiment_names=[sys.argv[2]])
print(json.dumps({"runs": runs, "search_runs_rows": len(df)}))
"#;

/// Sets one run back to RUNNING, as an export killed half-way leaves it.
const UNFINISH: &str = r#"
import sys
from mlflow.tracking import MlflowClient
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
MlflowClient().update_run(sys.argv[2], status="RUNNING")
"#;

fn mlflow_venv() -> PathBuf {
    let venv = match std::env::var_os("VOXFLOW_MLFLOW_VENV") {
        Some(venv) => PathBuf::from(venv),
        None => Path::new(&std::env::var_os("HOME").expect("HOME is not set")).join(".cache/voxflow-mlflow-venv"),
    };
    assert!(
        venv.join("bin/mlflow").exists(),
        "{} has no mlflow: run scripts/setup-python.sh (the README's test command does)",
        venv.display()
    );
    venv
}

/// A tracking server on a free port, stopped (with its workers) on drop.
struct Server {
    child: Child,
    uri: String,
}

impl Server {
    fn start(dir: &Scratch) -> Server {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let db = dir.join("mlflow.db");
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let mut command = Command::new(mlflow_venv().join("bin/mlflow"));
        command
            .args(["server", "--host", "127.0.0.1", "--port", &port.to_string(), "--workers", "1"])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", db.display()))
            .arg("--default-artifact-root")
            .arg(dir.join("artifacts"))
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("start mlflow server");
        let server = Server { child, uri: format!("http://127.0.0.1:{port}") };
        let started = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "mlflow server did not listen within 300 s:\n{}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn mlflow_python(script: &str, args: &[&str]) -> String {
    let output =
        Command::new(mlflow_venv().join("bin/python")).arg("-c").arg(script).args(args).output().expect("run python");
    assert!(output.status.success(), "python failed:\n{}\n{}", stdout(&output), stderr(&output));
    stdout(&output)
}

fn ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new(common::voxflow_bin()).args(args).envs(env.iter().copied()).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "voxflow {args:?}\n{}\n{}", stdout(&output), stderr(&output));
    stdout(&output)
}

fn runs_of(document: &Value, voxflow_run: &str) -> Vec<Value> {
    document["runs"].as_array().unwrap().iter().filter(|r| r["tags"]["voxflow.run"] == voxflow_run).cloned().collect()
}

fn stage_run<'a>(runs: &'a [Value], stage: &str) -> &'a Value {
    let found: Vec<&Value> = runs.iter().filter(|r| r["tags"]["voxflow.stage"] == stage).collect();
    assert_eq!(found.len(), 1, "one MLflow run for stage {stage}: {found:?}");
    found[0]
}

#[test]
fn runs_export_to_an_mlflow_server_once_with_params_metrics_curves_and_tags() {
    let dir = Scratch::new("mlflow-export");
    let seed = fresh_seed() % 1_000_000;
    dir.write("curve.py", CURVE);
    let python = common::python();
    let pipeline_text = PIPELINE.replace("PYTHON", &python.display().to_string()).replace("SEED", &seed.to_string());
    let pipeline = dir.write("tracked.yaml", &pipeline_text);
    let pipeline = pipeline.to_str().unwrap();
    let server = Server::start(&dir);

    // Bad addresses are refused before anything is sent.
    let output = voxflow(&["export", "mlflow", pipeline, "--tracking-uri", "./mlruns"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("./mlruns") && stderr(&output).contains("REST API"), "{}", stderr(&output));
    let output = voxflow(&["export", "mlflow", pipeline, "--tracking-uri", &server.uri]);
    assert_eq!(output.status.code(), Some(2), "no run yet: {}", stderr(&output));
    assert!(stderr(&output).contains("no recorded run"), "{}", stderr(&output));

    ok(&["run", pipeline, "-j", "2"], &[]);
    ok(&["run", pipeline, "-j", "2", "--set", "fit.alphas=[10, 100]"], &[]);
    let history: Value = serde_json::from_str(&ok(&["runs", pipeline, "--format", "json"], &[])).unwrap();
    let last = &history["runs"][1];
    assert_eq!(last["id"], 2);

    // The last run (default), through MLFLOW_TRACKING_URI as MLflow's clients read it.
    let printed = ok(&["export", "mlflow", pipeline], &[("MLFLOW_TRACKING_URI", &server.uri)]);
    assert!(printed.contains("9 stage runs created, 0 already there"), "{printed}");
    // Every run: run 2 is not written again.
    let printed = ok(&["export", "mlflow", pipeline, "--all", "--tracking-uri", &server.uri], &[]);
    assert!(printed.contains("run 1:") && printed.contains("9 stage runs created"), "{printed}");
    assert!(printed.contains("run 2:") && printed.contains("0 stage runs created, 9 already there"), "{printed}");

    let document: Value = serde_json::from_str(&mlflow_python(READ_BACK, &[&server.uri, "tracked"])).unwrap();
    assert_eq!(document["search_runs_rows"], 20, "two parents and 2 x 9 stage runs");
    let run2 = runs_of(&document, "2");
    assert_eq!(run2.len(), 10);
    let parent = run2.iter().find(|r| r["tags"].get("voxflow.stage").is_none()).expect("a parent run");
    assert_eq!(parent["name"], "tracked run 2");
    assert_eq!(parent["params"]["set.fit.alphas"], "[10, 100]");
    assert_eq!(parent["status"], "FINISHED");

    // Stage runs: nested under the parent, keys and statuses as voxflow recorded them.
    for stage in last["stages"].as_array().unwrap() {
        let name = stage["name"].as_str().unwrap();
        let run = stage_run(&run2, name);
        assert_eq!(run["tags"]["mlflow.parentRunId"], parent["id"], "{name}");
        assert_eq!(run["tags"]["voxflow.key"], stage["key"], "{name}");
        assert_eq!(run["tags"]["voxflow.status"], stage["status"], "{name}");
        assert_eq!(run["status"], "FINISHED", "{name}");
    }
    let fit = stage_run(&run2, "fit");
    assert_eq!(fit["params"]["alphas"], "[10,100]");
    assert!(fit["params"]["folds.k"].as_str().is_some(), "nested params by dotted path: {}", fit["params"]);
    assert_eq!(stage_run(&runs_of(&document, "1"), "fit")["params"]["alphas"], "[1,10,100,1000,10000]");

    // Summary metrics equal the stage's summary table, read with pyarrow.
    let score_key = last["stages"].as_array().unwrap().iter().find(|s| s["name"] == "score").unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let show: Value = serde_json::from_str(&ok(
        &["show", pipeline, "score", "--set", "fit.alphas=[10, 100]", "--format", "json"],
        &[],
    ))
    .unwrap();
    let shown = &show["stages"][0];
    assert_eq!(shown["key"], score_key.as_str());
    let summary_path = Path::new(shown["directory"].as_str().unwrap())
        .join(shown["outputs"]["summary"]["file"].as_str().expect("summary output in show"))
        .display()
        .to_string();
    let expected: Value = serde_json::from_str(&common::run_python(
        "import sys, json, pyarrow.parquet as pq\nt = pq.read_table(sys.argv[1]).to_pylist()[0]\nprint(json.dumps({k: v for k, v in t.items() if isinstance(v, (int, float))}))",
        &[&summary_path],
    ))
    .unwrap();
    let score = stage_run(&run2, "score");
    assert_eq!(score["tags"]["voxflow.key"], score_key.as_str());
    for (metric, value) in expected.as_object().unwrap() {
        let got = score["metrics"][metric]
            .as_f64()
            .unwrap_or_else(|| panic!("metric {metric} missing: {}", score["metrics"]));
        let want = value.as_f64().unwrap();
        assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{metric}: {got} vs {want}");
    }

    // The training curve: every point of the metrics table at its step.
    let curve_file = dir.join("curve-expected.json");
    common::run_python(
        &format!("{CURVE}\nimport json\njson.dump({{'loss': [[int(s), float(v)] for s, v in zip(steps, table['loss'].to_pylist())], 'lr': [[int(s), float(v)] for s, v in zip(steps, table['lr'].to_pylist())]}}, open(sys.argv[3], 'w'))"),
        &[&seed.to_string(), dir.join("unused.parquet").to_str().unwrap(), curve_file.to_str().unwrap()],
    );
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(&curve_file).unwrap()).unwrap();
    let curve = stage_run(&run2, "curve");
    for metric in ["loss", "lr"] {
        let got = curve["history"][format!("train.{metric}")].as_array().unwrap();
        let want = expected[metric].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{metric}: {got:?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g[0], w[0]);
            let (g, w) = (g[1].as_f64().unwrap(), w[1].as_f64().unwrap());
            assert!((g - w).abs() <= 1e-12 * w.abs().max(1e-12), "{metric}: {g} vs {w}");
        }
    }

    // An export killed half-way leaves a RUNNING stage run: the next export writes it again, once.
    let fit_id = fit["id"].as_str().unwrap();
    mlflow_python(UNFINISH, &[&server.uri, fit_id]);
    let printed = ok(&["export", "mlflow", pipeline, "--tracking-uri", &server.uri, "--run", "2"], &[]);
    assert!(printed.contains("0 stage runs created, 8 already there, 1 half-written ones written again"), "{printed}");
    let document: Value = serde_json::from_str(&mlflow_python(READ_BACK, &[&server.uri, "tracked"])).unwrap();
    assert_eq!(document["search_runs_rows"], 20);
    let run2 = runs_of(&document, "2");
    let fit = stage_run(&run2, "fit");
    assert_eq!(fit["status"], "FINISHED");
    assert_ne!(fit["id"], fit_id);

    // A server that is not there: exit 1 and how to fix it.
    drop(server);
    let gone = format!("http://127.0.0.1:{}", TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let output = voxflow(&["export", "mlflow", pipeline, "--tracking-uri", &gone]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot reach the MLflow server") && stderr(&output).contains("hint:"));
}
