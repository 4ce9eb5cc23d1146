//! The `ridge` stage on plain matrices: its weights (one row per voxel,
//! written block by block) and test predictions against scikit-learn's
//! `Ridge(fit_intercept=False)` refit at the alpha the stage chose per voxel.

mod common;

use common::{fresh_seed, run_python, voxflow_json, Scratch};

#[test]
fn streamed_weights_and_predictions_match_scikit_learn_at_the_chosen_alphas() {
    let seed = fresh_seed();
    let dir = Scratch::new("ridge-stage");
    // 37 voxels in batches of 8: five blocks, the last one short.
    run_python(
        r#"
import sys, numpy as np
d, seed = sys.argv[1], int(sys.argv[2]) % 2**32
rng = np.random.default_rng(seed)
x = rng.standard_normal((260, 24)).astype(np.float32)
w = rng.standard_normal((24, 37))
noise = rng.uniform(0.3, 4.0, 37)
y = (x @ w / 5 + noise * rng.standard_normal((260, 37))).astype(np.float32)
np.save(f"{d}/x_train.npy", x[:200]); np.save(f"{d}/y_train.npy", y[:200]); np.save(f"{d}/x_test.npy", x[200:])
"#,
        &[dir.join("").to_str().unwrap(), &seed.to_string()],
    );
    let pipeline = dir.write(
        "ridge.yaml",
        "name: r\nstages:\n  x_train: {kind: load.matrix, params: {path: x_train.npy}}\n  y_train: {kind: load.matrix, params: {path: y_train.npy}}\n  x_test: {kind: load.matrix, params: {path: x_test.npy}}\n  fit:\n    kind: ridge\n    inputs: {x_train: x_train, y_train: y_train, x_test: x_test}\n    params: {alphas: [0.1, 1, 10, 100, 1000], folds: {by: contiguous, k: 4}, target_batch: 8}\n",
    );
    let pipeline = pipeline.to_str().unwrap();
    voxflow_json(&["run", pipeline, "--format", "json"], 0);
    compare_with_scikit_learn(&dir, pipeline, "cpu");
    // 20 folds of 10 rows: the flop count takes the downdate route (one
    // eigendecomposition for every fold and alpha), whose decomposition the
    // streamed refit then reuses.
    let many_folds = std::fs::read_to_string(pipeline).unwrap().replace("k: 4}", "k: 20}");
    let many_folds = dir.write("ridge-20-folds.yaml", &many_folds);
    let many_folds = many_folds.to_str().unwrap();
    voxflow_json(&["run", many_folds, "--format", "json"], 0);
    compare_with_scikit_learn(&dir, many_folds, "cpu");
    if voxflow::device::gpu_count() > 0 {
        // The device is not part of the key: switching it finds the CPU result...
        let run = voxflow_json(&["run", pipeline, "--format", "json", "--set", "fit.device=cuda"], 0);
        assert_eq!(common::statuses(&run)["fit"], "cached", "{run}");
        // ...and a forced rerun on the GPU gives the same weights.
        voxflow_json(&["run", pipeline, "--format", "json", "--set", "fit.device=cuda", "--force=fit"], 0);
        compare_with_scikit_learn(&dir, pipeline, "cuda");
    }
}

