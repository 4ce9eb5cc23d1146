//! Ridge regression for encoding models with many targets (voxels): a
//! cross-validated choice of the regularisation per target ([`ridge_cv`],
//! [`ridge_cv_streaming`]), a closed-form fit at given alphas
//! ([`fit_ridge`]), [`predict`], banded ridge by himalaya's random search
//! over band weights ([`banded_ridge_cv`]), and the fold helpers
//! ([`folds_by_group`], [`folds_contiguous`], [`folds_chunked`]).
//!
//! # Penalty convention
//! himalaya's (and scikit-learn's `Ridge(fit_intercept=False)`): for
//! `X = U S V^T` the weights at regularisation `alpha` are
//! `w = V diag(s / (s^2 + alpha)) U^T y`, the minimiser of
//! `||X w - y||^2 + alpha ||w||^2`. There is no intercept: X and Y are
//! z-scored upstream.
//!
//! # How a call runs
//! [`ridge_cv`] checks its inputs, chooses its routes from the problem's
//! shape and memory (plan.rs: a `RoutePlan`, logged at debug level), builds
//! the design's Gram matrices in f64 once (design.rs), scores every alpha on
//! every fold (scoring.rs, with the fold operators from the plan's route:
//! fold_cholesky.rs and fold_eigen.rs for folds prepared alone,
//! shared_inverse.rs, downdate.rs, shared_projection.rs), picks each
//! target's alpha and refits on all rows (refit.rs). precision.rs holds the
//! rule for f32 factorisations, linalg.rs the small dense helpers,
//! banded.rs the banded search, folds.rs the splits, and the libtorch twin for CUDA
//! is `voxflow_torch::ridge` (crates/voxflow-torch). `VOXFLOW_LOG=voxflow=debug` prints
//! the plan and each phase's time.

mod banded;
#[doc(hidden)]
pub mod bench_api;
mod design;
mod downdate;
mod fold_cholesky;
mod fold_eigen;
mod folds;
mod linalg;
mod plan;
mod precision;
mod refit;
#[cfg(test)]
mod routes_agree;
mod scoring;
mod shared_inverse;
mod shared_projection;
#[cfg(test)]
mod test_helpers;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

pub use banded::{banded_ridge_cv, dirichlet_samples, BandedConfig, BandedResult};
pub use folds::{folds_by_group, folds_chunked, folds_contiguous, Fold};
pub use precision::{factorises_in_f32, largest_eigenvalue_estimate, F32_CONDITION_LIMIT, F32_SPIKE_LIMIT};
pub use refit::inner_parallelism;
pub use scoring::best_alpha;

use crate::numeric::Matrix;
use design::Design;
use downdate::downdate_score_table;
use plan::{FoldRoute, PartialPlan, RoutePlan, RoutesTaken, Shape};
use refit::{refit, refit_each};
use scoring::cv_score_table;

/// Targets per batch when a caller has no reason to choose: large enough for
/// efficient products, small enough that per-thread buffers stay in the tens
/// of megabytes at n = 3000.
pub const DEFAULT_TARGET_BATCH: usize = 1024;

/// The per-target validation score that picks the alphas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CvScore {
    /// Minus the mean squared error per fold, averaged over folds (himalaya's
    /// and scikit-learn's default).
    L2,
    /// Pearson r per fold, averaged over folds.
    Pearson,
}

/// Settings of [`ridge_cv`].
#[derive(Clone, Debug, PartialEq)]
pub struct RidgeConfig {
    /// Candidate regularisations, each positive and finite.
    pub alphas: Vec<f64>,
    /// One alpha per target (true) or one alpha for all targets, the one with
    /// the best score averaged over targets (false).
    pub per_target_alpha: bool,
    pub score: CvScore,
    /// Targets processed together; bounds the extra memory.
    pub target_batch: usize,
}

/// What [`ridge_cv`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct RidgeCvResult {
    /// The chosen alpha of each target.
    pub best_alphas: Vec<f64>,
    /// n_alphas x n_targets: the score of each alpha, averaged over folds.
    pub cv_scores: Matrix,
    /// p x n_targets: refit on all rows with each target's alpha.
    pub weights: Matrix,
}

