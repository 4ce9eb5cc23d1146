//! `voxflow compare --filter/--by/--pivot/--sort/--pipelines` (polars): a
//! sweep of command stages writes random summaries shaped like
//! eval.samples' (step, mode, accuracy, fid: several rows per stage, one
//! null), and the `--by` and `--pivot` results equal the same group_by/agg
//! and pivot done with polars in Python on the exported Parquet, to 1e-12.

mod common;

use std::path::Path;

use common::{fresh_seed, python, run_python, stderr, stdout, voxflow, voxflow_json, Scratch};

/// Matrix over mode and seed; seed 10 sorts after 2 only as a number.
const SWEEP: &str = r#"
name: NAME
matrix:
  mode: MODES
  seed: [0, 1, 2, 10]
stages:
  samples:
    kind: command
    run: PYTHON score.py {params.mode} {params.seed} {params.salt} {outputs.summary}
    outputs: {summary: summary.parquet}
    params: {mode: "${matrix.mode}", seed: "${matrix.seed}", salt: SALT, files: [score.py]}
"#;

/// One summary row per checkpoint step, as eval.samples writes; the
/// (shuffled, 10, step 40) fid is null.
const SCORE: &str = r#"
import sys, zlib, numpy as np, pyarrow as pa, pyarrow.parquet as pq
mode, seed, salt, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = np.random.default_rng([salt, seed, zlib.crc32(mode.encode())])
steps = [10, 20, 40]
fid = [float(v) for v in rng.normal(2.0, 0.5, len(steps))]
if mode == "shuffled" and seed == 10:
    fid[2] = None
pq.write_table(pa.table({
    "step": pa.array(steps, pa.int64()),
    "mode": pa.array([mode] * len(steps)),
    "accuracy": pa.array(rng.random(len(steps))),
    "fid": pa.array(fid, pa.float64()),
}), out)
"#;

/// Checks each voxflow result against polars in Python on the raw table.
const CHECK: &str = r#"
import json, sys, math, polars as pl
aggs = {"mean": lambda c: pl.col(c).mean(), "sd": lambda c: pl.col(c).std(ddof=1),
        "median": lambda c: pl.col(c).median(), "n": lambda c: pl.col(c).count(),
        "min": lambda c: pl.col(c).min(), "max": lambda c: pl.col(c).max()}
def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)
for case in json.loads(sys.argv[1]):
    raw = pl.read_parquet(case["raw"])
    got = pl.read_parquet(case["out"])
    if case["kind"] == "by":
        metrics = [m for m in case["metrics"] if m not in case["by"]]
        want = raw.group_by(case["by"]).agg([aggs[a](m).alias(f"{m}_{a}") for m in metrics for a in case["aggs"]])
        keys = case["by"]
    else:
        m, keys, on = case["metric"], case["index"], case["on"]
        grouped = raw.group_by(keys + [on]).agg([aggs[a](m).alias(f"{m}_{a}") for a in case["aggs"]])
        want = grouped.pivot(on=on, index=keys, values=[f"{m}_{a}" for a in case["aggs"]])
    assert sorted(want.columns) == sorted(got.columns), (case, want.columns, got.columns)
    assert want.height == got.height, (case, want.height, got.height)
    want, got = want.sort(keys), got.sort(keys)
    for c in want.columns:
        for i, (w, g) in enumerate(zip(want[c].to_list(), got[c].to_list())):
            assert (w == g) if c in keys else same(w, g), (case["kind"], c, i, w, g)
print("ok", len(json.loads(sys.argv[1])))
"#;

fn sweep(dir: &Scratch, name: &str, modes: &str, salt: u64) -> String {
    let text = SWEEP
        .replace("NAME", name)
        .replace("MODES", modes)
        .replace("PYTHON", &python().display().to_string())
        .replace("SALT", &salt.to_string());
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(sub.join("score.py"), SCORE).unwrap();
    std::fs::write(sub.join("pipeline.yaml"), text).unwrap();
    let pipeline = sub.join("pipeline.yaml").to_str().unwrap().to_string();
    voxflow_json(&["run", &pipeline, "-j", "2", "--format", "json"], 0);
    pipeline
}

