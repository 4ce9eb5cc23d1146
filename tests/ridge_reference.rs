//! voxflow's ridge against the libraries researchers use today: scikit-learn's
//! `RidgeCV` and himalaya's `RidgeCV` and `solve_group_ridge_random_search`
//! (numpy backend, float64), plus an exact float64 score table computed in
//! numpy, all on the same random data and the same folds.
//!
//! Tolerances. voxflow solves in f64 (in f32 where `factorises_in_f32`
//! allows: well-conditioned alphas on designs without a dominant direction,
//! such as these random ones) and multiplies by Y in f32, so its validation
//! scores carry an error of about 1e-6 relative to `max(|score|, 0.1)`
//! (asserted below `SCORE_TOLERANCE`, 3e-6). A choice can then differ
//! from the exact one only where two candidates (alphas, or band weightings
//! and alphas) score within `2 * SCORE_TOLERANCE` of each other; candidates
//! within `TIE_MARGIN` (1e-5) are a near tie, where voxflow's choice must
//! score within that margin of the best. Every other target must get exactly
//! the reference choice, and its held-out prediction r must agree within 1e-4.
//! Flat score curves (Pearson r barely moves between small alphas) make near
//! ties common, so at least half of the targets must be clear.
//!
//! Python is `common::python()`: `$VOXFLOW_PYTHON`, else the environment
//! `scripts/setup-python.sh` makes; the test fails when neither exists.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use voxflow::formats::npy::{read_npy, write_npy};
use voxflow::numeric::ridge::{
    banded_ridge_cv, folds_chunked, predict, ridge_cv, BandedConfig, CvScore, Fold, RidgeConfig,
};
use voxflow::numeric::Matrix;

const SCORE_TOLERANCE: f64 = 3e-6;
const TIE_MARGIN: f64 = 1e-5;
const R_TOLERANCE: f64 = 1e-4;

const REFERENCE_SCRIPT: &str = r#"
import json, sys, warnings
import numpy as np

warnings.filterwarnings("ignore")
d = sys.argv[1]
cfg = json.load(open(f"{d}/config.json"))
alphas = np.array(cfg["alphas"], dtype=np.float64)
n_train = cfg["n_train"]
Y = np.load(f"{d}/y.npy").astype(np.float64)
bands = [np.load(f"{d}/x{b}.npy").astype(np.float64) for b in range(cfg["n_bands"])]
X = np.hstack(bands)
fold_id = np.load(f"{d}/fold_id.npy").ravel().astype(np.int64)
folds = [(np.flatnonzero(fold_id != k), np.flatnonzero(fold_id == k))
         for k in range(fold_id.max() + 1)]
Xtr, Xte, Ytr = X[:n_train], X[n_train:], Y[:n_train]


def save(name, a):
    a = np.asarray(a, dtype=np.float64)
    np.save(f"{d}/{name}.npy", a[:, None] if a.ndim == 1 else a)


def zscore(a):
    a = a - a.mean(0)
    s = a.std(0)
    return a / np.where(s > 0, s, 1)


def exact_scores(penalty_shape):
    """(n_alphas, n_targets): fold means of -MSE and of Pearson r, float64 solves."""
    l2 = np.zeros((len(alphas), Y.shape[1]))
    r = np.zeros_like(l2)
    for train, val in folds:
        gram, rhs = Xtr[train].T @ Xtr[train], Xtr[train].T @ Ytr[train]
        for i, alpha in enumerate(alphas):
            P = Xtr[val] @ np.linalg.solve(gram + np.diag(alpha * penalty_shape), rhs)
            l2[i] -= ((Ytr[val] - P) ** 2).mean(0) / len(folds)
            r[i] += (zscore(Ytr[val]) * zscore(P)).mean(0) / len(folds)
    return l2, r


from himalaya.backend import set_backend
set_backend("numpy", on_error="raise")