#[derive(Debug, thiserror::Error)]
pub enum RidgeError {
    #[error("shape mismatch: {0}")]
    Shape(String),
    #[error("no folds given")]
    NoFolds,
    #[error("fold {fold} has an empty {part} set")]
    EmptyFold { fold: usize, part: &'static str },
    #[error("fold {fold} refers to row {row}, but the data have {n_rows} rows")]
    FoldRowOutOfRange { fold: usize, row: usize, n_rows: usize },
    #[error("fold {fold} has row {row} in both its train and validation sets")]
    FoldOverlap { fold: usize, row: usize },
    #[error("{matrix} has a non-finite value ({value}) at row {row}, column {col}")]
    NonFinite { matrix: String, row: usize, col: usize, value: f32 },
    #[error("no alphas given")]
    NoAlphas,
    #[error("alpha {value} (position {index}) is not a positive finite number")]
    NonPositiveAlpha { index: usize, value: f64 },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("decomposition failed: {0}")]
    Decomposition(String),
}

/// Cross-validated ridge: scores every alpha on every fold, picks each
/// target's alpha (or one shared alpha), and refits on all rows.
pub fn ridge_cv(x: &Matrix, y: &Matrix, folds: &[Fold], config: &RidgeConfig) -> Result<RidgeCvResult, RidgeError> {
    ridge_cv_inner(x, y, folds, config, &PartialPlan::default(), None).map(|(result, _)| result)
}

/// Fits ridge on all rows: `alphas` holds one alpha per target, or one for
/// all. Returns the p x n_targets weights.
pub fn fit_ridge(x: &Matrix, y: &Matrix, alphas: &[f64]) -> Result<Matrix, RidgeError> {
    fit_ridge_with(x, y, alphas, &PartialPlan::default())
}

/// `x @ weights` (n x p times p x v), in f32 on rayon's pool.
///
/// Panics when `x.cols != weights.rows`.
pub fn predict(x: &Matrix, weights: &Matrix) -> Matrix {
    assert_eq!(x.cols, weights.rows, "predict: X has {} columns but weights have {} rows", x.cols, weights.rows);
    times(x, weights.as_faer())
}

/// `x @ weights^T` for voxel-major weights (`n_targets x p`, one row per
/// target, as [`ridge_cv_streaming`] hands them over and the `ridge` stage
/// writes them), in f32 on rayon's pool.
///
/// Panics when `x.cols != weights.cols`.
pub fn predict_voxel_major(x: &Matrix, weights: &Matrix) -> Matrix {
    assert_eq!(x.cols, weights.cols, "predict: X has {} columns but weights have {} features", x.cols, weights.cols);
    times(x, weights.as_faer().transpose())
}

/// `x @ rhs` into a new row-major matrix, on rayon's pool.
fn times(x: &Matrix, rhs: MatRef<'_, f32>) -> Matrix {
    let mut out = Matrix::zeros(x.rows, rhs.ncols());
    matmul(
        MatMut::from_row_major_slice_mut(&mut out.data, x.rows, rhs.ncols()),
        Accum::Replace,
        x.as_faer(),
        rhs,
        1.0,
        Par::rayon(0),
    );
    out
}

/// [`ridge_cv`] without holding the p x n_targets weights: each batch of
/// refit weights goes to `sink` as `(its targets, block)`, batches in order,
/// the block voxel-major (`batch.len() x p`: row `j` holds the weights of
/// target `batch[j]`, the layout the `ridge` stage writes), and the call returns the chosen alphas and the score table
/// (n_alphas x n_targets). Beyond X and Y, memory stays at the Gram
/// matrices, the refit's spectrum and one block per thread; the `ridge`
/// stage writes the blocks to disk as they come.
pub fn ridge_cv_streaming(
    x: &Matrix,
    y: &Matrix,
    folds: &[Fold],
    config: &RidgeConfig,
    sink: &mut dyn FnMut(&[usize], Matrix),
) -> Result<(Vec<f64>, Matrix), RidgeError> {
    ridge_cv_inner(x, y, folds, config, &PartialPlan::default(), Some(sink))
        .map(|(result, _)| (result.best_alphas, result.cv_scores))
}

/// Where [`ridge_cv_streaming`] hands the refit weights, block by block
/// (the block's targets, their weights voxel-major).
pub(super) type BlockSink<'a> = &'a mut dyn FnMut(&[usize], Matrix);

