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
    let key = |name: &str| {
        summary["stages"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()["key"]
            .as_str()
            .unwrap()
            .to_string()
    };
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
