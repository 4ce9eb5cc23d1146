//! Every artifact opens in Python with one pyarrow call, with the values and
//! shape voxflow wrote.

mod common;

use common::{run_python, voxflow_json, Scratch};
use rand::{Rng, SeedableRng};
use voxflow::numeric::Matrix;

#[test]
fn tables_and_matrices_open_with_one_pyarrow_call() {
    let seed = common::fresh_seed();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let dir = Scratch::new("pyarrow");
    let (rows, cols) = (rng.random_range(5..40), rng.random_range(1..30));
    let data: Vec<f32> = (0..rows * cols).map(|_| rng.random_range(-1.0..1.0)).collect();
    voxflow::formats::npy::write_npy(&dir.join("m.npy"), &Matrix::from_vec(rows, cols, data.clone())).unwrap();
    let mut csv = String::from("story,onset,word\n");
    let onsets: Vec<f64> = (0..17).map(|i| i as f64 * 0.37 + rng.random_range(0.0..0.1)).collect();
    for onset in &onsets {
        csv.push_str(&format!("s1,{onset},w{}\n", (onset * 100.0) as i64));
    }
    dir.write("words.csv", &csv);
    let pipeline = dir.write(
        "p.yaml",
        "name: artifacts\nstages:\n  m:\n    kind: load.matrix\n    params: {path: m.npy}\n  words:\n    kind: load.table\n    params: {path: words.csv}\n",
    );
    let summary = voxflow_json(&["run", pipeline.to_str().unwrap(), "--format", "json"], 0);
    let key = |name: &str| common::stage(&summary, name)["key"].as_str().unwrap().to_string();
    let objects = dir.join(".voxflow/objects");
    let matrix_path = objects.join(key("m")).join("matrix.arrow");
    let table_path = objects.join(key("words")).join("table.parquet");
    let script = r#"
import sys, json
import numpy as np, pyarrow.feather as feather, pyarrow.parquet as pq
m = feather.read_table(sys.argv[1])
shape = json.loads(m.schema.metadata[b"voxflow.shape"])
values = np.stack(m.column("data").to_numpy(zero_copy_only=False)) if m.num_rows else np.zeros(shape)
t = pq.read_table(sys.argv[2])
print(json.dumps({"shape": shape, "values": values.astype(float).ravel().tolist(), "onsets": t.column("onset").to_pylist(), "words": t.column("word").to_pylist()}))
"#;
    let out = run_python(script, &[matrix_path.to_str().unwrap(), table_path.to_str().unwrap()]);
    let read: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(read["shape"], serde_json::json!([rows, cols]));
    let values: Vec<f64> = read["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(values.len(), data.len());
    for (a, b) in values.iter().zip(&data) {
        assert_eq!(*a as f32, *b);
    }
    let read_onsets: Vec<f64> = read["onsets"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for (a, b) in read_onsets.iter().zip(&onsets) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    assert_eq!(read["words"][0], format!("w{}", (onsets[0] * 100.0) as i64));
}

/// `.npy` files as NumPy writes them — float32/float64/int32/int64, little-
/// and big-endian, C and Fortran order, 1-D and 2-D, format versions 1.0 and
/// 2.0 — read back as NumPy's own float32 conversion of the same array; a
/// truncated file is an error naming the file.
#[test]
fn npy_files_of_every_supported_layout_read_as_numpy_converts_them() {
    let seed = common::fresh_seed();
    let dir = Scratch::new("npy-layouts");
    let listing = run_python(
        r#"
import sys, numpy as np
d, seed = sys.argv[1], int(sys.argv[2]) % 2**32
rng = np.random.default_rng(seed)
rows, cols = int(rng.integers(2, 40)), int(rng.integers(2, 30))
base = rng.standard_normal((rows, cols)) * 100
n = 0
for dtype in ["<f4", ">f4", "<f8", ">f8", "<i4", ">i4", "<i8", ">i8"]:
    for order in ["C", "F"]:
        for shape in ["2d", "1d"]:
            for version in [(1, 0), (2, 0)]:
                a = base if shape == "2d" else base[:, 0]
                a = np.array(a.astype(dtype), order=order)
                name = f"{d}/a{n}.npy"
                with open(name, "wb") as f:
                    np.lib.format.write_array(f, a, version=version)
                np.ascontiguousarray(a.astype("<f4")).tofile(f"{d}/a{n}.expected")
                print(name, dtype, order, shape, version[0], a.shape[0], a.shape[1] if a.ndim == 2 else 1)
                n += 1
raw = open(f"{d}/a0.npy", "rb").read()
open(f"{d}/truncated.npy", "wb").write(raw[: len(raw) - 5])
"#,
        &[dir.join("").to_str().unwrap(), &seed.to_string()],
    );
    let mut checked = 0;
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let path = std::path::Path::new(fields[0]);
        let got = voxflow::formats::npy::read_npy(path).unwrap_or_else(|e| panic!("{line}: {e}"));
        // NumPy's float32 conversion, raw little-endian bytes in C order.
        let raw = std::fs::read(path.with_extension("expected")).unwrap();
        let expected: Vec<f32> = raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let shape: (usize, usize) = (fields[5].parse().unwrap(), fields[6].parse().unwrap());
        assert_eq!((got.rows, got.cols), shape, "{line}");
        assert_eq!(got.data, expected, "{line}");
        checked += 1;
    }
    assert_eq!(checked, 64);
    let truncated = dir.join("truncated.npy");
    let error = voxflow::formats::npy::read_npy(&truncated).expect_err("a truncated file must fail").to_string();
    assert!(error.contains("truncated.npy") && error.contains("truncated"), "{error}");
}

/// Every output of every stage of the demo pipeline (the generated dataset,
/// words, TR grids, features, lagged matrices, prep, ridge weights and
/// predictions, scores and summaries) and the comparison table open with one
/// pyarrow call each, with the shape the manifest records.
#[test]
fn every_artifact_of_the_demo_opens_with_one_pyarrow_call() {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/demo.yaml");
    let demo = demo.to_str().unwrap();
    let dir = Scratch::new("pyarrow-demo");
    let store = dir.join("store");
    let store = store.to_str().unwrap();
    let run = voxflow_json(&["run", demo, "--format", "json", "--store", store], 0);
    let stages = run["stages"].as_array().unwrap().len();
    let out = dir.join("compare");
    let compare =
        voxflow_json(&["compare", demo, "--format", "json", "--store", store, "--out", out.to_str().unwrap()], 0);
    let script = r#"
import sys, json, pathlib
import pyarrow.feather as feather, pyarrow.parquet as pq
store, compare = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
counts = {"matrix": 0, "table": 0, "objects": 0}
for manifest_path in sorted((store / "objects").glob("*/manifest.json")):
    manifest = json.loads(manifest_path.read_text())
    counts["objects"] += 1
    for name, entry in manifest["outputs"].items():
        path = manifest_path.parent / entry["file"]
        where = f'{manifest["stage"]}.{name} ({path})'
        if entry["format"] == "matrix":
            t = feather.read_table(path)
            shape = json.loads(t.schema.metadata[b"voxflow.shape"])
            assert shape == entry["shape"], (where, shape, entry["shape"])
            assert t.num_rows == shape[0], (where, t.num_rows)
            if t.num_rows:
                assert len(t.column("data")[0]) == shape[1], where
        elif entry["format"] == "table":
            t = pq.read_table(path)
            assert [t.num_rows, t.num_columns] == entry["shape"], (where, t.shape, entry["shape"])
        else:
            raise AssertionError(f"{where}: unknown format {entry['format']}")
        counts[entry["format"]] += 1
c = pq.read_table(compare / "compare.parquet")
counts["compare_rows"] = c.num_rows
counts["compare_n_voxels"] = str(c.schema.field("n_voxels").type)
print(json.dumps(counts))
"#;
    let printed = run_python(script, &[store, out.to_str().unwrap()]);
    let counts: serde_json::Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(counts["objects"].as_u64().unwrap() as usize, stages, "{counts}");
    assert!(counts["matrix"].as_u64().unwrap() >= 20 && counts["table"].as_u64().unwrap() >= 10, "{counts}");
    assert_eq!(counts["compare_rows"].as_u64().unwrap() as usize, compare["rows"].as_array().unwrap().len());
    assert_eq!(counts["compare_rows"], 3, "{counts}");
    assert_eq!(counts["compare_n_voxels"], "int64", "{counts}");
    // Written under temporary names and renamed: nothing else is left behind.
    let mut files: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(files, ["compare.csv", "compare.parquet", "compare.svg"]);
}

/// load.matrix reads a table of numeric columns as pyarrow (or pandas'
/// `to_parquet`) writes it: each numeric column becomes a float32 matrix
/// column in file order, `story` gives the segments, pandas' stored index is
/// skipped; Arrow files may be LZ4- or zstd-compressed (pandas' and
/// pyarrow's `to_feather` compress by default). Text columns, missing values
/// and a story whose rows are split are errors that name the column, row or
/// story.
#[test]
fn load_matrix_reads_tables_of_numeric_columns() {
    let seed = common::fresh_seed();
    let dir = Scratch::new("wide-table");
    run_python(
        r#"
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq, pyarrow.feather as feather
d, seed = sys.argv[1], int(sys.argv[2]) % 2**32
rng = np.random.default_rng(seed)
n1, n2 = int(rng.integers(2, 9)), int(rng.integers(2, 9))
n = n1 + n2
a = rng.standard_normal(n) * 1e3
b = rng.integers(-1000, 1000, n).astype(np.int32)
c = rng.standard_normal(n).astype(np.float32)
story = ["s1"] * n1 + ["s2"] * n2
t = pa.table({"__index_level_0__": np.arange(n) * 7, "a": a, "story": story, "b": b, "c": c})
pq.write_table(t, f"{d}/t.parquet")
feather.write_feather(t, f"{d}/t.arrow")  # LZ4-compressed, pyarrow's default
feather.write_feather(t, f"{d}/t-zstd.arrow", compression="zstd")
np.save(f"{d}/expected.npy", np.stack([a.astype(np.float32), b.astype(np.float32), c], axis=1))
open(f"{d}/n1", "w").write(str(n1))
pq.write_table(pa.table({"a": a, "flag": a > 0}), f"{d}/text.parquet")
pq.write_table(pa.table({"a": pa.array([1.0, None, 3.0, None])}), f"{d}/nulls.parquet")
pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "story": ["x", "y", "x"]}), f"{d}/split.parquet")
"#,
        &[dir.join("").to_str().unwrap(), &seed.to_string()],
    );
    let expected = voxflow::formats::npy::read_npy(&dir.join("expected.npy")).unwrap();
    let n1: usize = std::fs::read_to_string(dir.join("n1")).unwrap().parse().unwrap();
    let load = |file: &str, code: i32| {
        let pipeline = dir
            .write("load.yaml", &format!("name: l\nstages:\n  m: {{kind: load.matrix, params: {{path: {file}}}}}\n"));
        let run = voxflow_json(&["run", pipeline.to_str().unwrap(), "--format", "json"], code);
        run["stages"][0].clone()
    };
    for file in ["t.parquet", "t.arrow", "t-zstd.arrow"] {
        let stage = load(file, 0);
        let object = dir.join(".voxflow/objects").join(stage["key"].as_str().unwrap()).join("matrix.arrow");
        let matrix = voxflow::artifact::read_matrix(&object).unwrap();
        assert_eq!((matrix.matrix.rows, matrix.matrix.cols), (expected.rows, 3), "{file}");
        assert_eq!(matrix.matrix.data, expected.data, "{file}: values in column order, as float32");
        let segments: Vec<(String, usize)> = matrix.segments.iter().map(|s| (s.name.clone(), s.rows)).collect();
        assert_eq!(segments, [("s1".to_string(), n1), ("s2".to_string(), expected.rows - n1)], "{file}");
    }
    let error = |file: &str| {
        let stage = load(file, 1);
        format!("{} / {}", stage["error"].as_str().unwrap(), stage["hint"].as_str().unwrap_or(""))
    };
    let text = error("text.parquet");
    assert!(text.contains("text.parquet") && text.contains("column `flag` is Boolean"), "{text}");
    let nulls = error("nulls.parquet");
    assert!(nulls.contains("column `a` has 2 missing values (first at row 1)"), "{nulls}");
    let split = error("split.parquet");
    assert!(split.contains("story `x` appears again at row 2") && split.contains("sort the table"), "{split}");
    // load.table takes the compressed Arrow file as it is.
    let pipeline = dir.write("table.yaml", "name: t\nstages:\n  t: {kind: load.table, params: {path: t.arrow}}\n");
    let run = voxflow_json(&["run", pipeline.to_str().unwrap(), "--format", "json"], 0);
    let object = dir.join(".voxflow/objects").join(run["stages"][0]["key"].as_str().unwrap()).join("table.parquet");
    let table = voxflow::artifact::read_batch(&object).unwrap();
    assert_eq!(table.num_rows(), expected.rows);
    let names: Vec<String> = table.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["__index_level_0__", "a", "story", "b", "c"]);
}