/// Checks the inputs, chooses the plan (with what `forced` fixes: tests)
/// and runs it. With a sink, the weights go there and the result's
/// `weights` is empty (0 x 0).
fn ridge_cv_inner(
    x: &Matrix,
    y: &Matrix,
    folds: &[Fold],
    config: &RidgeConfig,
    forced: &PartialPlan,
    sink: Option<BlockSink<'_>>,
) -> Result<(RidgeCvResult, RoutesTaken), RidgeError> {
    check_inputs(&[("X", x)], y)?;
    check_folds(folds, x.rows)?;
    check_alphas(&config.alphas)?;
    check_batch(config.target_batch)?;
    let plan = RoutePlan::choose(&Shape::new(x, y, folds, &config.alphas), forced)?;
    tracing::debug!(?plan, "ridge: route plan");
    ridge_cv_planned(x, y, folds, config, &plan, sink)
}

/// Runs `plan`: the score table by its fold route (falling back to the folds
/// prepared alone where it allows), the choice of alphas, the refit.
fn ridge_cv_planned(
    x: &Matrix,
    y: &Matrix,
    folds: &[Fold],
    config: &RidgeConfig,
    plan: &RoutePlan,
    sink: Option<BlockSink<'_>>,
) -> Result<(RidgeCvResult, RoutesTaken), RidgeError> {
    let started = std::time::Instant::now();
    let row_counts = folds.iter().map(|f| f.train.len()).chain([x.rows]);
    let design = Design::new(x, &[x.cols], row_counts, plan);
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "ridge: Gram matrices");
    let unit = [1.0];
    // The refit's route depends on the alphas chosen, so the scoring comes
    // first.
    let downdate = if plan.folds == FoldRoute::Downdate {
        let scored = downdate_score_table(&design, y, folds, &config.alphas, config.score, config.target_batch)?;
        if scored.is_none() && !plan.fallback {
            return Err(RidgeError::Decomposition(format!(
                "the downdate route with the alphas {:?} (one below 1e-10 trace, or a fold's system not positive definite)",
                config.alphas
            )));
        }
        scored
    } else {
        None
    };
    let (table, spectrum, prepared) = match downdate {
        Some((table, spectrum, prepared)) => (table, Some(spectrum), prepared),
        None => {
            let shared = design.shared_projection_of(y, config.target_batch);
            let (table, prepared) = cv_score_table(
                &design,
                &unit,
                y,
                folds,
                &config.alphas,
                config.score,
                config.target_batch,
                shared.as_ref(),
            )?;
            (table, None, prepared)
        }
    };
    let n_alphas = config.alphas.len();
    let choice: Vec<usize> = if config.per_target_alpha {
        (0..y.cols).map(|t| best_alpha(&table[t * n_alphas..(t + 1) * n_alphas], &config.alphas).0).collect()
    } else {
        let mut mean = vec![0.0; n_alphas];
        for t in 0..y.cols {
            for (a, m) in mean.iter_mut().enumerate() {
                *m += table[t * n_alphas + a] / y.cols as f64;
            }
        }
        vec![best_alpha(&mean, &config.alphas).0; y.cols]
    };
    let best_alphas: Vec<f64> = choice.iter().map(|&a| config.alphas[a]).collect();
    let mut counts = vec![0usize; n_alphas];
    choice.iter().for_each(|&a| counts[a] += 1);
    tracing::debug!(?counts, "ridge: targets per alpha");
    let mut cv_scores = Matrix::zeros(n_alphas, y.cols);
    for t in 0..y.cols {
        for a in 0..n_alphas {
            cv_scores.set(a, t, table[t * n_alphas + a] as f32);
        }
    }
    drop(table);
    let solver = design.refit_solver(&best_alphas, spectrum)?;
    let taken = RoutesTaken {
        folds: prepared,
        refit_direct: solver.direct.iter().map(|(alpha, _)| *alpha).collect(),
        refit_spectrum: solver.spectrum.is_some(),
    };
    tracing::debug!(?taken, "ridge: routes taken");
    drop(design);
    let targets: Vec<usize> = (0..y.cols).collect();
    let started = std::time::Instant::now();
    if let Some(sink) = sink {
        refit_each(y, &solver, &targets, &best_alphas, config.target_batch, sink);
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "ridge: refit");
        return Ok((RidgeCvResult { best_alphas, cv_scores, weights: Matrix::zeros(0, 0) }, taken));
    }
    let mut weights = Matrix::zeros(x.cols, y.cols);
    refit(y, &solver, &targets, &best_alphas, config.target_batch, &mut weights);
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "ridge: refit");
    Ok((RidgeCvResult { best_alphas, cv_scores, weights }, taken))
}