/// `voxflow compare ARGS --format json --out OUT`, its document and OUT/compare.parquet.
fn compare(args: &[&str], out: &Path) -> (serde_json::Value, String) {
    let mut all = vec!["compare"];
    all.extend(args);
    all.extend(["--format", "json", "--out", out.to_str().unwrap()]);
    let document = voxflow_json(&all, 0);
    (document, out.join("compare.parquet").to_str().unwrap().to_string())
}

fn column<'a>(document: &'a serde_json::Value, name: &str) -> Vec<&'a serde_json::Value> {
    document["rows"].as_array().unwrap().iter().map(|r| &r[name]).collect()
}

#[test]
fn by_and_pivot_equal_polars_in_python_and_filter_sort_and_errors_read_plainly() {
    let dir = Scratch::new("compare-polars");
    let salt = fresh_seed() % 1_000_000;
    let a = sweep(&dir, "sweep_a", "[regular, proto, shuffled]", salt);
    let b = sweep(&dir, "sweep_b", "[regular, proto]", salt + 1);

    let (plain, raw) = compare(&[&a], &dir.join("raw"));
    assert_eq!(plain["rows"].as_array().unwrap().len(), 3 * 4 * 3, "{plain}");
    assert_eq!(plain["metrics"], serde_json::json!(["step", "accuracy", "fid"]));
    let (by, by_out) = compare(&[&a, "--by", "mode,step", "--agg", "mean,sd,median,n,min,max"], &dir.join("by"));
    assert_eq!(by["keys"], serde_json::json!(["mode", "step"]));
    assert_eq!(by["rows"].as_array().unwrap().len(), 3 * 3);
    // Sorted by the keys: mode, then step as a number.
    let modes: Vec<&str> = column(&by, "mode").iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(modes, ["proto", "proto", "proto", "regular", "regular", "regular", "shuffled", "shuffled", "shuffled"]);
    let ns: Vec<u64> = column(&by, "fid_n").iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(ns, [4, 4, 4, 4, 4, 4, 4, 4, 3], "the null fid is not counted");
    let (_, default_out) = compare(&[&a, "--by", "mode,step"], &dir.join("by-default"));
    let (pivot, pivot_out) = compare(
        &[&a, "--by", "step", "--pivot", "mode", "--metric", "accuracy", "--agg", "mean,sd"],
        &dir.join("pivot"),
    );
    assert_eq!(column(&pivot, "step").len(), 3);
    let (_, seed_out) = compare(&[&a, "--pivot", "seed", "--metric", "fid"], &dir.join("pivot-seed"));
    let (many, many_raw) = compare(&["--pipelines", &a, &b], &dir.join("many"));
    assert_eq!(many["rows"].as_array().unwrap().len(), (3 + 2) * 4 * 3);
    assert_eq!(many["pipeline"], serde_json::json!(["sweep_a", "sweep_b"]));
    let (_, many_by) =
        compare(&["--pipelines", &a, &b, "--by", "pipeline,mode", "--agg", "mean,sd,n"], &dir.join("many-by"));
    let cases = serde_json::json!([
        {"kind": "by", "raw": raw, "out": by_out, "by": ["mode", "step"], "metrics": ["step", "accuracy", "fid"],
         "aggs": ["mean", "sd", "median", "n", "min", "max"]},
        {"kind": "by", "raw": raw, "out": default_out, "by": ["mode", "step"], "metrics": ["accuracy", "fid"],
         "aggs": ["mean", "sd", "n"]},
        {"kind": "pivot", "raw": raw, "out": pivot_out, "index": ["step"], "on": "mode", "metric": "accuracy",
         "aggs": ["mean", "sd"]},
        {"kind": "pivot", "raw": raw, "out": seed_out, "index": ["mode"], "on": "seed", "metric": "fid",
         "aggs": ["mean"]},
        {"kind": "by", "raw": many_raw, "out": many_by, "by": ["pipeline", "mode"],
         "metrics": ["step", "accuracy", "fid"], "aggs": ["mean", "sd", "n"]},
    ]);
    let checked = run_python(CHECK, &[&cases.to_string()]);
    assert_eq!(checked.trim(), "ok 5", "{checked}");
    // The seed pivot's columns come in numeric order.
    let seed_columns: Vec<String> = voxflow::artifact::read_batch(Path::new(&seed_out))
        .unwrap()
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(seed_columns, ["mode", "0", "1", "2", "10"]);

    // --filter: text with ==/in, numbers (text of numbers too) with </>=/!=.
    let (filtered, _) =
        compare(&[&a, "--filter", "mode in [regular, 'proto'] and seed >= 2 and step != 20"], &dir.join("filter"));
    let rows = filtered["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2 * 2 * 2, "{filtered}");
    for row in rows {
        assert!(["regular", "proto"].contains(&row["mode"].as_str().unwrap()), "{row}");
        assert!(["2", "10"].contains(&row["seed"].as_str().unwrap()), "{row}");
        assert_ne!(row["step"], 20, "{row}");
    }
    let (not_in, _) = compare(&[&a, "--filter", "mode not in [regular] and accuracy < 0.5"], &dir.join("not-in"));
    for row in not_in["rows"].as_array().unwrap() {
        assert_ne!(row["mode"], "regular");
        assert!(row["accuracy"].as_f64().unwrap() < 0.5);
    }
    // --sort: numbers as numbers (seed 10 last), `:desc`, on result columns.
    let (sorted, _) = compare(&[&a, "--sort", "seed,step:desc"], &dir.join("sorted"));
    let keys: Vec<(String, i64)> = sorted["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["seed"].as_str().unwrap().to_string(), r["step"].as_i64().unwrap()))
        .collect();
    let mut expected = keys.clone();
    expected.sort_by_key(|(seed, step)| (seed.parse::<i64>().unwrap(), -step));
    assert_eq!(keys, expected);
    assert_eq!(keys.last().unwrap().0, "10");
    let (by_desc, _) =
        compare(&[&a, "--filter", "mode == proto", "--by", "step", "--sort", "accuracy_mean:desc"], &dir.join("desc"));
    let means: Vec<f64> = column(&by_desc, "accuracy_mean").iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(means.len(), 3);
    assert!(means.windows(2).all(|w| w[0] >= w[1]), "{means:?}");

    // The human table prints the keys and the chosen metrics' columns.
    let output =
        voxflow(&["compare", &a, "--by", "mode", "--columns", "fid", "--out", dir.join("human").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let header = stdout(&output).lines().find(|l| l.contains("mode")).unwrap().to_string();
    let names: Vec<&str> = header.split('|').map(str::trim).filter(|n| !n.is_empty()).collect();
    assert_eq!(names, ["mode", "fid_mean", "fid_sd", "fid_n"], "{}", stdout(&output));

    // Unknown names exit 2 and list what there is.
    // (args, what stderr says, whether it lists the axes and metrics)
    for (args, needle, lists) in [
        (vec!["--by", "modee"], "--by modee: no such column", true),
        (vec!["--pivot", "sed"], "--pivot sed: no such column", true),
        (vec!["--pivot", "mode", "--metric", "acc"], "no metric `acc`", false),
        (vec!["--filter", "bogus == 1"], "no column `bogus`", true),
        (vec!["--filter", "mode >= 3"], "`>=` compares numbers; `mode` holds text", true),
        (vec!["--filter", "accuracy > high"], "`accuracy` holds numbers; `high` is not one", true),
        (vec!["--filter", "mode == regular or seed == 1"], "expected `and` or the end, found `or`", true),
        (vec!["--filter", "mode =="], "expected a value after `mode ==`, found the end", true),
        (vec!["--filter", "mode in [regular"], "expected `,` or `]`", true),
        (vec!["--by", "mode", "--agg", "avg"], "unknown aggregate `avg`", false),
        (vec!["--sort", "nope"], "--sort nope: no column `nope` in the result", false),
        (vec!["--agg", "mean"], "--agg needs --by or --pivot", true),
    ] {
        let mut all = vec!["compare", a.as_str()];
        all.extend(&args);
        let output = voxflow(&all);
        let error = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {error}");
        assert!(error.contains(needle), "{args:?}: {error}");
        if lists {
            assert!(error.contains("axes: mode, seed; metrics: step, accuracy, fid"), "{args:?}: {error}");
        }
    }
    let output = voxflow(&["compare", "--pipelines", &a, &b, "--run", "1"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}