/// features.from_table on tables as polars and pandas write them (story as
/// large_string, pandas' stored index): word-level vectors line up with the
/// words, each numeric column in order, the index skipped; a row count that
/// disagrees with the words and a story split in two are errors naming the
/// story.
#[test]
fn features_from_table_take_word_vectors_as_python_writes_them() {
    let seed = common::fresh_seed();
    let dir = Scratch::new("from-table");
    run_python(
        r#"
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq
d, seed = sys.argv[1], int(sys.argv[2]) % 2**32
rng = np.random.default_rng(seed)
counts = {"alpha": int(rng.integers(3, 12)), "beta": int(rng.integers(3, 12))}
story = [s for s, n in counts.items() for _ in range(n)]
n = len(story)
onset = np.concatenate([np.sort(rng.uniform(0, 30, c)) for c in counts.values()])
words = pa.table({"story": pa.array(story, pa.large_string()), "word": pa.array([f"w{i}" for i in range(n)], pa.large_string()),
                  "onset": onset, "offset": onset + 0.2})
pq.write_table(words, f"{d}/words.parquet")
f = rng.standard_normal((n, 3))
feats = pa.table({"__index_level_0__": np.arange(n) + 100, "story": pa.array(story, pa.large_string()),
                  "f0": f[:, 0], "f1": f[:, 1].astype(np.float32), "f2": (f[:, 2] * 100).astype(np.int64)})
pq.write_table(feats, f"{d}/feats.parquet")
np.save(f"{d}/expected.npy", np.stack([f[:, 0], f[:, 1].astype(np.float32), (f[:, 2] * 100).astype(np.int64)], 1).astype(np.float32))
pq.write_table(feats.slice(0, n - 1), f"{d}/short.parquet")
order = list(range(1, n)) + [0]
pq.write_table(feats.take(order), f"{d}/split.parquet")
open(f"{d}/counts", "w").write(f"{counts['alpha']} {counts['beta']}")
"#,
        &[dir.join("").to_str().unwrap(), &seed.to_string()],
    );
    let expected = voxflow::formats::npy::read_npy(&dir.join("expected.npy")).unwrap();
    let counts: Vec<usize> =
        std::fs::read_to_string(dir.join("counts")).unwrap().split(' ').map(|c| c.parse().unwrap()).collect();
    let run = |table: &str, code: i32| {
        let yaml = format!(
            "name: f\nstages:\n  words: {{kind: load.table, params: {{path: words.parquet}}}}\n  feats: {{kind: load.table, params: {{path: {table}}}}}\n  x:\n    kind: features.from_table\n    inputs: {{table: feats, words: words}}\n"
        );
        let pipeline = dir.write("f.yaml", &yaml);
        let run = voxflow_json(&["run", pipeline.to_str().unwrap(), "--format", "json"], code);
        common::stage(&run, "x").clone()
    };
    let stage = run("feats.parquet", 0);
    let object = dir.join(".voxflow/objects").join(stage["key"].as_str().unwrap()).join("features.arrow");
    let features = voxflow::artifact::read_matrix(&object).unwrap();
    assert_eq!((features.matrix.rows, features.matrix.cols), (expected.rows, 3));
    assert_eq!(features.matrix.data, expected.data, "the three numeric columns in order, the index skipped");
    let segments: Vec<(String, usize)> = features.segments.iter().map(|s| (s.name.clone(), s.rows)).collect();
    assert_eq!(segments, [("alpha".to_string(), counts[0]), ("beta".to_string(), counts[1])]);
    let short = run("short.parquet", 1);
    let error = short["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "story `beta`: the feature table has {} rows but there are {} words",
            counts[1] - 1,
            counts[1]
        )),
        "{short}"
    );
    let split = run("split.parquet", 1);
    let error = split["error"].as_str().unwrap();
    assert!(error.contains(&format!("story `alpha` appears again at row {}", expected.rows - 1)), "{split}");
}