if cfg["mode"] == "ridge":
    from sklearn.linear_model import RidgeCV as SklearnRidgeCV
    from himalaya.ridge import RidgeCV
    from himalaya.scoring import correlation_score

    l2, r = exact_scores(np.ones(X.shape[1]))
    save("exact_l2", l2)
    save("exact_pearson", r)
    # scikit-learn has no per-target alpha with explicit folds: one fit per target.
    sk_alpha, sk_pred = [], []
    for t in range(Y.shape[1]):
        model = SklearnRidgeCV(alphas=alphas, cv=folds, fit_intercept=False,
                               scoring="neg_mean_squared_error").fit(Xtr, Ytr[:, t])
        sk_alpha.append(model.alpha_)
        sk_pred.append(model.predict(Xte))
    save("sklearn_alpha", sk_alpha)
    save("sklearn_pred", np.array(sk_pred).T)
    model = RidgeCV(alphas=alphas, cv=folds, fit_intercept=False,
                    solver_params=dict(warn=False)).fit(Xtr, Ytr)
    save("himalaya_alpha", model.best_alphas_)
    save("himalaya_coef", model.coef_)
    save("himalaya_pred", model.predict(Xte))
    model = RidgeCV(alphas=alphas, cv=folds, fit_intercept=False,
                    solver_params=dict(warn=False, score_func=correlation_score)).fit(Xtr, Ytr)
    save("himalaya_pearson_alpha", model.best_alphas_)
else:
    from himalaya.ridge import solve_group_ridge_random_search

    gammas = np.load(f"{d}/samples.npy").astype(np.float64)
    widths = [b.shape[1] for b in bands]
    table = [exact_scores(np.concatenate([np.full(w, 1 / g) for w, g in zip(widths, gamma)]))[0]
             for gamma in gammas]
    save("exact_banded", np.concatenate(table, 0))
    deltas, weights, cv_scores = solve_group_ridge_random_search(
        [b[:n_train] for b in bands], Ytr, n_iter=gammas, alphas=alphas, cv=folds,
        fit_intercept=False, return_weights=True, local_alpha=True, progress_bar=False,
        warn=False)
    save("himalaya_deltas", deltas)
    save("himalaya_weights", weights)
    save("himalaya_cv", cv_scores)
    save("himalaya_pred", Xte @ weights)
"#;

/// A scratch directory, removed when the test passes.
struct Workdir(PathBuf);