fn compare_with_scikit_learn(dir: &Scratch, pipeline: &str, device: &str) {
    let shown = voxflow_json(&["show", pipeline, "fit", "--format", "json"], 0);
    let stage = &shown["stages"][0];
    assert!(stage["device"].as_str().unwrap().starts_with(device), "ran on {}", stage["device"]);
    let directory = std::env::current_dir().unwrap().join(stage["directory"].as_str().unwrap());
    assert_eq!(stage["outputs"]["weights"]["shape"], serde_json::json!([37, 24]));
    let printed = run_python(
        r#"
import sys, numpy as np, pyarrow.feather as feather, pyarrow.parquet as pq
from sklearn.linear_model import Ridge
d, o = sys.argv[1], sys.argv[2]
x, y, xt = (np.load(f"{d}/{n}.npy").astype(np.float64) for n in ("x_train", "y_train", "x_test"))
alphas = pq.read_table(f"{o}/alphas.parquet").column("alpha").to_numpy()
weights = np.array(feather.read_table(f"{o}/weights.arrow").column("data").to_pylist())
pred = np.array(feather.read_table(f"{o}/predictions.arrow").column("data").to_pylist())
ref = np.array([Ridge(alpha=a, fit_intercept=False).fit(x, y[:, t]).coef_ for t, a in enumerate(alphas)])
scale = np.abs(ref).max()
print(np.abs(weights - ref).max() / scale, np.abs(pred - xt @ ref.T).max() / np.abs(xt @ ref.T).max(), len(set(alphas)))
"#,
        &[dir.join("").to_str().unwrap(), directory.to_str().unwrap()],
    );
    let values: Vec<f64> = printed.split_whitespace().map(|v| v.parse().unwrap()).collect();
    eprintln!(
        "{device}: relative max diff: weights {:.2e}, predictions {:.2e}; {} distinct alphas",
        values[0], values[1], values[2]
    );
    assert!(values[0] < 1e-4, "weights differ from scikit-learn: {}", values[0]);
    assert!(values[1] < 1e-4, "predictions differ from scikit-learn: {}", values[1]);
}

/// More folds than rows (contiguous) or chunks (chunked) fail at once with
/// the largest k that works; that k runs.
#[test]
fn too_many_folds_are_refused_with_the_largest_k_that_works() {
    let seed = fresh_seed();
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
    let dir = Scratch::new("ridge-folds");
    let mut matrix = |name: &str, rows: usize, cols: usize| {
        let data: Vec<f32> = (0..rows * cols).map(|_| rand::Rng::random_range(&mut rng, -1.0..1.0)).collect();
        voxflow::formats::npy::write_npy(&dir.join(name), &voxflow::numeric::Matrix::from_vec(rows, cols, data))
            .unwrap();
    };
    matrix("x_train.npy", 30, 3);
    matrix("y_train.npy", 30, 2);
    matrix("x_test.npy", 5, 3);
    let run = |folds: &str, code: i32| {
        let yaml = format!(
            "name: r\nstages:\n  x_train: {{kind: load.matrix, params: {{path: x_train.npy}}}}\n  y_train: {{kind: load.matrix, params: {{path: y_train.npy}}}}\n  x_test: {{kind: load.matrix, params: {{path: x_test.npy}}}}\n  fit:\n    kind: ridge\n    inputs: {{x_train: x_train, y_train: y_train, x_test: x_test}}\n    params: {{alphas: [1, 10], folds: {folds}}}\n"
        );
        let pipeline = dir.write("folds.yaml", &yaml);
        let summary = voxflow_json(&["run", pipeline.to_str().unwrap(), "--format", "json"], code);
        common::stage(&summary, "fit").clone()
    };
    let fit = run("{by: contiguous, k: 31}", 1);
    let (error, hint) = (fit["error"].as_str().unwrap(), fit["hint"].as_str().unwrap_or(""));
    assert!(error.contains("31 folds need at least 31 training rows") && error.contains("has 30"), "{fit}");
    assert!(hint.contains("k: 30"), "{fit}");
    let fit = run("{by: chunked, k: 4, chunk: 10}", 1);
    let (error, hint) = (fit["error"].as_str().unwrap(), fit["hint"].as_str().unwrap_or(""));
    assert!(error.contains("4 folds need at least 4 chunks") && error.contains("has 3"), "{fit}");
    assert!(hint.contains("k: 3"), "{fit}");
    assert_eq!(run("{by: contiguous, k: 30}", 0)["status"], "ran");
    assert_eq!(run("{by: chunked, k: 3, chunk: 10}", 0)["status"], "ran");
}