/// Labels travel as columns, which polars and pandas keep: ridge's
/// `cv_scores` has its `alpha` column (and its score convention in the
/// metadata), `weight_columns` names each weight's band, feature and delay,
/// and a stage's Parquet tables carry its stage name, key and params.
#[test]
fn labels_and_provenance_survive_polars_and_pandas() {
    let dir = Scratch::new("labels");
    let pipeline = dir.write(
        "labels.yaml",
        r#"
name: labels
stages:
  synth:
    kind: synth.stories
    params: {stories: 3, words_per_story: 200, test_words: 200, voxels: 12, seed: 4}
  words: {kind: align.words, inputs: {words: synth.words}}
  trs: {kind: align.trs, inputs: {responses: synth.responses}}
  rate: {kind: features.word_rate, inputs: [words]}
  embedding: {kind: features.random_embedding, inputs: [words], params: {dim: 3, seed: 0}}
  rate_tr: {kind: downsample, inputs: {features: rate, words: words, trs: trs}}
  embedding_tr: {kind: downsample, inputs: {features: embedding, words: words, trs: trs}}
  rate_lagged: {kind: lag, inputs: {features: rate_tr}, params: {delays: [1, 2]}}
  embedding_lagged: {kind: lag, inputs: {features: embedding_tr}, params: {delays: [2, 4]}}
  prep:
    kind: prep
    inputs: {responses: synth.responses, repeats: synth.repeats, embedding: embedding_lagged, rate: rate_lagged}
    params: {trim: {start: 5, end: 5}}
  fit:
    kind: ridge
    inputs: {data: prep}
    params: {alphas: [3, 30, 300]}
"#,
    );
    let summary = voxflow_json(&["run", pipeline.to_str().unwrap(), "--format", "json"], 0);
    let fit = common::stage(&summary, "fit");
    let key = fit["key"].as_str().unwrap();
    let object = dir.join(".voxflow/objects").join(key);
    let script = r#"
import sys, json
import polars as pl, pandas as pd, pyarrow.feather as feather
d = sys.argv[1]
cv = pl.read_ipc(d + "/cv_scores.arrow")
cv_pd = pd.read_feather(d + "/cv_scores.arrow")
meta = feather.read_table(d + "/cv_scores.arrow").schema.metadata
columns = pl.read_parquet(d + "/weight_columns.parquet")
columns_pd = pd.read_parquet(d + "/weight_columns.parquet")
alphas_meta = pl.read_parquet_metadata(d + "/alphas.parquet")
print(json.dumps({
    "polars_alpha": cv["alpha"].to_list(),
    "pandas_alpha": cv_pd["alpha"].tolist(),
    "pandas_voxels": len(cv_pd["data"][0]),
    "convention": meta[b"voxflow.score_convention"].decode(),
    "features": columns["feature"].to_list(),
    "delays": columns["delay"].to_list(),
    "bands_pd": columns_pd["band"].tolist(),
    "stage": alphas_meta.get("voxflow.stage"),
    "key": alphas_meta.get("voxflow.key"),
    "params": json.loads(alphas_meta.get("voxflow.params", "null")),
}))
"#;
    let out = run_python(script, &[object.to_str().unwrap()]);
    let read: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(read["polars_alpha"], serde_json::json!([3.0, 30.0, 300.0]));
    assert_eq!(read["pandas_alpha"], read["polars_alpha"]);
    assert_eq!(read["pandas_voxels"], 12);
    assert!(read["convention"].as_str().unwrap().starts_with("l2: minus the mean squared error"), "{read}");
    // prep puts the bands in input-role order: embedding (3 features x
    // delays 2, 4, delay-major), then rate (1 feature x delays 1, 2).
    let features: Vec<&str> = read["features"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert_eq!(
        features,
        [
            "embedding[0]",
            "embedding[1]",
            "embedding[2]",
            "embedding[0]",
            "embedding[1]",
            "embedding[2]",
            "word_rate",
            "word_rate"
        ]
    );
    assert_eq!(read["delays"], serde_json::json!([2, 2, 2, 4, 4, 4, 1, 2]));
    assert_eq!(read["bands_pd"][7], "rate");
    assert_eq!(read["stage"], "fit");
    assert!(read["key"].is_null(), "the key is not stamped (early cut-off): {}", read["key"]);
    assert_eq!(read["params"]["alphas"], serde_json::json!([3, 30, 300]));
    assert!(read["params"].get("device").is_none(), "device is not keyed, so not in the provenance");
}