impl Workdir {
    fn new(test: &str) -> Workdir {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("voxflow-{test}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Workdir(dir)
    }

    fn write(&self, name: &str, matrix: &Matrix) {
        write_npy(&self.0.join(format!("{name}.npy")), matrix).unwrap();
    }

    fn read(&self, name: &str) -> Matrix {
        read_npy(&self.0.join(format!("{name}.npy"))).unwrap()
    }

    fn run_reference(&self, config: &str) {
        std::fs::write(self.0.join("config.json"), config).unwrap();
        let script = self.0.join("reference.py");
        std::fs::write(&script, REFERENCE_SCRIPT).unwrap();
        let python = common::python();
        // Small problems: BLAS threads only contend with the test's own threads.
        let output = Command::new(&python)
            .env("OPENBLAS_NUM_THREADS", "1")
            .env("OMP_NUM_THREADS", "1")
            .arg(&script)
            .arg(&self.0)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        assert!(output.status.success(), "the reference script failed:\n{}", String::from_utf8_lossy(&output.stderr));
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn fresh_rng(test: &str) -> ChaCha8Rng {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    println!("{test}: seed {seed}");
    ChaCha8Rng::seed_from_u64(seed)
}

fn random_matrix(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Matrix {
    let data = (0..rows * cols).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
    Matrix::from_vec(rows, cols, data)
}

/// `sum_b X_b W_b` with random weights, plus noise whose level differs per
/// target (so the chosen alphas spread), and a random share of each band.
fn responses(rng: &mut ChaCha8Rng, bands: &[&Matrix], n_targets: usize) -> Matrix {
    let rows = bands[0].rows;
    let mut y = Matrix::zeros(rows, n_targets);
    for band in bands {
        let mut weights = random_matrix(rng, band.cols, n_targets);
        for t in 0..n_targets {
            let share = rng.random::<f32>() / (band.cols as f32).sqrt();
            (0..band.cols).for_each(|f| weights.set(f, t, weights.get(f, t) * share));
        }
        let part = predict(band, &weights);
        y.data.iter_mut().zip(&part.data).for_each(|(v, p)| *v += p);
    }
    for t in 0..n_targets {
        let noise = 0.2 + 2.0 * rng.random::<f32>();
        for i in 0..rows {
            let value = y.get(i, t) + noise * rng.sample::<f32, _>(StandardNormal);
            y.set(i, t, value);
        }
    }
    y
}

fn rows(m: &Matrix, range: std::ops::Range<usize>) -> Matrix {
    m.select_rows(&range.collect::<Vec<_>>())
}

fn fold_ids(folds: &[Fold], n: usize) -> Matrix {
    let mut ids = Matrix::zeros(n, 1);
    for (k, fold) in folds.iter().enumerate() {
        fold.validation.iter().for_each(|&i| ids.set(i, 0, k as f32));
    }
    ids
}

fn alphas_json(alphas: &[f64]) -> String {
    let items: Vec<String> = alphas.iter().map(|a| format!("{a:?}")).collect();
    format!("[{}]", items.join(", "))
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn column(m: &Matrix, j: usize) -> Vec<f64> {
    (0..m.rows).map(|i| m.get(i, j) as f64).collect()
}

/// The reference choice among candidates (entries of one column of an exact
/// score table, in himalaya's order of preference: larger alpha wins ties)
/// and whether the runner-up is farther than `TIE_MARGIN`.
struct Choice {
    best: usize,
    best_score: f64,
    clear: bool,
}

fn reference_choice(scores: &[f64], tilt: impl Fn(usize) -> f64) -> Choice {
    let tilted: Vec<f64> = scores.iter().enumerate().map(|(i, s)| s + tilt(i)).collect();
    let mut best = 0;
    for (i, &s) in tilted.iter().enumerate() {
        if s > tilted[best] {
            best = i;
        }
    }
    let best_score = scores[best];
    let runner_up =
        tilted.iter().enumerate().filter(|&(i, _)| i != best).map(|(_, &s)| s).fold(f64::NEG_INFINITY, f64::max);
    let clear = tilted[best] - runner_up > TIE_MARGIN * best_score.abs().max(0.1);
    Choice { best, best_score, clear }
}

fn assert_scores_close(label: &str, actual: &Matrix, exact: &Matrix) {
    assert_eq!((actual.rows, actual.cols), (exact.rows, exact.cols), "{label}: shape");
    let worst = actual
        .data
        .iter()
        .zip(&exact.data)
        .map(|(&a, &e)| (a as f64 - e as f64).abs() / (e as f64).abs().max(0.1))
        .fold(0.0, f64::max);
    println!("{label}: worst relative score error {worst:.2e}");
    assert!(worst < SCORE_TOLERANCE, "{label}: relative score error {worst:.2e} > {SCORE_TOLERANCE:e}");
}

fn index_of(alphas: &[f64], alpha: f64) -> usize {
    alphas
        .iter()
        .position(|&a| (a - alpha).abs() <= 1e-6 * a)
        .unwrap_or_else(|| panic!("alpha {alpha} is not a candidate"))
}

/// Checks one ridge scenario (shape `n_train x p`) against all references.
fn check_ridge_scenario(rng: &mut ChaCha8Rng, n_train: usize, n_test: usize, p: usize) {
    let n_targets = 40;
    let x = random_matrix(rng, n_train + n_test, p);
    let y = responses(rng, &[&x], n_targets);
    let folds = folds_chunked(n_train, 5, 12, rng.random());
    let alphas: Vec<f64> = (0..12).map(|i| 10f64.powf(-1.0 + 0.5 * i as f64)).collect();
    let dir = Workdir::new("ridge-reference");
    dir.write("x0", &x);
    dir.write("y", &y);
    dir.write("fold_id", &fold_ids(&folds, n_train));
    dir.run_reference(&format!(
        r#"{{"mode": "ridge", "n_train": {n_train}, "n_bands": 1, "alphas": {}}}"#,
        alphas_json(&alphas)
    ));

    let (x_train, y_train) = (rows(&x, 0..n_train), rows(&y, 0..n_train));
    let x_test = rows(&x, n_train..n_train + n_test);
    let y_test = rows(&y, n_train..n_train + n_test);
    let label = format!("n_train={n_train} p={p}");
    for score in [CvScore::L2, CvScore::Pearson] {
        let config = RidgeConfig { alphas: alphas.clone(), per_target_alpha: true, score, target_batch: 16 };
        let result = ridge_cv(&x_train, &y_train, &folds, &config).unwrap();
        let exact = dir.read(if score == CvScore::L2 { "exact_l2" } else { "exact_pearson" });
        assert_scores_close(&format!("{label} {score:?}"), &result.cv_scores, &exact);
        let references: Vec<(&str, Matrix)> = match score {
            CvScore::L2 => vec![("scikit-learn", dir.read("sklearn_alpha")), ("himalaya", dir.read("himalaya_alpha"))],
            CvScore::Pearson => vec![("himalaya", dir.read("himalaya_pearson_alpha"))],
        };
        let mut near_ties = 0;
        for t in 0..n_targets {
            let choice = reference_choice(&column(&exact, t), |a| 1e-10 * alphas[a].ln());
            let chosen = index_of(&alphas, result.best_alphas[t]);
            if choice.clear {
                assert_eq!(chosen, choice.best, "{label} {score:?} target {t}: voxflow's alpha");
                for (name, reference) in &references {
                    let theirs = index_of(&alphas, reference.get(t, 0) as f64);
                    assert_eq!(theirs, choice.best, "{label} {score:?} target {t}: {name}'s alpha");
                }
            } else {
                near_ties += 1;
                let gap = choice.best_score - exact.get(chosen, t) as f64;
                assert!(gap <= TIE_MARGIN * choice.best_score.abs().max(0.1), "target {t}: gap {gap}");
            }
        }
        println!("{label} {score:?}: {near_ties} near ties out of {n_targets} targets");
        assert!(near_ties <= n_targets / 2, "too many near ties ({near_ties}) for a meaningful test");

        if score == CvScore::L2 {
            let ours = predict(&x_test, &result.weights);
            let sklearn = dir.read("sklearn_pred");
            let himalaya = dir.read("himalaya_pred");
            let coef = dir.read("himalaya_coef");
            let mut worst_r = 0.0f64;
            let mut worst_weight = 0.0f64;
            for t in 0..n_targets {
                let choice = reference_choice(&column(&exact, t), |a| 1e-10 * alphas[a].ln());
                if !choice.clear {
                    continue;
                }
                let observed = column(&y_test, t);
                let r = pearson(&observed, &column(&ours, t));
                for reference in [&sklearn, &himalaya] {
                    worst_r = worst_r.max((r - pearson(&observed, &column(reference, t))).abs());
                }
                let (w, w_ref) = (column(&result.weights, t), column(&coef, t));
                let scale = w_ref.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let diff = w.iter().zip(&w_ref).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                worst_weight = worst_weight.max(diff / scale);
            }
            println!("{label}: worst held-out r difference {worst_r:.2e}, worst weight error {worst_weight:.2e}");
            assert!(worst_r < R_TOLERANCE, "held-out r differs by {worst_r:.2e}");
            assert!(worst_weight < 1e-4, "weights differ from himalaya's by {worst_weight:.2e} (relative)");
        }
    }
}

#[test]
fn ridge_cv_matches_scikit_learn_and_himalaya() {
    let mut rng = fresh_rng("ridge_cv_matches_scikit_learn_and_himalaya");
    // The SVD path (n >= p), then the kernel path (p > n) on folds and refit.
    check_ridge_scenario(&mut rng, 320, 80, 48);
    check_ridge_scenario(&mut rng, 200, 60, 300);
}

#[test]
fn banded_ridge_matches_himalaya_random_search() {
    let mut rng = fresh_rng("banded_ridge_matches_himalaya_random_search");
    for (n_train, widths) in [(300, [20, 36]), (160, [120, 90])] {
        let n_test = 60;
        let n_targets = 30;
        let bands: Vec<Matrix> = widths.iter().map(|&w| random_matrix(&mut rng, n_train + n_test, w)).collect();
        let band_refs: Vec<&Matrix> = bands.iter().collect();
        let y = responses(&mut rng, &band_refs, n_targets);
        let folds = folds_chunked(n_train, 4, 10, rng.random());
        let config = BandedConfig {
            n_iter: 12,
            alphas: (0..9).map(|i| 10f64.powf(-1.0 + 0.5 * i as f64)).collect(),
            concentration: 0.7,
            seed: rng.random(),
            score: CvScore::L2,
            target_batch: 8,
        };
        let train_bands: Vec<Matrix> = bands.iter().map(|b| rows(b, 0..n_train)).collect();
        let train_refs: Vec<&Matrix> = train_bands.iter().collect();
        let result = banded_ridge_cv(&train_refs, &rows(&y, 0..n_train), &folds, &config).unwrap();

        let dir = Workdir::new("banded-reference");
        for (b, band) in bands.iter().enumerate() {
            dir.write(&format!("x{b}"), band);
        }
        dir.write("y", &y);
        dir.write("fold_id", &fold_ids(&folds, n_train));
        dir.write("samples", &result.samples);
        dir.run_reference(&format!(
            r#"{{"mode": "banded", "n_train": {n_train}, "n_bands": 2, "alphas": {}}}"#,
            alphas_json(&config.alphas)
        ));
        let label = format!("banded n_train={n_train} widths={widths:?}");
        assert_scores_close(&label, &result.cv_scores, &dir.read("himalaya_cv"));

        // Candidates are (sample, alpha) pairs; himalaya keeps the first
        // sample that improves, and within a sample prefers larger alphas.
        let exact = dir.read("exact_banded");
        let deltas = dir.read("himalaya_deltas");
        let himalaya_pred = dir.read("himalaya_pred");
        let ours = predict(
            &Matrix::hstack(&[
                &rows(&bands[0], n_train..n_train + n_test),
                &rows(&bands[1], n_train..n_train + n_test),
            ]),
            &result.weights,
        );
        let y_test = rows(&y, n_train..n_train + n_test);
        let n_alphas = config.alphas.len();
        let (mut near_ties, mut worst_r, mut worst_delta) = (0, 0.0f64, 0.0f64);
        for t in 0..n_targets {
            let choice = reference_choice(&column(&exact, t), |k| {
                1e-10 * config.alphas[k % n_alphas].ln() - 1e-12 * (k / n_alphas) as f64
            });
            let ours_k = result.best_sample[t] * n_alphas + index_of(&config.alphas, result.best_alphas[t]);
            if !choice.clear {
                near_ties += 1;
                let gap = choice.best_score - exact.get(ours_k, t) as f64;
                assert!(gap <= TIE_MARGIN * choice.best_score.abs().max(0.1), "target {t}: gap {gap}");
                continue;
            }
            assert_eq!(
                (result.best_sample[t], result.best_alphas[t]),
                (choice.best / n_alphas, config.alphas[choice.best % n_alphas]),
                "{label} target {t}: chosen (sample, alpha)"
            );
            for b in 0..2 {
                worst_delta = worst_delta.max((result.deltas.get(b, t) - deltas.get(b, t)).abs() as f64);
            }
            let observed = column(&y_test, t);
            let r = pearson(&observed, &column(&ours, t));
            worst_r = worst_r.max((r - pearson(&observed, &column(&himalaya_pred, t))).abs());
        }
        println!(
            "{label}: {near_ties} near ties of {n_targets}; worst delta difference {worst_delta:.2e}, \
             worst held-out r difference {worst_r:.2e}"
        );
        assert!(near_ties <= n_targets / 2, "too many near ties ({near_ties}) for a meaningful test");
        assert!(worst_delta < 1e-4, "deltas differ from himalaya's by {worst_delta:.2e}");
        assert!(worst_r < R_TOLERANCE, "held-out r differs from himalaya's by {worst_r:.2e}");
    }
}