/// [`fit_ridge`] with the routes that `forced` fixes (tests).
fn fit_ridge_with(x: &Matrix, y: &Matrix, alphas: &[f64], forced: &PartialPlan) -> Result<Matrix, RidgeError> {
    check_inputs(&[("X", x)], y)?;
    check_alphas(alphas)?;
    if alphas.len() != 1 && alphas.len() != y.cols {
        return Err(RidgeError::Shape(format!(
            "{} alphas for {} targets (give one per target, or one for all)",
            alphas.len(),
            y.cols
        )));
    }
    let plan = RoutePlan::choose(&Shape::new(x, y, &[], alphas), forced)?;
    tracing::debug!(?plan, "ridge: route plan (fit)");
    let design = Design::new(x, &[x.cols], [x.rows].into_iter(), &plan);
    let targets: Vec<usize> = (0..y.cols).collect();
    let per_target: Vec<f64> = (0..y.cols).map(|t| alphas[if alphas.len() == 1 { 0 } else { t }]).collect();
    let solver = design.refit_solver(&per_target, None)?;
    let mut weights = Matrix::zeros(x.cols, y.cols);
    refit(y, &solver, &targets, &per_target, DEFAULT_TARGET_BATCH, &mut weights);
    Ok(weights)
}

pub fn check_inputs(xs: &[(&str, &Matrix)], y: &Matrix) -> Result<(), RidgeError> {
    for (name, m) in xs.iter().copied().chain([("Y", y)]) {
        if m.data.len() != m.rows * m.cols {
            return Err(RidgeError::Shape(format!(
                "{name} claims {} x {} but holds {} values",
                m.rows,
                m.cols,
                m.data.len()
            )));
        }
        if m.rows != y.rows {
            return Err(RidgeError::Shape(format!("{name} has {} rows but Y has {}", m.rows, y.rows)));
        }
    }
    for (name, m) in xs.iter().copied().chain([("Y", y)]) {
        if let Some(position) = crate::numeric::matrix::first_non_finite(&m.data) {
            return Err(RidgeError::NonFinite {
                matrix: name.to_string(),
                row: position / m.cols,
                col: position % m.cols,
                value: m.data[position],
            });
        }
    }
    Ok(())
}

pub fn check_folds(folds: &[Fold], n_rows: usize) -> Result<(), RidgeError> {
    if folds.is_empty() {
        return Err(RidgeError::NoFolds);
    }
    let mut seen = vec![usize::MAX; n_rows];
    for (f, fold) in folds.iter().enumerate() {
        for (part, rows) in [("train", &fold.train), ("validation", &fold.validation)] {
            if rows.is_empty() {
                return Err(RidgeError::EmptyFold { fold: f, part });
            }
            if let Some(&row) = rows.iter().find(|&&r| r >= n_rows) {
                return Err(RidgeError::FoldRowOutOfRange { fold: f, row, n_rows });
            }
        }
        fold.train.iter().for_each(|&r| seen[r] = f);
        if let Some(&row) = fold.validation.iter().find(|&&r| seen[r] == f) {
            return Err(RidgeError::FoldOverlap { fold: f, row });
        }
    }
    Ok(())
}

pub fn check_alphas(alphas: &[f64]) -> Result<(), RidgeError> {
    if alphas.is_empty() {
        return Err(RidgeError::NoAlphas);
    }
    match alphas.iter().position(|a| !(*a > 0.0 && a.is_finite())) {
        Some(index) => Err(RidgeError::NonPositiveAlpha { index, value: alphas[index] }),
        None => Ok(()),
    }
}

pub fn check_batch(target_batch: usize) -> Result<(), RidgeError> {
    if target_batch == 0 {
        return Err(RidgeError::Config("target_batch must be at least 1".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::test_helpers::{assert_close, brute_force_scores, signal_and_noise};
    use super::*;
    use crate::testing::{fresh_rng, random_matrix};

    #[test]
    fn ridge_cv_matches_a_brute_force_search() {
        let mut rng = fresh_rng("ridge_cv_matches_a_brute_force_search");
        for (n, p, score) in [(100, 20, CvScore::L2), (60, 90, CvScore::Pearson), (100, 20, CvScore::Pearson)] {
            let x = random_matrix(&mut rng, n, p);
            let y = signal_and_noise(&mut rng, &x, 7);
            let alphas = vec![0.1, 1.0, 10.0, 100.0, 1000.0];
            let folds = folds_chunked(n, 5, 4, rng.random());
            let config = RidgeConfig { alphas: alphas.clone(), per_target_alpha: true, score, target_batch: 3 };
            let result = ridge_cv(&x, &y, &folds, &config).unwrap();
            let expected = brute_force_scores(&x, &y, &folds, &alphas, &vec![1.0; p], score);
            for (a, row) in expected.iter().enumerate() {
                let actual: Vec<f64> = result.cv_scores.row(a).iter().map(|&v| v as f64).collect();
                assert_close(&format!("{score:?} scores of alpha {}", alphas[a]), &actual, row, 1e-4);
            }
            for t in 0..y.cols {
                let scores: Vec<f64> = expected.iter().map(|row| row[t]).collect();
                let (best, best_score) = best_alpha(&scores, &alphas);
                let chosen = alphas.iter().position(|&a| a == result.best_alphas[t]).unwrap();
                let gap = (best_score - scores[chosen]).abs();
                assert!(
                    chosen == best || gap < 1e-5 * best_score.abs(),
                    "target {t}: chose alpha {} but brute force prefers {}",
                    alphas[chosen],
                    alphas[best]
                );
            }
            let refit = fit_ridge(&x, &y, &result.best_alphas).unwrap();
            let as_f64 = |m: &Matrix| m.data.iter().map(|&v| v as f64).collect::<Vec<_>>();
            assert_close("ridge_cv refit", &as_f64(&result.weights), &as_f64(&refit), 1e-4);
        }
    }

    #[test]
    fn a_shared_alpha_maximises_the_mean_score() {
        let mut rng = fresh_rng("a_shared_alpha_maximises_the_mean_score");
        let x = random_matrix(&mut rng, 80, 15);
        let y = signal_and_noise(&mut rng, &x, 5);
        let alphas = vec![0.5, 5.0, 50.0, 500.0];
        let folds = folds_contiguous(80, 4);
        let config =
            RidgeConfig { alphas: alphas.clone(), per_target_alpha: false, score: CvScore::L2, target_batch: 2 };
        let result = ridge_cv(&x, &y, &folds, &config).unwrap();
        let means: Vec<f64> =
            (0..alphas.len()).map(|a| result.cv_scores.row(a).iter().map(|&v| v as f64).sum::<f64>() / 5.0).collect();
        let best = alphas[best_alpha(&means, &alphas).0];
        assert!(result.best_alphas.iter().all(|&a| a == best), "{:?} vs {best}", result.best_alphas);
    }

    #[test]
    fn predict_is_the_matrix_product() {
        let mut rng = fresh_rng("predict_is_the_matrix_product");
        let x = random_matrix(&mut rng, 13, 7);
        let w = random_matrix(&mut rng, 7, 5);
        let out = predict(&x, &w);
        for i in 0..13 {
            for j in 0..5 {
                let expected: f64 = (0..7).map(|k| x.get(i, k) as f64 * w.get(k, j) as f64).sum();
                assert!((out.get(i, j) as f64 - expected).abs() < 1e-5 * (1.0 + expected.abs()));
            }
        }
        let rows = Matrix::from_vec(5, 7, (0..35).map(|k| w.get(k % 7, k / 7)).collect());
        assert_eq!(predict_voxel_major(&x, &rows), out, "voxel-major weights give the same product");
    }

    #[test]
    fn streaming_refit_hands_over_the_same_weights_in_order() {
        let mut rng = fresh_rng("streaming_refit_hands_over_the_same_weights_in_order");
        for (n, p) in [(120, 30), (60, 90)] {
            let x = random_matrix(&mut rng, n, p);
            let y = signal_and_noise(&mut rng, &x, 23);
            let folds = folds_contiguous(n, 3);
            let config = RidgeConfig {
                alphas: vec![0.1, 1.0, 10.0, 100.0],
                per_target_alpha: true,
                score: CvScore::L2,
                target_batch: 4,
            };
            let dense = ridge_cv(&x, &y, &folds, &config).unwrap();
            let mut seen = Vec::new();
            let mut streamed = Matrix::zeros(p, 23);
            let (alphas, scores) = ridge_cv_streaming(&x, &y, &folds, &config, &mut |batch, block| {
                assert_eq!((block.rows, block.cols), (batch.len(), p), "voxel-major blocks");
                for (j, &t) in batch.iter().enumerate() {
                    seen.push(t);
                    for f in 0..p {
                        streamed.set(f, t, block.get(j, f));
                    }
                }
            })
            .unwrap();
            assert_eq!(seen, (0..23).collect::<Vec<_>>(), "every target once, in order");
            assert_eq!(alphas, dense.best_alphas);
            assert_eq!(scores, dense.cv_scores);
            assert_eq!(streamed, dense.weights);
        }
    }

    #[test]
    fn bad_inputs_are_named_errors() {
        let mut rng = fresh_rng("bad_inputs_are_named_errors");
        let x = random_matrix(&mut rng, 30, 4);
        let y = random_matrix(&mut rng, 30, 3);
        let folds = folds_contiguous(30, 3);
        let config = RidgeConfig { alphas: vec![1.0], per_target_alpha: true, score: CvScore::L2, target_batch: 8 };

        let (row, col) = (rng.random_range(0..30), rng.random_range(0..4));
        let mut bad_x = x.clone();
        bad_x.set(row, col, f32::NAN);
        bad_x.set(29, 3, f32::INFINITY);
        match ridge_cv(&bad_x, &y, &folds, &config) {
            Err(RidgeError::NonFinite { matrix, row: r, col: c, .. }) => {
                assert_eq!((matrix.as_str(), r, c), ("X", row, col));
            }
            other => panic!("expected a NaN error, got {other:?}"),
        }
        let mut bad_y = y.clone();
        bad_y.set(row, 2, f32::NEG_INFINITY);
        let message = fit_ridge(&x, &bad_y, &[1.0]).unwrap_err().to_string();
        assert_eq!(message, format!("Y has a non-finite value (-inf) at row {row}, column 2"));

        let short = random_matrix(&mut rng, 29, 3);
        assert!(matches!(ridge_cv(&x, &short, &folds, &config), Err(RidgeError::Shape(_))));
        assert!(matches!(fit_ridge(&x, &y, &[1.0, 2.0]), Err(RidgeError::Shape(_))));
        let band = random_matrix(&mut rng, 31, 2);
        let banded = BandedConfig {
            n_iter: 2,
            alphas: vec![1.0],
            concentration: 1.0,
            seed: 1,
            score: CvScore::L2,
            target_batch: 8,
        };
        assert!(matches!(banded_ridge_cv(&[&x, &band], &y, &folds, &banded), Err(RidgeError::Shape(_))));

        let negative = RidgeConfig { alphas: vec![1.0, -2.0], ..config.clone() };
        assert!(matches!(ridge_cv(&x, &y, &folds, &negative), Err(RidgeError::NonPositiveAlpha { index: 1, .. })));
        assert!(matches!(fit_ridge(&x, &y, &[0.0]), Err(RidgeError::NonPositiveAlpha { index: 0, .. })));
        let empty = vec![Fold { train: (0..30).collect(), validation: vec![] }];
        assert!(matches!(ridge_cv(&x, &y, &empty, &config), Err(RidgeError::EmptyFold { fold: 0, .. })));
        let overlap = vec![Fold { train: (0..20).collect(), validation: (19..30).collect() }];
        assert!(matches!(ridge_cv(&x, &y, &overlap, &config), Err(RidgeError::FoldOverlap { fold: 0, row: 19 })));
        let outside = vec![Fold { train: (0..20).collect(), validation: vec![20, 35] }];
        assert!(matches!(ridge_cv(&x, &y, &outside, &config), Err(RidgeError::FoldRowOutOfRange { row: 35, .. })));
        assert!(matches!(ridge_cv(&x, &y, &[], &config), Err(RidgeError::NoFolds)));
        let zero_batch = RidgeConfig { target_batch: 0, ..config };
        assert!(matches!(ridge_cv(&x, &y, &folds, &zero_batch), Err(RidgeError::Config(_))));
    }
}
