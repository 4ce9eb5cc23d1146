//! Ridge regression for encoding models with many targets (voxels): a
//! cross-validated choice of the regularisation per target ([`ridge_cv`]), a
//! closed-form fit at given alphas ([`fit_ridge`]), [`predict`], banded ridge
//! by himalaya's random search over band weights ([`banded_ridge_cv`]), and
//! the fold helpers ([`folds_by_group`], [`folds_contiguous`],
//! [`folds_chunked`]).
//!
//! # Penalty convention
//! himalaya's (and scikit-learn's `Ridge(fit_intercept=False)`): for
//! `X = U S V^T` the weights at regularisation `alpha` are
//! `w = V diag(s / (s^2 + alpha)) U^T y`, the minimiser of
//! `||X w - y||^2 + alpha ||w||^2`. There is no intercept: X and Y are
//! z-scored upstream.
//!
//! # Two paths
//! The SVD path (`n >= p`) works with `X^T X` (p x p), the kernel path
//! (`p > n`) with `K = X X^T` (n x n), so that every matrix decomposed is
//! `min(n, p)` wide; both give the same weights. The Gram matrices are
//! computed once in f64 and every fold takes its block of them.
//!
//! # Cross-validation
//! For a fold and an alpha the validation predictions are a small operator
//! times the training targets: `K_val,train (K_train + alpha I)^-1 Y_train`
//! on the kernel path, `X_val (X_train^T X_train + alpha I)^-1 X_train^T
//! Y_train` on the SVD path. The operators come from one f64 Cholesky
//! factorisation per fold and alpha (compute-bound, run in parallel over the
//! alphas); from the eigendecomposition `Gram = Q diag(lambda) Q^T` instead
//! when the alphas are so many that it costs fewer flops, or when an alpha is
//! below `1e-10 * trace(Gram)`, where Cholesky would lose accuracy (its error
//! grows like `trace / alpha * f64::EPSILON`).
//! On the kernel path, when every fold splits all rows (leave-one-story-out,
//! k-fold), the operators can instead come from one inverse
//! `P = (K + alpha I)^-1` of the whole kernel per alpha, shared by the folds:
//! `K_val,train (K_train + alpha I)^-1 = -P_val,val^-1 P_val,train` (the
//! Schur complement), so each fold adds only an `n_val x n_val`
//! factorisation (in f32 for well-conditioned alphas, see "Precision").
//! That route is taken when it costs fewer flops (about 0.7x with 5 folds,
//! 0.2x with 20; more with 2 or 3 folds) and Y is not so large that memory
//! decides.
//! On the SVD path with such folds, one eigendecomposition `X^T X = U
//! diag(lambda) U^T` can serve every fold and alpha: a fold's training Gram
//! matrix is the whole one less its validation rows', so Woodbury turns its
//! operator into a solve with an `n_val x n_val` matrix, and with `Z = X U`
//! the folds score in the eigenbasis against `Z^T Y - Z_val^T Y_val` (see
//! [`Design::downdate_operator`]); the refit then reuses the decomposition.
//! Taken when it costs fewer flops: with many folds and `p` large next to
//! `n_val` (leave-one-story-out on 25 stories, n = 9000, p = 3072, 10
//! alphas: 31-32 s instead of 86.6 s at 5000 targets).
//! Both shared projections subtract in f32; a fold whose training rows lack
//! a direction that its validation rows have (a feature of one story only)
//! would turn that rounding into noise multiplied by up to `1 / alpha`, so
//! such a fold projects its own training rows instead (see
//! `CANCELLATION_FLOOR`).
//! The operators of all alphas are stacked, so that one f32 product per fold
//! and batch of targets gives every prediction. Per fold that costs
//! `2 n_alphas n_val rank n_targets` flops with `rank = min(n_train, p)`,
//! plus on the SVD path the projection `X_train^T Y_train`: with 4 folds or
//! more that split all rows it is `X^T Y - X_val^T Y_val` from one shared
//! `X^T Y` (`2 p n_val n_targets` per fold instead of `2 p n_train
//! n_targets`; n=6000, p=1536, 10 folds: 34.2 s instead of 44.7 s), unless
//! memory decides and `X^T Y` would be more than a third of X and Y.
//! Nothing larger touches Y.
//!
//! # Refit
//! After the scoring, with each target's alpha known, the weights come from
//! one of two solvers, chosen per alpha by flop count (see
//! [`Design::refit_solver`]):
//! - a direct operator per alpha, `A = X^T (K + alpha I)^-1` (kernel path) or
//!   `(X^T X + alpha I)^-1 X^T` (SVD path), p x n, from one f64 Cholesky
//!   factorisation and a solve with X (f32 for well-conditioned alphas, see
//!   "Precision"); each target then costs `2 n p` f32
//!   flops. Taken for the alphas that many targets chose (the usual case:
//!   at n = 3000, p = 3072 the flop count favours it from about 7000 targets
//!   per alpha, and when it spares the eigendecomposition altogether).
//! - the eigendecomposition of the full Gram matrix in f64, which writes
//!   every solve as `w(alpha) = R diag(1 / (lambda + alpha)) L^T y`: on the
//!   SVD path `X^T X = V diag(lambda) V^T`, `L = X V` (that is `U S`) and
//!   `R = V`; on the kernel path `X X^T = U diag(lambda) U^T`, `L = U` and
//!   `R = X^T U` (that is `V S`). This is the SVD of X without a division by
//!   small singular values. Eigenvalues below
//!   `max(n, p) * f64::EPSILON * lambda_max` are dropped: they are
//!   directions that f32 inputs cannot resolve. Each target then costs
//!   `2 (n + p) rank` flops in f32, whatever its alpha; the decomposition
//!   itself is a fixed cost, worth it when many alphas have few targets
//!   each, and the accurate route for alphas below `1e-10 * trace(Gram)`.
//!
//! # Precision
//! The Gram matrices, factorisations and solves run in f64, the products
//! with Y in f32. Two steps factorise in f32 instead when it costs no
//! accuracy that matters: the Schur route's inverse of `K + alpha I` with
//! its folds' solves, and the refit's direct operators. Both conditions of
//! [`factorises_in_f32`] must hold: the bound on the system's condition
//! number, `(lambda_max + alpha) / alpha`, is at most
//! [`F32_CONDITION_LIMIT`] (32), and no direction dominates the Gram
//! matrix's spectrum (`lambda_max` at most [`F32_SPIKE_LIMIT`], 64, times
//! the mean eigenvalue). Gaussian designs pass the second (ratio about 4),
//! and so did the demo pipeline's designs (random embeddings with word
//! rate: 5.5-28.7; MiniLM features with 4 delays, 753 rows: 31-51); a
//! design whose columns all share one strong component (ratio 100-500 in the
//! tests) does not and stays in f64. Where both hold, f32 takes 0.51-0.53 s per alpha of the Schur route instead of
//! 0.73-0.95 s (n = 3000, 5 folds, two alphas at once on this project's
//! 2-core machine); the operators' relative error stays at or below about
//! 2.5e-6 (measured at n = 3000: 7.8e-7 at the condition limit on a
//! Gaussian design), and the validation scores move by at most 2e-7 (L2)
//! and 1.3e-6 (Pearson, relative to `max(|r|, 0.1)`) against f64 (n = 600,
//! p = 700, 2000 targets). `lambda_max` is estimated from above by the
//! power iteration (see [`largest_eigenvalue_estimate`]).
//!
//! # Memory
//! Targets are processed in batches of `target_batch` columns, batches in
//! parallel on rayon's pool. Beyond X, Y and the returned weights, a call
//! holds the f64 Gram matrix, one or two fold operators (`n_alphas * n_val *
//! rank` f32) at a time, the refit's solvers (direct operators, p x n f32
//! each, no more than the memory of the spectrum they replace: its working
//! memory and `L`, `R`), and per worker thread a few buffers of
//! `n x target_batch` values and, in the refit, two `target_batch x p`
//! weight blocks (one being computed, one being handed over). The kernel
//! path's shared-inverse
//! route holds instead every fold's operator for a group of alphas (at most
//! 4x the refit decomposition's working memory, the size of Y above which
//! memory decides) and two `n x n` f64 matrices per alpha prepared at once
//! (one per thread, capped at half that size: on a machine with many cores
//! the rest of the threads go into each factorisation); it is not taken
//! when Y is that large.
//!
//! # Scores
//! [`CvScore::L2`] is himalaya's `l2_neg_loss` and scikit-learn's
//! `neg_mean_squared_error`: minus the mean squared validation error of each
//! fold, averaged over folds. [`CvScore::Pearson`] is the validation Pearson
//! r of each fold, averaged over folds. The best alpha maximises the score;
//! like himalaya, ties go to the larger alpha (a `1e-10 * ln(alpha)` slope).

use std::ops::Range;
use std::sync::OnceLock;

use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::evd::{self_adjoint_evd, self_adjoint_evd_scratch, ComputeEigenvectors};
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::triangular_inverse::invert_lower_triangular;
use faer::linalg::triangular_solve::{solve_lower_triangular_in_place, solve_upper_triangular_in_place};
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};
use rayon::prelude::*;

use crate::numeric::Matrix;

/// Targets per batch when a caller has no reason to choose: large enough for
/// efficient products, small enough that per-thread buffers stay in the tens
/// of megabytes at n = 3000.
pub const DEFAULT_TARGET_BATCH: usize = 1024;

/// One cross-validation split: row indices of X and Y used to fit, and the
/// disjoint rows used to score.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fold {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
}

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

/// Settings of [`banded_ridge_cv`].
#[derive(Clone, Debug, PartialEq)]
pub struct BandedConfig {
    /// Band weightings tried: the first is uniform, the others are Dirichlet
    /// samples (himalaya's `n_iter`).
    pub n_iter: usize,
    /// Candidate global alphas, each positive and finite.
    pub alphas: Vec<f64>,
    /// Dirichlet concentration (1 samples the simplex uniformly; himalaya
    /// cycles through 0.1 and 1).
    pub concentration: f64,
    /// Seed of the ChaCha8 generator that draws the band weightings.
    pub seed: u64,
    pub score: CvScore,
    pub target_batch: usize,
}

/// What [`banded_ridge_cv`] found. With band weights `gamma` (summing to one)
/// and a global `alpha`, band `b` is penalised by `alpha / gamma_b`: the
/// solution minimises `||sum_b X_b w_b - y||^2 + sum_b alpha / gamma_b ||w_b||^2`.
#[derive(Clone, Debug, PartialEq)]
pub struct BandedResult {
    /// n_iter x n_bands: every band weighting tried (rounded to f32, and used
    /// exactly as stored here).
    pub samples: Matrix,
    /// Per target: the row of `samples` chosen.
    pub best_sample: Vec<usize>,
    /// n_bands x n_targets: the chosen band weights `gamma`.
    pub gammas: Matrix,
    /// Per target: the chosen global alpha.
    pub best_alphas: Vec<f64>,
    /// n_bands x n_targets: himalaya's `deltas`, `ln(gamma_b / alpha)`; the
    /// penalty of band `b` is `exp(-delta_b)`.
    pub deltas: Matrix,
    /// n_iter x n_targets: for each band weighting, the score of its best
    /// alpha, averaged over folds.
    pub cv_scores: Matrix,
    /// p_total x n_targets, on the unscaled bands stacked in order.
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
    ridge_cv_with(x, y, folds, config, Overrides::default())
}

/// Fits ridge on all rows: `alphas` holds one alpha per target, or one for
/// all. Returns the p x n_targets weights.
pub fn fit_ridge(x: &Matrix, y: &Matrix, alphas: &[f64]) -> Result<Matrix, RidgeError> {
    fit_ridge_with(x, y, alphas, Overrides::default())
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

/// Leave-one-group-out: one fold per distinct group (in increasing group
/// order), validating on that group's rows and training on all others.
pub fn folds_by_group(groups: &[usize]) -> Vec<Fold> {
    let mut distinct: Vec<usize> = groups.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    distinct
        .into_iter()
        .map(|g| {
            let (validation, train): (Vec<usize>, Vec<usize>) = (0..groups.len()).partition(|&i| groups[i] == g);
            Fold { train, validation }
        })
        .collect()
}

/// `k` contiguous validation blocks, like scikit-learn's unshuffled `KFold`:
/// the first `n % k` blocks hold one row more. A `k` larger than `n` gives
/// folds with empty validation sets, which [`ridge_cv`] rejects.
pub fn folds_contiguous(n: usize, k: usize) -> Vec<Fold> {
    let mut start = 0;
    (0..k)
        .map(|f| {
            let len = n / k + usize::from(f < n % k);
            let validation: Vec<usize> = (start..start + len).collect();
            start += len;
            complement_fold(n, validation)
        })
        .collect()
}

/// Rows cut into chunks of `chunk_len` (the last may be shorter), the chunks
/// shuffled by a `ChaCha8Rng` seeded with `seed`, and dealt round-robin into
/// `k` validation sets: contiguous pieces of time series stay together and
/// the same seed always gives the same folds.
pub fn folds_chunked(n: usize, k: usize, chunk_len: usize, seed: u64) -> Vec<Fold> {
    let chunk_len = chunk_len.max(1);
    let mut chunks: Vec<usize> = (0..n.div_ceil(chunk_len)).collect();
    chunks.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut validation_sets = vec![Vec::new(); k];
    for (position, chunk) in chunks.into_iter().enumerate() {
        let rows = chunk * chunk_len..((chunk + 1) * chunk_len).min(n);
        if k > 0 {
            validation_sets[position % k].extend(rows);
        }
    }
    validation_sets
        .into_iter()
        .map(|mut validation| {
            validation.sort_unstable();
            complement_fold(n, validation)
        })
        .collect()
}

/// Band weightings tried by [`banded_ridge_cv`]: `n_iter` x `n_bands`, the
/// first row uniform, the others Dirichlet(`concentration`) samples drawn by
/// `ChaCha8Rng::seed_from_u64(seed)` (normalised Gamma draws), rounded to f32.
pub fn dirichlet_samples(n_iter: usize, n_bands: usize, concentration: f64, seed: u64) -> Matrix {
    let mut samples = Matrix::zeros(n_iter, n_bands);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let gamma = Gamma::new(concentration, 1.0).ok();
    for i in 0..n_iter {
        let mut draw = vec![1.0 / n_bands as f64; n_bands];
        if i > 0 {
            if let Some(gamma) = &gamma {
                loop {
                    draw.iter_mut().for_each(|d| *d = gamma.sample(&mut rng));
                    let total: f64 = draw.iter().sum();
                    if total > 0.0 && total.is_finite() {
                        draw.iter_mut().for_each(|d| *d /= total);
                        break;
                    }
                }
            }
        }
        for (b, d) in draw.into_iter().enumerate() {
            samples.set(i, b, d as f32);
        }
    }
    samples
}

/// Banded ridge by himalaya's random search (`solve_group_ridge_random_search`
/// with `local_alpha=True`): for each band weighting `gamma` of
/// [`dirichlet_samples`], the bands are scaled by `sqrt(gamma_b)` and every
/// alpha is scored on the folds; a target keeps the first weighting whose
/// best score beats its best so far by more than `f32::EPSILON`. The weights
/// are refit on all rows with each target's weighting and alpha.
pub fn banded_ridge_cv(
    x_bands: &[&Matrix],
    y: &Matrix,
    folds: &[Fold],
    config: &BandedConfig,
) -> Result<BandedResult, RidgeError> {
    if x_bands.is_empty() {
        return Err(RidgeError::Config("no feature bands given".into()));
    }
    if config.n_iter == 0 {
        return Err(RidgeError::Config("n_iter must be at least 1".into()));
    }
    if config.n_iter > 1 && !(config.concentration > 0.0 && config.concentration.is_finite()) {
        return Err(RidgeError::Config(format!(
            "the Dirichlet concentration must be positive and finite, not {}",
            config.concentration
        )));
    }
    let names: Vec<String> = (0..x_bands.len()).map(|b| format!("X band {b}")).collect();
    let named: Vec<(&str, &Matrix)> = names.iter().map(String::as_str).zip(x_bands.iter().copied()).collect();
    check_inputs(&named, y)?;
    check_folds(folds, y.rows)?;
    check_alphas(&config.alphas)?;
    check_batch(config.target_batch)?;

    let x = Matrix::hstack(x_bands);
    let band_widths: Vec<usize> = x_bands.iter().map(|band| band.cols).collect();
    let n_bands = x_bands.len();
    let samples = dirichlet_samples(config.n_iter, n_bands, config.concentration, config.seed);
    let row_counts = folds.iter().map(|f| f.train.len()).chain([x.rows]);
    let design = Design::new(&x, &band_widths, row_counts, Overrides::default());
    let overlap = !design.memory_bound(y);
    // X^T Y does not depend on the band weights: one for every weighting.
    let shared = design.shared_projection_of(folds, y, !overlap, config.target_batch);
    let n_alphas = config.alphas.len();
    let n_targets = y.cols;
    let mut best_score = vec![f64::NEG_INFINITY; n_targets];
    let mut best_sample = vec![0usize; n_targets];
    let mut best_alpha_index = vec![0usize; n_targets];
    let mut cv_scores = Matrix::zeros(config.n_iter, n_targets);
    for i in 0..config.n_iter {
        let gamma: Vec<f64> = samples.row(i).iter().map(|&g| g as f64).collect();
        let table = cv_score_table(
            &design,
            &gamma,
            y,
            folds,
            &config.alphas,
            config.score,
            config.target_batch,
            overlap,
            shared.as_ref(),
        )?;
        for t in 0..n_targets {
            let (a, score) = best_alpha(&table[t * n_alphas..(t + 1) * n_alphas], &config.alphas);
            cv_scores.set(i, t, score as f32);
            if score > best_score[t] + f32::EPSILON as f64 {
                best_score[t] = score;
                best_sample[t] = i;
                best_alpha_index[t] = a;
            }
        }
    }

    let best_alphas: Vec<f64> = best_alpha_index.iter().map(|&a| config.alphas[a]).collect();
    let mut weights = Matrix::zeros(x.cols, n_targets);
    let mut chosen: Vec<usize> = best_sample.clone();
    chosen.sort_unstable();
    chosen.dedup();
    for i in chosen {
        let gamma: Vec<f64> = samples.row(i).iter().map(|&g| g as f64).collect();
        let solver = RefitSolver { spectrum: Some(design.decompose_full(&gamma, Par::rayon(0))?), direct: Vec::new() };
        let targets: Vec<usize> = (0..n_targets).filter(|&t| best_sample[t] == i).collect();
        let alphas: Vec<f64> = targets.iter().map(|&t| best_alphas[t]).collect();
        refit(y, &solver, &targets, &alphas, config.target_batch, &mut weights);
    }
    let mut gammas = Matrix::zeros(n_bands, n_targets);
    let mut deltas = Matrix::zeros(n_bands, n_targets);
    for t in 0..n_targets {
        for b in 0..n_bands {
            let g = samples.get(best_sample[t], b);
            gammas.set(b, t, g);
            deltas.set(b, t, (g as f64 / best_alphas[t]).ln() as f32);
        }
    }
    Ok(BandedResult { samples, best_sample, gammas, best_alphas, deltas, cv_scores, weights })
}

/// Which Gram matrix a solve works with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// `X^T X` (p x p), for `n >= p`.
    Svd,
    /// `X X^T` (n x n), for `p > n`.
    Kernel,
}

impl Path {
    fn for_shape(n_rows: usize, n_features: usize) -> Path {
        if n_rows >= n_features {
            Path::Svd
        } else {
            Path::Kernel
        }
    }
}

/// How a fold's validation predictions are prepared for all alphas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FoldMethod {
    /// One Cholesky factorisation of `Gram + alpha I` per alpha (compute-bound).
    Cholesky,
    /// One eigendecomposition of the Gram matrix for all alphas (memory-bound).
    Eigen,
    /// Kernel path, folds that split all rows: per alpha one inverse
    /// `P = (K + alpha I)^-1` of the whole kernel, shared by every fold, and
    /// per fold a solve with its `n_val x n_val` block of P.
    Schur,
    /// SVD path, folds that split all rows, unit band weights: one
    /// eigendecomposition `X^T X = U diag(lambda) U^T` shared by every fold
    /// and alpha; a fold's training Gram matrix is the whole one less its
    /// validation rows' (a downdate), so per fold and alpha it takes a
    /// solve with an `n_val x n_val` matrix (Woodbury), and the folds score
    /// in the eigenbasis (see [`Design::downdate_operator`]).
    Downdate,
}

/// The f32 work that the eigendecomposition route adds to a fold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EigenExtra {
    /// Project the training targets, `L^T Y_train`: `2 rank n_train n_targets`.
    Project,
    /// Fold `L` into the operator once, `2 rank n_train n_predictions`; the
    /// scoring product then runs `n_train` deep instead of `rank`.
    Fold,
}

impl EigenExtra {
    /// The cheaper of the two and its flops.
    fn cheaper(n_train: f64, rank: f64, n_predictions: f64, n_targets: f64) -> (EigenExtra, f64) {
        let project = 2.0 * rank * n_train * n_targets;
        let fold = 2.0 * rank * n_train * n_predictions + 2.0 * n_predictions * (n_train - rank) * n_targets;
        if fold < project {
            (EigenExtra::Fold, fold)
        } else {
            (EigenExtra::Project, project)
        }
    }
}

/// Test hooks: force the Gram matrix and the fold method.
#[derive(Clone, Copy, Debug, Default)]
struct Overrides {
    path: Option<Path>,
    fold_method: Option<FoldMethod>,
    /// Prepare the folds one at a time and build the refit's operators one
    /// after the other (`true`), or prepare each fold while the previous one
    /// is scored (`false`), instead of choosing by the size of Y.
    memory_first: Option<bool>,
    /// Alphas per group on the Schur route.
    schur_group: Option<usize>,
    /// The refit's route for every alpha.
    refit: Option<RefitRoute>,
    /// Alphas prepared at once (see [`Design::lanes`]).
    workers: Option<usize>,
    /// The SVD path's shared projection where it applies.
    shared_projection: Option<bool>,
    /// Every factorisation in f64 (see [`factorises_in_f32`]).
    f64_only: bool,
}

/// One fold, ready to score: the validation predictions of all alphas are
/// `stacked_t^T * left^T * Y_train` (`Y_train` itself when `left` is `None`).
struct FoldOperator {
    /// n_train x rank.
    left: Option<Mat<f32>>,
    /// rank x (n_alphas * n_val), transposed so that each alpha's operator is
    /// a block of contiguous columns: alpha `a` owns columns `a * n_val ..`.
    stacked_t: Mat<f32>,
    /// SVD path with the shared projection: `X_val` (n_val x p); the
    /// operator then applies to `X^T Y - X_val^T Y_val` (= `X_train^T
    /// Y_train`) instead of `left^T Y_train`.
    validation_rows: Option<Mat<f32>>,
}

/// One fold's training design in the form `L diag(lambda) R^T`, with the
/// validation rows already projected: predictions at `alpha` are
/// `validation_design diag(1 / (lambda + alpha)) left^T y_train`.
struct FoldSpectrum {
    lambdas: Vec<f64>,
    /// n_train x rank.
    left: Mat<f32>,
    /// n_val x rank: `X_val R`.
    validation_design: Mat<f32>,
}

/// The whole design: weights at `alpha` are `right diag(1 / (lambda + alpha)) left^T y`.
struct FullSpectrum {
    lambdas: Vec<f64>,
    /// n x rank.
    left: Mat<f32>,
    /// p x rank, for the unscaled features.
    right: Mat<f32>,
}

/// The downdate route's decomposition of the whole design (unit band
/// weights): `X^T X = vectors diag(lambdas) vectors^T`, and `z = X vectors`.
struct DowndateSpectrum {
    lambdas: Vec<f64>,
    /// p x rank.
    vectors: Mat<f64>,
    /// n x rank.
    z: Mat<f64>,
}

/// How the refit solves each target: alphas with a direct operator
/// `A_alpha` (p x n, the weights are `A_alpha y`) use it, the others the
/// spectrum.
struct RefitSolver {
    spectrum: Option<FullSpectrum>,
    direct: Vec<(f64, Mat<f32>)>,
}

impl RefitSolver {
    fn direct_index(&self, alpha: f64) -> Option<usize> {
        self.direct.iter().position(|(a, _)| *a == alpha)
    }
}

/// Test hook: force the refit's route.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RefitRoute {
    Spectrum,
    Direct,
}

/// X with its Gram matrices, computed once in f64 and reused by every fold
/// and every band weighting.
struct Design<'a> {
    x: &'a Matrix,
    band_ranges: Vec<Range<usize>>,
    /// `X^T X`, when some solve takes the SVD path.
    feature_gram: Option<Mat<f64>>,
    /// `X_b X_b^T` per band, when some solve takes the kernel path.
    band_kernels: Vec<Mat<f64>>,
    /// The spectral scale of each band kernel and of the feature Gram
    /// matrix, computed when first needed.
    kernel_scales: OnceLock<Vec<SpectralScale>>,
    feature_scale: OnceLock<SpectralScale>,
    overrides: Overrides,
}

impl<'a> Design<'a> {
    /// `band_widths`: the columns of X, band after band. `row_counts`: the
    /// number of rows of every design that will be solved, which decides the
    /// Gram matrices needed.
    fn new(
        x: &'a Matrix,
        band_widths: &[usize],
        row_counts: impl Iterator<Item = usize>,
        overrides: Overrides,
    ) -> Self {
        let mut start = 0;
        let band_ranges: Vec<Range<usize>> = band_widths
            .iter()
            .map(|&width| {
                start += width;
                start - width..start
            })
            .collect();
        let paths: Vec<Path> = row_counts.map(|n| overrides.path.unwrap_or(Path::for_shape(n, x.cols))).collect();
        // X^T in f64, column-major: each of its columns is a row of X, so the
        // copy reads and writes contiguously (rows in parallel).
        let mut x64_t = Mat::<f64>::zeros(x.cols, x.rows);
        x64_t.par_col_chunks_mut(1).enumerate().for_each(|(i, mut column)| {
            for (j, &value) in x.row(i).iter().enumerate() {
                column[(j, 0)] = value as f64;
            }
        });
        let feature_gram = paths.contains(&Path::Svd).then(|| gram_of_rows(x64_t.as_ref()));
        let band_kernels = if paths.contains(&Path::Kernel) {
            band_ranges.iter().map(|range| gram_of_rows(x64_t.subrows(range.start, range.len()).transpose())).collect()
        } else {
            Vec::new()
        };
        Design {
            x,
            band_ranges,
            feature_gram,
            band_kernels,
            kernel_scales: OnceLock::new(),
            feature_scale: OnceLock::new(),
            overrides,
        }
    }

    fn path(&self, n_rows: usize) -> Path {
        self.overrides.path.unwrap_or(Path::for_shape(n_rows, self.x.cols))
    }

    /// The spectral scale of `sum_b gamma_b K_b`: the weighted sums of each
    /// band kernel's largest eigenvalue (an estimate from above, by Weyl's
    /// inequality) and mean eigenvalue.
    fn kernel_scale(&self, gamma: &[f64]) -> SpectralScale {
        let scales = self
            .kernel_scales
            .get_or_init(|| self.band_kernels.iter().map(|k| SpectralScale::of(k.as_ref())).collect());
        scales.iter().zip(gamma).fold(SpectralScale { largest: 0.0, mean: 0.0 }, |sum, (scale, g)| SpectralScale {
            largest: sum.largest + g * scale.largest,
            mean: sum.mean + g * scale.mean,
        })
    }

    /// The same for [`Design::full_gram`].
    fn gram_scale(&self) -> SpectralScale {
        match self.path(self.x.rows) {
            Path::Svd => *self.feature_scale.get_or_init(|| {
                self.feature_gram.as_ref().map_or(SpectralScale::UNKNOWN, |gram| SpectralScale::of(gram.as_ref()))
            }),
            Path::Kernel => self.kernel_scale(&[1.0]),
        }
    }

    /// Whether `Gram + alpha I`, for a Gram matrix of spectral scale
    /// `scale`, factorises in f32 (see [`factorises_in_f32`]).
    fn single_precision(&self, scale: SpectralScale, alpha: f64) -> bool {
        !self.overrides.f64_only && factorises_in_f32(scale.largest, scale.mean, alpha)
    }

    /// `sqrt(gamma_b)` for every feature column.
    fn feature_scales(&self, gamma: &[f64]) -> Vec<f64> {
        let mut scales = vec![0.0; self.x.cols];
        for (range, g) in self.band_ranges.iter().zip(gamma) {
            scales[range.clone()].iter_mut().for_each(|s| *s = g.sqrt());
        }
        scales
    }

    /// A fold's training Gram matrix `X_T^T X_T` (SVD path): the whole one
    /// less the validation rows' (`validation`: `X_V` in f64) when the fold
    /// splits all rows, else from the training rows themselves.
    fn train_gram(&self, fold: &Fold, validation: &Mat<f64>, par: Par) -> Mat<f64> {
        if !splits_all_rows(fold, self.x.rows) {
            return gram_of_rows(self.rows64(&fold.train).transpose());
        }
        let mut gram = self.feature_gram.clone().expect("feature Gram computed for the SVD path");
        matmul(gram.as_mut(), Accum::Add, validation.transpose(), validation.as_ref(), -1.0, par);
        gram
    }

    fn rows64(&self, rows: &[usize]) -> Mat<f64> {
        Mat::from_fn(rows.len(), self.x.cols, |i, j| self.x.get(rows[i], j) as f64)
    }

    /// `sum_b gamma_b K_b[rows, cols]`.
    fn kernel_block(&self, gamma: &[f64], rows: &[usize], cols: &[usize]) -> Mat<f64> {
        let mut block = Mat::<f64>::zeros(rows.len(), cols.len());
        for (kernel, &g) in self.band_kernels.iter().zip(gamma) {
            for (j, &c) in cols.iter().enumerate() {
                let source = kernel.col_as_slice(c);
                for (value, &r) in block.col_as_slice_mut(j).iter_mut().zip(rows) {
                    *value += g * source[r];
                }
            }
        }
        block
    }

    /// Per-alpha Cholesky when it costs less than the eigendecomposition, else
    /// the eigendecomposition; the latter also for alphas too small for
    /// Cholesky to be accurate. Costs are counted in f64 flops: the
    /// eigendecomposition's `9 d^3` weigh 1.5x (it is memory-bound), and the
    /// f32 work it adds (see [`EigenExtra`]) half.
    fn fold_operator(
        &self,
        gamma: &[f64],
        fold: &Fold,
        alphas: &[f64],
        n_targets: usize,
        shared: bool,
    ) -> Result<FoldOperator, RidgeError> {
        let (cholesky_flops, eigen_flops) = self.fold_costs(fold, alphas.len(), n_targets);
        let forced =
            self.overrides.fold_method.filter(|&method| !matches!(method, FoldMethod::Schur | FoldMethod::Downdate));
        let method =
            forced.unwrap_or(if cholesky_flops <= eigen_flops { FoldMethod::Cholesky } else { FoldMethod::Eigen });
        if method == FoldMethod::Cholesky {
            if let Some(operator) = self.cholesky_operator(gamma, fold, alphas, shared) {
                return Ok(operator);
            }
            if forced.is_some() {
                return Err(RidgeError::Decomposition(format!(
                    "the Cholesky factorisation of a fold's Gram matrix plus one of the alphas \
                     {alphas:?}"
                )));
            }
        }
        self.eigen_operator(gamma, fold, alphas, n_targets)
    }

    /// The f64 flops of preparing one fold alone for `n_alphas` alphas, by
    /// per-alpha Cholesky and by the eigendecomposition (whose `9 d^3` weigh
    /// 1.5x, as it is memory-bound, plus half the f32 work it adds, see
    /// [`EigenExtra`]).
    fn fold_costs(&self, fold: &Fold, n_alphas: usize, n_targets: usize) -> (f64, f64) {
        let d = fold.train.len().min(self.x.cols) as f64;
        let n_val = fold.validation.len() as f64;
        let cholesky_flops = n_alphas as f64 * (d * d * d / 3.0 + 2.0 * d * d * n_val);
        let n_train = fold.train.len() as f64;
        let added = EigenExtra::cheaper(n_train, d, n_alphas as f64 * n_val, n_targets as f64);
        (cholesky_flops, 13.5 * d * d * d + added.1 / 2.0)
    }

    /// How many alphas the Schur route ([`FoldMethod::Schur`]) prepares at
    /// once, or `None` where it does not apply or costs more than preparing
    /// each fold alone. It applies on the kernel path when every fold's
    /// training and validation rows together are all rows, each once. Per
    /// alpha it costs `n^3` flops for the inverse (Cholesky, triangular
    /// inverse, product; weighed 1.15x, what it runs slower than the per-fold
    /// factorisations here) and per fold `n_val^3 / 3 + 2 n_val^2 n_train`;
    /// preparing each fold alone costs `n_train^3 / 3 + 2 n_train^2 n_val`
    /// per fold and alpha. So it wins with many folds (5 folds: 0.72x the
    /// flops; 20 folds: 0.2x) and loses with 2 or 3.
    ///
    /// It holds every fold's operator for the alphas of a group at once:
    /// groups are as large as keeps that under the bytes of Y at which memory
    /// starts to decide ([`Design::memory_bound`]); fewer groups mean fewer
    /// passes over Y and larger products (at n = 3000, v = 20000, 10 alphas
    /// in one group scored 5 folds in 12.4 s, in two groups of 5 in 17.5 s).
    fn schur_group_size(&self, folds: &[Fold], alphas: &[f64], y: &Matrix) -> Option<usize> {
        let forced = self.overrides.fold_method;
        if matches!(forced, Some(FoldMethod::Cholesky | FoldMethod::Eigen | FoldMethod::Downdate))
            || self.band_kernels.is_empty()
        {
            return None;
        }
        let n = self.x.rows;
        if !folds.iter().all(|fold| self.path(fold.train.len()) == Path::Kernel && splits_all_rows(fold, n)) {
            return None;
        }
        let n_alphas = alphas.len();
        if forced.is_none() {
            let per_fold: f64 = folds
                .iter()
                .map(|fold| {
                    let (cholesky, eigen) = self.fold_costs(fold, n_alphas, y.cols);
                    cholesky.min(eigen)
                })
                .sum();
            let solves: f64 = folds
                .iter()
                .map(|fold| {
                    let (t, v) = (fold.train.len() as f64, fold.validation.len() as f64);
                    v * v * v / 3.0 + 2.0 * v * v * t
                })
                .sum();
            let schur = 1.15 * n_alphas as f64 * ((n as f64).powi(3) + solves);
            if schur >= per_fold {
                return None;
            }
        }
        let per_alpha_bytes: usize =
            folds.iter().map(|fold| fold.train.len() * fold.validation.len() * std::mem::size_of::<f32>()).sum();
        let fits = self.memory_bound_bytes() / per_alpha_bytes.max(1);
        let groups = n_alphas.div_ceil(fits.clamp(1, n_alphas));
        Some(self.overrides.schur_group.unwrap_or(n_alphas.div_ceil(groups)))
    }

    /// Every fold's operator for `alphas` (kernel path) from the inverse of
    /// the whole kernel: with `P = (K + alpha I)^-1`, a fold's validation rows
    /// V and training rows T, `K_VT (K_TT + alpha I)^-1 = -P_VV^-1 P_VT` (the
    /// inverse of a principal block of `K + alpha I` is the Schur complement
    /// of the other block in P). One P per alpha, alphas in parallel lanes
    /// (see [`Design::lanes`]), each lane with two n x n f64 matrices of
    /// workspace (f32 for its alphas that factorise in f32, `scale` being
    /// the kernel's, see [`Design::single_precision`]; a
    /// lane does its f64 alphas first and drops their workspace). `None`
    /// when an alpha is below `1e-10 * trace(K)` (as for the per-fold
    /// Cholesky) or a factorisation fails.
    fn schur_operators(
        &self,
        kernel: MatRef<'_, f64>,
        scale: SpectralScale,
        folds: &[Fold],
        alphas: &[f64],
    ) -> Option<Vec<FoldOperator>> {
        let n = kernel.nrows();
        if alphas.iter().any(|&alpha| alpha < 1e-10 * trace(kernel)) {
            return None;
        }
        let mut stacked: Vec<Mat<f32>> =
            folds.iter().map(|fold| Mat::zeros(fold.train.len(), alphas.len() * fold.validation.len())).collect();
        // blocks[a][f]: the columns of fold f's operator that alpha a fills.
        let mut blocks: Vec<Vec<MatMut<'_, f32>>> = alphas.iter().map(|_| Vec::new()).collect();
        for (fold, operator) in folds.iter().zip(stacked.iter_mut()) {
            let chunks: Vec<MatMut<'_, f32>> = operator.par_col_chunks_mut(fold.validation.len()).collect();
            for (a, chunk) in chunks.into_iter().enumerate() {
                blocks[a].push(chunk);
            }
        }
        let (workers, par) = self.lanes(alphas.len(), 2 * n * n * std::mem::size_of::<f64>(), false);
        let lanes = into_lanes(alphas.iter().copied().zip(blocks), workers);
        let factorised = lanes.into_par_iter().map(|lane| {
            let (single, double): (Vec<_>, Vec<_>) =
                lane.into_iter().partition(|(alpha, _)| self.single_precision(scale, *alpha));
            schur_lane::<f64>(kernel, folds, double, par) && schur_lane::<f32>(kernel, folds, single, par)
        });
        if !factorised.all(|ok| ok) {
            return None;
        }
        Some(
            stacked
                .into_iter()
                .map(|stacked_t| FoldOperator { left: None, stacked_t, validation_rows: None })
                .collect(),
        )
    }

    /// SVD path: `stacked[a] = X_val D (D G_train D + alpha I)^-1 D` (stored
    /// transposed), applied to `X_train^T Y_train`. Kernel path: `stacked[a] = K_val,train
    /// (K_train + alpha I)^-1`, applied to `Y_train` directly. Alphas in
    /// parallel lanes (see [`Design::lanes`]). `None` when an alpha is below
    /// `1e-10 * trace(Gram)` or a factorisation fails.
    fn cholesky_operator(&self, gamma: &[f64], fold: &Fold, alphas: &[f64], shared: bool) -> Option<FoldOperator> {
        let n_val = fold.validation.len();
        let mut validation_rows = None;
        // X_V in f64 where the fold uses the shared projection, for the check below.
        let mut shared_validation = None;
        let (gram, rhs, scales, left) = match self.path(fold.train.len()) {
            Path::Svd => {
                let scales = self.feature_scales(gamma);
                let validation = self.rows64(&fold.validation);
                let mut gram = self.train_gram(fold, &validation, Par::rayon(0));
                scale_symmetric(&mut gram, &scales);
                let mut rhs = validation.transpose().to_owned();
                scale_rows(&mut rhs, &scales);
                let (train, val) = (&fold.train, &fold.validation);
                let left = if shared {
                    validation_rows = Some(Mat::<f32>::from_fn(val.len(), self.x.cols, |i, j| self.x.get(val[i], j)));
                    shared_validation = Some(validation);
                    None
                } else {
                    Some(Mat::<f32>::from_fn(train.len(), self.x.cols, |i, j| self.x.get(train[i], j)))
                };
                (gram, rhs, Some(scales), left)
            }
            Path::Kernel => {
                let gram = self.kernel_block(gamma, &fold.train, &fold.train);
                let rhs = self.kernel_block(gamma, &fold.train, &fold.validation);
                (gram, rhs, None, None)
            }
        };
        let rank = gram.nrows();
        // Cholesky's error grows like trace / alpha * f64::EPSILON; below this
        // the eigendecomposition, which drops directions under rounding
        // level, is the accurate route.
        if alphas.iter().any(|&alpha| alpha < 1e-10 * trace(gram.as_ref())) {
            return None;
        }
        let mut stacked_t = Mat::<f32>::zeros(rank, alphas.len() * n_val);
        let (workers, par) = self.lanes(alphas.len(), (rank * rank + rank * n_val) * std::mem::size_of::<f64>(), false);
        let blocks: Vec<MatMut<'_, f32>> = stacked_t.par_col_chunks_mut(n_val.max(1)).collect();
        let lanes = into_lanes(alphas.iter().copied().zip(blocks), workers);
        let factorised = lanes.into_par_iter().map(|lane| {
            let (mut system, mut solution) = (Mat::<f64>::zeros(rank, rank), Mat::<f64>::zeros(rank, n_val));
            lane.into_iter().all(|(alpha, block)| {
                if !cholesky_shifted(&mut system, gram.as_ref(), alpha, par) {
                    return false;
                }
                solution.copy_from(&rhs);
                cholesky_solve_in_place(system.as_ref(), solution.as_mut(), par);
                if let Some(scales) = &scales {
                    scale_rows(&mut solution, scales);
                }
                copy_tiled(solution.as_ref(), block, |v| v as f32);
                true
            })
        });
        if !factorised.all(|ok| ok) {
            return None;
        }
        // `B = X_V O^T` at the smallest alpha (O: the operator), from its block.
        let smallest = (0..alphas.len()).min_by(|&a, &b| alphas[a].total_cmp(&alphas[b])).unwrap_or(0);
        if let Some(x_val) = shared_validation {
            let block = stacked_t.subcols(smallest * n_val, n_val);
            let block64 = Mat::<f64>::from_fn(rank, n_val, |k, i| block[(k, i)] as f64);
            let mut b = Mat::<f64>::zeros(n_val, n_val);
            matmul(b.as_mut(), Accum::Replace, x_val.as_ref(), block64.as_ref(), 1.0, Par::rayon(0));
            // I - X_V P X_V^T = (I + B)^-1 (Woodbury), B symmetric.
            let symmetric = Mat::<f64>::from_fn(n_val, n_val, |i, j| 0.5 * (b[(i, j)] + b[(j, i)]));
            if 1.0 / (1.0 + largest_eigenvalue(symmetric.as_ref())) < CANCELLATION_FLOOR {
                let train = &fold.train;
                let left = Mat::<f32>::from_fn(train.len(), self.x.cols, |i, j| self.x.get(train[i], j));
                return Some(FoldOperator { left: Some(left), stacked_t, validation_rows: None });
            }
        }
        Some(FoldOperator { left, stacked_t, validation_rows })
    }

    /// `stacked[a] = X_val R diag(1 / (lambda + alpha))` (transposed), applied
    /// to `L^T Y_train`.
    ///
    /// With many targets the projection `L^T Y_train` is folded into the
    /// operator instead (`stacked_t = L stacked_t`, one product per fold)
    /// when that costs fewer flops.
    fn eigen_operator(
        &self,
        gamma: &[f64],
        fold: &Fold,
        alphas: &[f64],
        n_targets: usize,
    ) -> Result<FoldOperator, RidgeError> {
        let spectrum = self.decompose_fold(gamma, fold, Par::rayon(0))?;
        let n_val = fold.validation.len();
        let rank = spectrum.lambdas.len();
        let stacked_t = Mat::from_fn(rank, alphas.len() * n_val, |k, j| {
            let factor = 1.0 / (spectrum.lambdas[k] + alphas[j / n_val]);
            spectrum.validation_design[(j % n_val, k)] * factor as f32
        });
        let n_train = fold.train.len() as f64;
        let n_predictions = (alphas.len() * n_val) as f64;
        match EigenExtra::cheaper(n_train, rank as f64, n_predictions, n_targets as f64).0 {
            EigenExtra::Project => Ok(FoldOperator { left: Some(spectrum.left), stacked_t, validation_rows: None }),
            EigenExtra::Fold => {
                let mut folded = Mat::<f32>::zeros(fold.train.len(), alphas.len() * n_val);
                let par = Par::rayon(0);
                matmul(folded.as_mut(), Accum::Replace, spectrum.left.as_ref(), stacked_t.as_ref(), 1.0, par);
                Ok(FoldOperator { left: None, stacked_t: folded, validation_rows: None })
            }
        }
    }

    fn decompose_fold(&self, gamma: &[f64], fold: &Fold, par: Par) -> Result<FoldSpectrum, RidgeError> {
        let what = || format!("the eigensolver did not converge on a fold ({} rows)", fold.train.len());
        match self.path(fold.train.len()) {
            Path::Svd => {
                let scales = self.feature_scales(gamma);
                let validation = self.rows64(&fold.validation);
                let mut gram = self.train_gram(fold, &validation, par);
                scale_symmetric(&mut gram, &scales);
                let (lambdas, mut vectors) = eigh_descending(gram.as_ref(), fold.train.len(), par, what)?;
                drop(gram);
                scale_rows(&mut vectors, &scales);
                let train = self.rows64(&fold.train);
                let left = product_f32(train.as_ref(), vectors.as_ref(), par);
                let validation_design = product_f32(validation.as_ref(), vectors.as_ref(), par);
                Ok(FoldSpectrum { lambdas, left, validation_design })
            }
            Path::Kernel => {
                let kernel = self.kernel_block(gamma, &fold.train, &fold.train);
                let (lambdas, vectors) = eigh_descending(kernel.as_ref(), self.x.cols, par, what)?;
                drop(kernel);
                let cross = self.kernel_block(gamma, &fold.validation, &fold.train);
                let validation_design = product_f32(cross.as_ref(), vectors.as_ref(), par);
                Ok(FoldSpectrum { lambdas, left: to_f32(vectors.as_ref()), validation_design })
            }
        }
    }

    /// Bytes that [`Design::decompose_full`] holds at its peak: the
    /// eigensolver's workspace and its f64 eigenvectors.
    fn full_decomposition_bytes(&self) -> usize {
        let dim = match self.path(self.x.rows) {
            Path::Svd => self.x.cols,
            Path::Kernel => self.x.rows,
        };
        let scratch = self_adjoint_evd_scratch::<f64>(dim, ComputeEigenvectors::Yes, Par::Seq, Default::default());
        scratch.size_bytes() + dim * dim * std::mem::size_of::<f64>()
    }

    /// Whether Y is large enough that memory, not time, decides: more than 4x
    /// the refit decomposition's working memory. Then the folds are prepared
    /// one at a time, the Schur route is not taken, and the refit's direct
    /// operators are built one after the other, each on all threads.
    fn memory_bound(&self, y: &Matrix) -> bool {
        std::mem::size_of_val(y.data.as_slice()) > self.memory_bound_bytes()
    }

    /// The bytes of Y above which memory decides (see [`Design::memory_bound`]).
    fn memory_bound_bytes(&self) -> usize {
        4 * self.full_decomposition_bytes()
    }

    /// Whether the folds take the downdate route ([`FoldMethod::Downdate`]):
    /// on the SVD path with folds that each split all rows (unit band
    /// weights: [`ridge_cv`], not the banded search). It costs one
    /// eigendecomposition of `X^T X` (`9 p^3`, weighed 1.5x as for the
    /// per-fold one) and `X U` (`2 n p^2`), then per fold and alpha
    /// `4 n_val^2 p + n_val^3 / 3`; preparing each fold alone costs per fold
    /// and alpha a Cholesky factorisation and a solve, `p^3 / 3 + 2 p^2
    /// n_val` (see [`Design::fold_costs`]). It wins with many folds and
    /// alphas: leave-one-story-out on 25 stories, n = 9000, p = 3072, 10
    /// alphas is 0.24x the flops. Like the shared projection, it holds a
    /// p x n_targets projection (`Z^T Y`), so where memory decides it needs
    /// the same room (see [`Design::shared_projection`]).
    fn downdate_applies(&self, folds: &[Fold], alphas: &[f64], y: &Matrix, memory_bound: bool) -> bool {
        let forced = self.overrides.fold_method;
        if matches!(forced, Some(FoldMethod::Cholesky | FoldMethod::Eigen | FoldMethod::Schur)) {
            return false;
        }
        let n = self.x.rows;
        let applies = !folds.is_empty()
            && self.band_ranges.len() == 1
            && self.feature_gram.is_some()
            && folds.iter().all(|fold| self.path(fold.train.len()) == Path::Svd && splits_all_rows(fold, n));
        if !applies || forced == Some(FoldMethod::Downdate) {
            return applies;
        }
        if folds.len() < 2 {
            return false;
        }
        let (n_alphas, p) = (alphas.len() as f64, self.x.cols as f64);
        let per_fold: f64 = folds
            .iter()
            .map(|fold| {
                let (cholesky, eigen) = self.fold_costs(fold, alphas.len(), y.cols);
                cholesky.min(eigen)
            })
            .sum();
        let solves: f64 = folds
            .iter()
            .map(|fold| {
                let v = fold.validation.len() as f64;
                4.0 * v * v * p + v * v * v / 3.0
            })
            .sum();
        let downdate = 13.5 * p * p * p + 2.0 * n as f64 * p * p + n_alphas * solves;
        let bytes = self.x.cols * y.cols * std::mem::size_of::<f32>();
        let fits = !memory_bound
            || 3 * bytes <= std::mem::size_of_val(y.data.as_slice()) + std::mem::size_of_val(self.x.data.as_slice());
        fits && downdate < per_fold
    }

    /// The downdate route's shared decomposition: `X^T X = U diag(lambda)
    /// U^T` (directions under rounding level dropped, as for the refit) and
    /// `Z = X U` in f64. `None` when an alpha is below `1e-10 * trace(X^T X)`
    /// (a fold's own Gram matrix may then be singular where the whole one is
    /// not, which the per-fold eigendecomposition handles).
    fn downdate_spectrum(&self, alphas: &[f64], par: Par) -> Result<Option<DowndateSpectrum>, RidgeError> {
        let gram = self.feature_gram.as_ref().expect("feature Gram computed for the SVD path");
        if alphas.iter().any(|&alpha| alpha < 1e-10 * trace(gram.as_ref())) {
            return Ok(None);
        }
        let what = || format!("the eigensolver did not converge on X ({} x {})", self.x.rows, self.x.cols);
        let (lambdas, vectors) = eigh_descending(gram.as_ref(), self.x.rows, par, what)?;
        let all: Vec<usize> = (0..self.x.rows).collect();
        let x64 = self.rows64(&all);
        let mut z = Mat::<f64>::zeros(self.x.rows, lambdas.len());
        matmul(z.as_mut(), Accum::Replace, x64.as_ref(), vectors.as_ref(), 1.0, par);
        Ok(Some(DowndateSpectrum { lambdas, vectors, z }))
    }

    /// Whether the downdate route serves `fold` accurately: the training rows
    /// keep at least CANCELLATION_FLOOR of every direction at the smallest
    /// alpha (the least eigenvalue of `I - A Z_V^T`). Where they keep less,
    /// the operator multiplies that direction by up to `1 / alpha`, and in
    /// the eigenbasis the f32 rounding of every component of the projection
    /// reaches it (in X's own columns a feature that the training rows lack
    /// is an exact zero), so the fold is prepared alone instead.
    fn downdate_serves(&self, spectrum: &DowndateSpectrum, z_val: MatRef<'_, f64>, smallest_alpha: f64) -> bool {
        let mut system = Mat::<f64>::zeros(z_val.nrows(), z_val.nrows());
        downdate_system(spectrum, z_val, smallest_alpha, &mut system, Par::rayon(0));
        // -(I - A Z_V^T), symmetrised: its largest eigenvalue is minus the least kept share.
        let negated =
            Mat::<f64>::from_fn(system.nrows(), system.ncols(), |i, j| -0.5 * (system[(i, j)] + system[(j, i)]));
        -largest_eigenvalue(negated.as_ref()) >= CANCELLATION_FLOOR
    }

    /// One fold's operator on the downdate route, in the eigenbasis. With
    /// `P = (X^T X + alpha I)^-1 = U diag(1 / (lambda + alpha)) U^T`, the
    /// validation rows `Z_V = X_V U` and `A = Z_V diag(1 / (lambda + alpha))`,
    /// Woodbury gives `X_V (X_T^T X_T + alpha I)^-1 = (I - A Z_V^T)^-1 A U^T`
    /// (`A Z_V^T = X_V P X_V^T`), and `U^T X_T^T Y_T = Z^T Y - Z_V^T Y_V`. So
    /// the operator is `S = (I - A Z_V^T)^-1 A` (Cholesky of the n_val x
    /// n_val matrix, whose eigenvalues lie in (0, 1]), applied to `Z^T Y -
    /// Z_V^T Y_V`: `validation_rows` holds `Z_V`, and the scoring's shared
    /// projection is `Z^T Y`. Alphas in parallel lanes (see
    /// [`Design::lanes`]). `None` when a factorisation fails.
    fn downdate_operator(
        &self,
        spectrum: &DowndateSpectrum,
        z_val: MatRef<'_, f64>,
        alphas: &[f64],
    ) -> Option<FoldOperator> {
        let (n_val, rank) = (z_val.nrows(), spectrum.lambdas.len());
        let mut stacked_t = Mat::<f32>::zeros(rank, alphas.len() * n_val);
        let (workers, par) =
            self.lanes(alphas.len(), (n_val * n_val + n_val * rank) * std::mem::size_of::<f64>(), false);
        let blocks: Vec<MatMut<'_, f32>> = stacked_t.par_col_chunks_mut(n_val.max(1)).collect();
        let lanes = into_lanes(alphas.iter().copied().zip(blocks), workers);
        let factorised = lanes.into_par_iter().map(|lane| {
            let mut system = Mat::<f64>::zeros(n_val, n_val);
            lane.into_iter().all(|(alpha, block)| {
                let mut solution = downdate_system(spectrum, z_val, alpha, &mut system, par);
                if !cholesky_lower(system.as_mut(), par) {
                    return false;
                }
                cholesky_solve_in_place(system.as_ref(), solution.as_mut(), par);
                copy_tiled(solution.transpose(), block, |v| v as f32);
                true
            })
        });
        if !factorised.all(|ok| ok) {
            return None;
        }
        let validation_rows = Some(to_f32(z_val));
        Some(FoldOperator { left: None, stacked_t, validation_rows })
    }

    /// Whether the SVD path's folds take their training projection from one
    /// shared `X^T Y` (p x n_targets f32), as `X^T Y - X_val^T Y_val`: per
    /// fold `2 p n_val` f32 flops per target instead of `2 p n_train`, for
    /// `2 p n` once. Taken with 4 folds or more that each split all rows,
    /// when the SVD path serves every fold; when Y is large enough that
    /// memory decides, only if `X^T Y` is at most a third of the bytes of X
    /// and Y (p at most about n / 3).
    fn shared_projection(&self, folds: &[Fold], y: &Matrix, memory_bound: bool) -> bool {
        let n = self.x.rows;
        let applies = folds.len() >= 4
            && folds.iter().all(|fold| self.path(fold.train.len()) == Path::Svd && splits_all_rows(fold, n));
        if !applies || self.overrides.fold_method == Some(FoldMethod::Eigen) {
            return false;
        }
        if let Some(forced) = self.overrides.shared_projection {
            return forced;
        }
        let bytes = self.x.cols * y.cols * std::mem::size_of::<f32>();
        !memory_bound
            || 3 * bytes <= std::mem::size_of_val(y.data.as_slice()) + std::mem::size_of_val(self.x.data.as_slice())
    }

    /// `X^T Y` when [`Design::shared_projection`] says the folds share it.
    fn shared_projection_of(
        &self,
        folds: &[Fold],
        y: &Matrix,
        memory_bound: bool,
        target_batch: usize,
    ) -> Option<Mat<f32>> {
        if !self.shared_projection(folds, y, memory_bound) {
            return None;
        }
        let started = std::time::Instant::now();
        let projection = shared_projection(self.x.as_faer(), y, target_batch);
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "ridge: shared projection X^T Y");
        Some(projection)
    }

    /// How many of `n_items` alphas to prepare at once, and the parallelism
    /// of the factorisations inside each: one per thread (sequential
    /// kernels, the fastest use of the cores), but no more than
    /// `per_worker` bytes of workspace each fit in half the size of Y at
    /// which memory decides ([`Design::memory_bound`]), so that a machine
    /// with many cores does not hold a workspace per core; the threads left
    /// over go to the kernels of each. With `memory_first`, one at a time on
    /// all threads.
    fn lanes(&self, n_items: usize, per_worker: usize, memory_first: bool) -> (usize, Par) {
        let threads = rayon::current_num_threads().max(1);
        let fits = if memory_first { 1 } else { (self.memory_bound_bytes() / 2) / per_worker.max(1) };
        let workers = self.overrides.workers.unwrap_or(threads.min(fits)).clamp(1, n_items.max(1));
        let inner = threads / workers;
        (workers, if inner > 1 { Par::rayon(inner) } else { Par::Seq })
    }

    /// The refit's solver for targets with alphas `alphas` (one per target;
    /// unit band weights). Per distinct alpha a direct operator costs
    /// `m^3 / 3 + 2 m^2 k` f64 flops (`m = min(n, p)`, `k = max(n, p)`: a
    /// Cholesky factorisation and a solve with X) and saves `2 m^2` f32 flops
    /// per target against the spectrum, which costs a fixed `8 m^3` (the
    /// eigendecomposition, as measured here) plus `2 n p m` f32 flops (`X V`
    /// or `X^T U`); f32 flops weigh half. The alphas with the most targets
    /// go direct first; the count that costs least is taken, as many as fit
    /// in the memory the spectrum would hold (its working memory and `L`,
    /// `R`: 9 operators at n = 3000, p = 3072). Building one takes an f64
    /// copy of the Gram matrix and of X, in parallel lanes (see
    /// [`Design::lanes`]).
    /// Alphas below `1e-10 * trace(Gram)` always take the spectrum, which is
    /// the accurate route there (see [`Design::cholesky_operator`]).
    fn refit_solver(
        &self,
        alphas: &[f64],
        memory_first: bool,
        spectrum: Option<FullSpectrum>,
    ) -> Result<RefitSolver, RidgeError> {
        // A spectrum already computed (the downdate route's) serves every
        // alpha for less than any direct operator costs.
        if let Some(spectrum) = spectrum.filter(|_| self.overrides.refit != Some(RefitRoute::Direct)) {
            return Ok(RefitSolver { spectrum: Some(spectrum), direct: Vec::new() });
        }
        let (n, p) = (self.x.rows as f64, self.x.cols as f64);
        let path = self.path(self.x.rows);
        let (m, k) = match path {
            Path::Svd => (p, n),
            Path::Kernel => (n, p),
        };
        let tiny = 1e-10 * self.full_gram().map_or(0.0, |gram| trace(gram.as_ref()));
        let mut counts: Vec<(f64, usize)> = Vec::new();
        for &alpha in alphas {
            match counts.iter_mut().find(|(a, _)| *a == alpha) {
                Some((_, count)) => *count += 1,
                None => counts.push((alpha, 1)),
            }
        }
        // Candidates for the direct route, most targets first.
        let mut candidates: Vec<(f64, usize)> = counts.iter().copied().filter(|&(alpha, _)| alpha >= tiny).collect();
        // Targets whose alpha is too small for Cholesky: always the spectrum.
        let spectrum_only: usize = counts.iter().filter(|&&(alpha, _)| alpha < tiny).map(|c| c.1).sum();
        candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.total_cmp(&b.0)));
        let operator_bytes = self.x.rows * self.x.cols * std::mem::size_of::<f32>();
        let spectrum_bytes = self.full_decomposition_bytes() + (n + p) as usize * m as usize * 4;
        let max_direct = (spectrum_bytes / operator_bytes.max(1)).max(1);
        let direct_cost = m * m * m / 3.0 + 2.0 * m * m * k;
        let spectrum_fixed = 8.0 * m * m * m + n * p * m;
        let cost = |count: usize| {
            let rest: usize = candidates[count..].iter().map(|c| c.1).sum::<usize>() + spectrum_only;
            count as f64 * direct_cost + if rest > 0 { spectrum_fixed + rest as f64 * m * m } else { 0.0 }
        };
        let mut n_direct = match self.overrides.refit {
            Some(RefitRoute::Spectrum) => 0,
            Some(RefitRoute::Direct) => candidates.len(),
            None => (0..=candidates.len().min(max_direct)).min_by(|&a, &b| cost(a).total_cmp(&cost(b))).unwrap_or(0),
        };
        let started = std::time::Instant::now();
        let workspace = (m * m + n * p) as usize * std::mem::size_of::<f64>();
        let (workers, par) = self.lanes(n_direct, workspace, memory_first);
        let lanes = into_lanes(candidates[..n_direct].iter().map(|&(alpha, _)| alpha), workers);
        // Estimated here, before the lanes: a lane that waited on another's
        // estimate could, through rayon's work stealing, run a third lane
        // that waits on the same estimate on the same thread.
        let scale = if n_direct > 0 { self.gram_scale() } else { SpectralScale::UNKNOWN };
        let built: Vec<Vec<(f64, Option<Mat<f32>>)>> = lanes
            .into_par_iter()
            .map(|lane| lane.into_iter().map(|alpha| (alpha, self.direct_operator(alpha, scale, par))).collect())
            .collect();
        let direct: Vec<(f64, Mat<f32>)> =
            built.into_iter().flatten().filter_map(|(alpha, operator)| operator.map(|o| (alpha, o))).collect();
        n_direct = direct.len();
        if n_direct > 0 {
            tracing::debug!(alphas = n_direct, seconds = started.elapsed().as_secs_f64(), "ridge: refit operators");
        }
        let needs_spectrum = alphas.iter().any(|a| !direct.iter().any(|(d, _)| d == a));
        let spectrum = if needs_spectrum { Some(self.decompose_full(&[1.0], Par::rayon(0))?) } else { None };
        Ok(RefitSolver { spectrum, direct })
    }

    /// The Gram matrix of all rows the refit solves with (unit band weights):
    /// `X^T X` on the SVD path, the kernel on the kernel path.
    fn full_gram(&self) -> Option<&Mat<f64>> {
        match self.path(self.x.rows) {
            Path::Svd => self.feature_gram.as_ref(),
            Path::Kernel => self.band_kernels.first(),
        }
    }

    /// `A = X^T (K + alpha I)^-1` on the kernel path, `(X^T X + alpha I)^-1 X^T`
    /// on the SVD path (p x n, in f32 from a Cholesky solve with X, in f64 or,
    /// where [`Design::single_precision`] allows for the Gram matrix's
    /// `scale`, in f32); `None` when the factorisation fails.
    fn direct_operator(&self, alpha: f64, scale: SpectralScale, par: Par) -> Option<Mat<f32>> {
        if self.single_precision(scale, alpha) {
            self.direct_operator_in::<f32>(alpha, par)
        } else {
            self.direct_operator_in::<f64>(alpha, par)
        }
    }

    fn direct_operator_in<T: Real>(&self, alpha: f64, par: Par) -> Option<Mat<f32>> {
        let (n, p) = (self.x.rows, self.x.cols);
        let path = self.path(n);
        let gram = self.full_gram()?;
        let mut system = Mat::<T>::zeros(gram.nrows(), gram.ncols());
        if !cholesky_shifted(&mut system, gram.as_ref(), alpha, par) {
            return None;
        }
        // Kernel path: solve with X (n x p), A is the transpose; SVD path:
        // solve with X^T (p x n), A is the solution. The kernel path's copies
        // in and out transpose, so they go in tiles (in 0.14 s -> 0.06 s, out
        // 0.11 s -> 0.06 s at n = 3000, p = 3072).
        let mut solution = match path {
            Path::Kernel => {
                let mut solution = Mat::<T>::zeros(n, p);
                copy_tiled(self.x.as_faer(), solution.as_mut(), |v| T::of(v as f64));
                solution
            }
            Path::Svd => Mat::<T>::from_fn(p, n, |i, j| T::of(self.x.get(j, i) as f64)),
        };
        cholesky_solve_in_place(system.as_ref(), solution.as_mut(), par);
        drop(system);
        Some(match path {
            Path::Kernel => {
                let mut operator = Mat::<f32>::zeros(p, n);
                copy_tiled(solution.transpose(), operator.as_mut(), |v: T| v.narrow());
                operator
            }
            Path::Svd => Mat::<f32>::from_fn(p, n, |i, j| solution[(i, j)].narrow()),
        })
    }

    /// The refit's decomposition. The products with X (`X V` on the SVD
    /// path, `X^T U` on the kernel path) run in f32 on the f32 data.
    fn decompose_full(&self, gamma: &[f64], par: Par) -> Result<FullSpectrum, RidgeError> {
        let started = std::time::Instant::now();
        let full = self.decompose_full_untimed(gamma, par);
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "ridge: refit decomposition");
        full
    }

    fn decompose_full_untimed(&self, gamma: &[f64], par: Par) -> Result<FullSpectrum, RidgeError> {
        let what = || format!("the eigensolver did not converge on X ({} x {})", self.x.rows, self.x.cols);
        let scales = self.feature_scales(gamma);
        match self.path(self.x.rows) {
            Path::Svd => {
                let gram = self.feature_gram.as_ref().expect("feature Gram computed for the SVD path");
                // Unit band weights decompose the Gram matrix in place of a copy.
                let (lambdas, mut vectors) = if scales.iter().all(|&s| s == 1.0) {
                    eigh_descending(gram.as_ref(), self.x.rows, par, what)?
                } else {
                    let mut scaled = gram.clone();
                    scale_symmetric(&mut scaled, &scales);
                    eigh_descending(scaled.as_ref(), self.x.rows, par, what)?
                };
                scale_rows(&mut vectors, &scales);
                let right = to_f32(vectors.as_ref());
                let mut left = Mat::<f32>::zeros(self.x.rows, right.ncols());
                matmul(left.as_mut(), Accum::Replace, self.x.as_faer(), right.as_ref(), 1.0, par);
                Ok(FullSpectrum { lambdas, left, right })
            }
            Path::Kernel => {
                let (lambdas, vectors) = if let ([kernel], [1.0]) = (self.band_kernels.as_slice(), gamma) {
                    eigh_descending(kernel.as_ref(), self.x.cols, par, what)?
                } else {
                    let all: Vec<usize> = (0..self.x.rows).collect();
                    let kernel = self.kernel_block(gamma, &all, &all);
                    eigh_descending(kernel.as_ref(), self.x.cols, par, what)?
                };
                let left = to_f32(vectors.as_ref());
                // w = D b with b = (X D)^T U ..., so R = D^2 X^T U.
                let mut right = Mat::<f32>::zeros(self.x.cols, left.ncols());
                matmul(right.as_mut(), Accum::Replace, self.x.as_faer().transpose(), left.as_ref(), 1.0, par);
                if scales.iter().any(|&s| s != 1.0) {
                    for k in 0..right.ncols() {
                        for (f, scale) in scales.iter().enumerate() {
                            right[(f, k)] *= (scale * scale) as f32;
                        }
                    }
                }
                Ok(FullSpectrum { lambdas, left, right })
            }
        }
    }
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
    ridge_cv_inner(x, y, folds, config, Overrides::default(), Some(sink)).map(|r| (r.best_alphas, r.cv_scores))
}

fn ridge_cv_with(
    x: &Matrix,
    y: &Matrix,
    folds: &[Fold],
    config: &RidgeConfig,
    overrides: Overrides,
) -> Result<RidgeCvResult, RidgeError> {
    ridge_cv_inner(x, y, folds, config, overrides, None)
}

/// Where [`ridge_cv_streaming`] hands the refit weights, block by block
/// (the block's targets, their weights voxel-major).
type BlockSink<'a> = &'a mut dyn FnMut(&[usize], Matrix);

/// With a sink, the weights go there and the result's `weights` is empty (0 x 0).
fn ridge_cv_inner(
    x: &Matrix,
    y: &Matrix,
    folds: &[Fold],
    config: &RidgeConfig,
    overrides: Overrides,
    sink: Option<BlockSink<'_>>,
) -> Result<RidgeCvResult, RidgeError> {
    check_inputs(&[("X", x)], y)?;
    check_folds(folds, x.rows)?;
    check_alphas(&config.alphas)?;
    check_batch(config.target_batch)?;
    let started = std::time::Instant::now();
    let row_counts = folds.iter().map(|f| f.train.len()).chain([x.rows]);
    let design = Design::new(x, &[x.cols], row_counts, overrides);
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "ridge: Gram matrices");
    let unit = [1.0];
    let memory_first = overrides.memory_first.unwrap_or(design.memory_bound(y));
    // The refit's route depends on the alphas chosen, so the scoring comes
    // first; with large Y it prepares the folds one at a time.
    let forced_downdate = overrides.fold_method == Some(FoldMethod::Downdate);
    let downdate = if design.downdate_applies(folds, &config.alphas, y, memory_first) {
        let table = downdate_score_table(&design, y, folds, &config.alphas, config.score, config.target_batch)?;
        if table.is_none() && forced_downdate {
            return Err(RidgeError::Decomposition(format!(
                "the downdate route with the alphas {:?} (one below 1e-10 trace, or a fold's system not positive definite)",
                config.alphas
            )));
        }
        table
    } else if forced_downdate {
        return Err(RidgeError::Config("the downdate route needs the SVD path and folds that split all rows".into()));
    } else {
        None
    };
    let (table, spectrum) = match downdate {
        Some((table, spectrum)) => (table, Some(spectrum)),
        None => {
            let shared = design.shared_projection_of(folds, y, memory_first, config.target_batch);
            let table = cv_score_table(
                &design,
                &unit,
                y,
                folds,
                &config.alphas,
                config.score,
                config.target_batch,
                !memory_first,
                shared.as_ref(),
            )?;
            (table, None)
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
    let solver = design.refit_solver(&best_alphas, memory_first, spectrum)?;
    drop(design);
    let targets: Vec<usize> = (0..y.cols).collect();
    let started = std::time::Instant::now();
    if let Some(sink) = sink {
        refit_each(y, &solver, &targets, &best_alphas, config.target_batch, sink);
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "ridge: refit");
        return Ok(RidgeCvResult { best_alphas, cv_scores, weights: Matrix::zeros(0, 0) });
    }
    let mut weights = Matrix::zeros(x.cols, y.cols);
    refit(y, &solver, &targets, &best_alphas, config.target_batch, &mut weights);
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "ridge: refit");
    Ok(RidgeCvResult { best_alphas, cv_scores, weights })
}

fn fit_ridge_with(x: &Matrix, y: &Matrix, alphas: &[f64], overrides: Overrides) -> Result<Matrix, RidgeError> {
    check_inputs(&[("X", x)], y)?;
    check_alphas(alphas)?;
    if alphas.len() != 1 && alphas.len() != y.cols {
        return Err(RidgeError::Shape(format!(
            "{} alphas for {} targets (give one per target, or one for all)",
            alphas.len(),
            y.cols
        )));
    }
    let design = Design::new(x, &[x.cols], [x.rows].into_iter(), overrides);
    let targets: Vec<usize> = (0..y.cols).collect();
    let per_target: Vec<f64> = (0..y.cols).map(|t| alphas[if alphas.len() == 1 { 0 } else { t }]).collect();
    let solver = design.refit_solver(&per_target, design.memory_bound(y), None)?;
    let mut weights = Matrix::zeros(x.cols, y.cols);
    refit(y, &solver, &targets, &per_target, DEFAULT_TARGET_BATCH, &mut weights);
    Ok(weights)
}

/// A lane of [`Design::schur_operators`]: its alphas in precision `T`, with
/// one workspace for all of them (none when it has no alpha).
fn schur_lane<T: Real>(
    kernel: MatRef<'_, f64>,
    folds: &[Fold],
    alphas: Vec<(f64, Vec<MatMut<'_, f32>>)>,
    par: Par,
) -> bool {
    if alphas.is_empty() {
        return true;
    }
    let n = kernel.nrows();
    let (mut system, mut inverse) = (Mat::<T>::zeros(n, n), Mat::<T>::zeros(n, n));
    alphas
        .into_iter()
        .all(|(alpha, fold_blocks)| schur_alpha(kernel, folds, alpha, fold_blocks, &mut system, &mut inverse, par))
}

/// One alpha of [`Design::schur_operators`] in precision `T`: `P = (K +
/// alpha I)^-1` into `system` (`inverse` is workspace), then for each fold
/// its operator, `-(P_VV^-1 P_VT)^T`, into its block. False when a
/// factorisation fails.
fn schur_alpha<T: Real>(
    kernel: MatRef<'_, f64>,
    folds: &[Fold],
    alpha: f64,
    fold_blocks: Vec<MatMut<'_, f32>>,
    system: &mut Mat<T>,
    inverse: &mut Mat<T>,
    par: Par,
) -> bool {
    if !cholesky_shifted(system, kernel, alpha, par) {
        return false;
    }
    // P = L^-T L^-1, its lower triangle over L's.
    invert_lower_triangular(inverse.as_mut(), system.as_ref(), par);
    triangular::matmul(
        system.as_mut(),
        BlockStructure::TriangularLower,
        Accum::Replace,
        inverse.transpose(),
        BlockStructure::TriangularUpper,
        inverse.as_ref(),
        BlockStructure::TriangularLower,
        T::of(1.0),
        par,
    );
    mirror_lower(system);
    // Each fold's P_VV and P_VT go into `inverse`, free now and already in
    // memory (fresh buffers per fold and alpha cost page faults: gathering
    // them took about 4x as long).
    for (fold, mut block) in folds.iter().zip(fold_blocks) {
        let (train, validation) = (&fold.train, &fold.validation);
        let (n_val, n_train) = (validation.len(), train.len());
        let (mut corner, mut solution) =
            inverse.as_mut().submatrix_mut(0, 0, n_val, n_val + n_train).split_at_col_mut(n_val);
        for (mut target, columns) in [(corner.as_mut(), validation), (solution.as_mut(), train)] {
            for (j, &c) in columns.iter().enumerate() {
                let source = system.col_as_slice(c);
                let column = target.as_mut().col_mut(j).try_as_col_major_mut().expect("a column is contiguous");
                for (value, &r) in column.as_slice_mut().iter_mut().zip(validation) {
                    *value = source[r];
                }
            }
        }
        if !cholesky_lower(corner.as_mut(), par) {
            return false;
        }
        cholesky_solve_in_place(corner.as_ref(), solution.as_mut(), par);
        copy_tiled(solution.transpose(), block.as_mut(), |v: T| -v.narrow());
    }
    true
}

/// `destination = convert(source)` element by element, where `source` may
/// be a transposed or row-major view (the destination's columns must be
/// contiguous): the copy goes in tiles of 64 rows, so that neither side is
/// walked with a stride across the whole matrix. Every route's fold
/// operators and the refit's direct operators are stored through it.
fn copy_tiled<S: Copy, D>(source: MatRef<'_, S>, mut destination: MatMut<'_, D>, convert: impl Fn(S) -> D) {
    const TILE: usize = 64;
    let (rows, cols) = (destination.nrows(), destination.ncols());
    for first in (0..rows).step_by(TILE) {
        let count = TILE.min(rows - first);
        for j in 0..cols {
            let column = destination.as_mut().col_mut(j).try_as_col_major_mut().expect("a column is contiguous");
            for (k, value) in column.as_slice_mut()[first..first + count].iter_mut().enumerate() {
                *value = convert(source[(first + k, j)]);
            }
        }
    }
}

/// Copies the lower triangle of a square matrix into its upper triangle,
/// in 64 x 64 tiles.
fn mirror_lower<T: Copy>(m: &mut Mat<T>) {
    const TILE: usize = 64;
    let n = m.nrows();
    for first_col in (0..n).step_by(TILE) {
        for first_row in (0..=first_col).step_by(TILE) {
            for j in first_col..(first_col + TILE).min(n) {
                for i in first_row..(first_row + TILE).min(j) {
                    m[(i, j)] = m[(j, i)];
                }
            }
        }
    }
}

/// Validation scores, target-major: entry `t * n_alphas + a` is the score of
/// alpha `a` for target `t`, averaged over folds. Folds one after the other,
/// target batches in parallel. With `overlap`, the next fold's operator is
/// prepared while the current fold is scored (work-stealing fills the gaps
/// at the fold boundaries: the f64 factorisations then run while the last
/// batches of the scoring finish), at the price of two fold operators in
/// memory at once; without it, one at a time.
#[allow(clippy::too_many_arguments)]
fn cv_score_table(
    design: &Design<'_>,
    gamma: &[f64],
    y: &Matrix,
    folds: &[Fold],
    alphas: &[f64],
    score: CvScore,
    target_batch: usize,
    overlap: bool,
    shared: Option<&Mat<f32>>,
) -> Result<Vec<f64>, RidgeError> {
    let n_alphas = alphas.len();
    let mut table = vec![0.0; y.cols * n_alphas];
    let scoring = Scoring { y, folds, n_alphas, score, target_batch, shared };
    let prepare = |k: usize| -> Result<FoldOperator, RidgeError> {
        let started = std::time::Instant::now();
        let operator = design.fold_operator(gamma, &folds[k], alphas, y.cols, shared.is_some())?;
        tracing::debug!(fold = k, seconds = started.elapsed().as_secs_f64(), "ridge: fold operator");
        Ok(operator)
    };
    if folds.is_empty() {
        return Ok(table);
    }
    let forced_schur = design.overrides.fold_method == Some(FoldMethod::Schur);
    if overlap || forced_schur {
        if let Some(group) = design.schur_group_size(folds, alphas, y) {
            let all: Vec<usize>;
            let owned: Mat<f64>;
            let kernel = if let ([kernel], [1.0]) = (design.band_kernels.as_slice(), gamma) {
                kernel.as_ref()
            } else {
                all = (0..y.rows).collect();
                owned = design.kernel_block(gamma, &all, &all);
                owned.as_ref()
            };
            let scale = design.kernel_scale(gamma);
            let mut complete = true;
            for first_alpha in (0..n_alphas).step_by(group) {
                let group_alphas = &alphas[first_alpha..(first_alpha + group).min(n_alphas)];
                let started = std::time::Instant::now();
                let Some(operators) = design.schur_operators(kernel, scale, folds, group_alphas) else {
                    complete = false;
                    break;
                };
                tracing::debug!(
                    alphas = group_alphas.len(),
                    seconds = started.elapsed().as_secs_f64(),
                    "ridge: Schur fold operators"
                );
                scoring.all_folds(&operators, first_alpha, &mut table);
            }
            if complete {
                return Ok(table);
            }
            if forced_schur {
                return Err(RidgeError::Decomposition(format!(
                    "the Cholesky factorisation of the kernel plus one of the alphas {alphas:?}"
                )));
            }
            table.iter_mut().for_each(|value| *value = 0.0);
        } else if forced_schur {
            return Err(RidgeError::Config(
                "the Schur route needs the kernel path and folds that split all rows".into(),
            ));
        }
    }
    if !overlap {
        for k in 0..folds.len() {
            let operator = prepare(k)?;
            scoring.fold(k, &operator, 0, &mut table);
        }
        return Ok(table);
    }
    let mut operator = prepare(0)?;
    for k in 0..folds.len() {
        let (next, ()) = rayon::join(
            || (k + 1 < folds.len()).then(|| prepare(k + 1)).transpose(),
            || scoring.fold(k, &operator, 0, &mut table),
        );
        match next? {
            Some(next) => operator = next,
            None => break,
        }
    }
    Ok(table)
}

/// What scoring a fold needs besides its operator.
struct Scoring<'a> {
    y: &'a Matrix,
    folds: &'a [Fold],
    n_alphas: usize,
    score: CvScore,
    target_batch: usize,
    /// The projection that operators with `validation_rows` apply to.
    shared: Option<&'a Mat<f32>>,
}

impl Scoring<'_> {
    /// Adds the scores of the operator's alphas, `alphas[first_alpha..]`,
    /// on fold `k` to the table (weighted by one over the number of folds),
    /// target batches in parallel.
    fn fold(&self, k: usize, operator: &FoldOperator, first_alpha: usize, table: &mut [f64]) {
        let started = std::time::Instant::now();
        let (fold, n_alphas, target_batch) = (&self.folds[k], self.n_alphas, self.target_batch);
        let fold_weight = 1.0 / self.folds.len() as f64;
        let par = inner_parallelism(self.y.cols, target_batch);
        table.par_chunks_mut(target_batch * n_alphas).enumerate().for_each_init(
            ScoreBuffers::default,
            |buffers, (batch, out)| {
                let first = batch * target_batch;
                let cols = first..first + out.len() / n_alphas;
                let fold_scores =
                    FoldScores { fold, operator, n_alphas, first_alpha, score: self.score, par, shared: self.shared };
                fold_scores.add(self.y, cols, fold_weight, out, buffers);
            },
        );
        tracing::debug!(fold = k, seconds = started.elapsed().as_secs_f64(), "ridge: fold scores");
    }

    /// [`Scoring::fold`] for every fold at once, `operators[k]` being fold
    /// k's (the shared-inverse route holds them all): target batches in
    /// parallel, each batch's targets gathered from Y once, column-major,
    /// and each fold's rows copied out of that (runs of consecutive rows as
    /// slices), instead of gathered from row-major Y fold by fold (at n =
    /// 3000, v = 20000, 5 folds, those gathers took 0.7 s of the 15.7 s
    /// scoring). Each score is summed over the folds in the same order.
    fn all_folds(&self, operators: &[FoldOperator], first_alpha: usize, table: &mut [f64]) {
        let started = std::time::Instant::now();
        let (n_alphas, target_batch) = (self.n_alphas, self.target_batch);
        let fold_weight = 1.0 / self.folds.len() as f64;
        let par = inner_parallelism(self.y.cols, target_batch);
        let all_rows: Vec<usize> = (0..self.y.rows).collect();
        table.par_chunks_mut(target_batch * n_alphas).enumerate().for_each_init(
            || (ScoreBuffers::default(), Vec::new()),
            |(buffers, all), (batch, out)| {
                let first = batch * target_batch;
                let cols = first..first + out.len() / n_alphas;
                gather_columns(self.y, &all_rows, cols.clone(), all);
                let batch_targets = |rows: &[usize], target: &mut Vec<f32>| {
                    select_rows(all, self.y.rows, rows, cols.len(), target);
                };
                for (fold, operator) in self.folds.iter().zip(operators) {
                    let fold_scores = FoldScores {
                        fold,
                        operator,
                        n_alphas,
                        first_alpha,
                        score: self.score,
                        par,
                        shared: self.shared,
                    };
                    fold_scores.add_from(&batch_targets, cols.clone(), fold_weight, out, buffers);
                }
            },
        );
        tracing::debug!(
            folds = operators.len(),
            seconds = started.elapsed().as_secs_f64(),
            "ridge: fold scores, every fold per batch"
        );
    }
}

/// The score table (as [`cv_score_table`]) on the downdate route
/// ([`FoldMethod::Downdate`]), and the decomposition for the refit. Each
/// fold's operator is prepared while the previous fold is scored. `None`
/// when the route cannot serve these alphas (a tiny alpha, a failed
/// factorisation): the caller then prepares the folds one by one.
fn downdate_score_table(
    design: &Design<'_>,
    y: &Matrix,
    folds: &[Fold],
    alphas: &[f64],
    score: CvScore,
    target_batch: usize,
) -> Result<Option<(Vec<f64>, FullSpectrum)>, RidgeError> {
    let started = std::time::Instant::now();
    let Some(spectrum) = design.downdate_spectrum(alphas, Par::rayon(0))? else {
        return Ok(None);
    };
    // Z^T Y = U^T X^T Y, from Z in f32 (the refit's left factor as well).
    let left = to_f32(spectrum.z.as_ref());
    let rotated = shared_projection(left.as_ref(), y, target_batch);
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "ridge: downdate spectrum and Z^T Y");
    let n_alphas = alphas.len();
    let mut table = vec![0.0; y.cols * n_alphas];
    let scoring = Scoring { y, folds, n_alphas, score, target_batch, shared: Some(&rotated) };
    let smallest = alphas.iter().copied().fold(f64::INFINITY, f64::min);
    // A fold the route does not serve accurately is prepared alone, with
    // its own training projection.
    let prepare = |k: usize| -> Result<Option<FoldOperator>, RidgeError> {
        let started = std::time::Instant::now();
        let validation = &folds[k].validation;
        let z_val =
            Mat::<f64>::from_fn(validation.len(), spectrum.lambdas.len(), |i, j| spectrum.z[(validation[i], j)]);
        let operator = if design.downdate_serves(&spectrum, z_val.as_ref(), smallest) {
            design.downdate_operator(&spectrum, z_val.as_ref(), alphas)
        } else {
            tracing::debug!(fold = k, "ridge: the training rows lack a direction; fold prepared alone");
            Some(design.fold_operator(&[1.0], &folds[k], alphas, y.cols, false)?)
        };
        tracing::debug!(fold = k, seconds = started.elapsed().as_secs_f64(), "ridge: fold operator (downdate)");
        Ok(operator)
    };
    let Some(mut operator) = prepare(0)? else {
        return Ok(None);
    };
    for k in 0..folds.len() {
        let (next, ()) = rayon::join(
            || (k + 1 < folds.len()).then(|| prepare(k + 1)).transpose(),
            || scoring.fold(k, &operator, 0, &mut table),
        );
        match next? {
            Some(Some(next)) => operator = next,
            Some(None) => return Ok(None),
            None => break,
        }
    }
    drop(rotated);
    // The refit's spectrum: weights at alpha are U diag(1 / (lambda + alpha)) Z^T y.
    let DowndateSpectrum { lambdas, vectors, z } = spectrum;
    drop(z);
    Ok(Some((table, FullSpectrum { lambdas, left, right: to_f32(vectors.as_ref()) })))
}

/// The downdate route's system for one fold and alpha: returns `A = Z_V
/// diag(1 / (lambda + alpha))` (n_val x rank) and puts `I - A Z_V^T` into
/// `system` (n_val x n_val).
fn downdate_system(
    spectrum: &DowndateSpectrum,
    z_val: MatRef<'_, f64>,
    alpha: f64,
    system: &mut Mat<f64>,
    par: Par,
) -> Mat<f64> {
    let a = Mat::<f64>::from_fn(z_val.nrows(), z_val.ncols(), |i, k| z_val[(i, k)] / (spectrum.lambdas[k] + alpha));
    matmul(system.as_mut(), Accum::Replace, a.as_ref(), z_val.transpose(), -1.0, par);
    (0..system.nrows()).for_each(|i| system[(i, i)] += 1.0);
    a
}

/// Buffers reused across the batches that one worker scores.
#[derive(Default)]
struct ScoreBuffers {
    train_targets: Vec<f32>,
    projected: Vec<f32>,
    predictions: Vec<f32>,
    validation_targets: Vec<f32>,
}

/// One fold's scoring of a batch of targets.
struct FoldScores<'a> {
    fold: &'a Fold,
    operator: &'a FoldOperator,
    /// Alphas in the table (the operator may hold a group of them).
    n_alphas: usize,
    /// The table position of the operator's first alpha.
    first_alpha: usize,
    score: CvScore,
    par: Par,
    /// `X^T Y` (p x n_targets), for operators with `validation_rows`.
    shared: Option<&'a Mat<f32>>,
}

impl FoldScores<'_> {
    /// Adds `fold_weight` times the scores of targets `cols` to `out`
    /// (target-major, `n_alphas` entries per target) for the operator's alphas.
    fn add(&self, y: &Matrix, cols: Range<usize>, fold_weight: f64, out: &mut [f64], buffers: &mut ScoreBuffers) {
        let targets = |rows: &[usize], target: &mut Vec<f32>| gather_columns(y, rows, cols.clone(), target);
        self.add_from(&targets, cols.clone(), fold_weight, out, buffers);
    }

    /// [`FoldScores::add`] with the targets' rows from `targets(rows, out)`:
    /// `Y[rows, cols]` into `out`, column-major.
    fn add_from(
        &self,
        targets: &dyn Fn(&[usize], &mut Vec<f32>),
        cols: Range<usize>,
        fold_weight: f64,
        out: &mut [f64],
        buffers: &mut ScoreBuffers,
    ) {
        let (fold, operator) = (self.fold, self.operator);
        let n_targets = cols.len();
        let n_train = fold.train.len();
        let n_val = fold.validation.len();
        let rank = operator.stacked_t.nrows();
        let n_operator_alphas = operator.stacked_t.ncols() / n_val;

        // Validation targets, column-major (centred for Pearson below).
        targets(&fold.validation, &mut buffers.validation_targets);
        let rhs = match (&operator.validation_rows, &operator.left) {
            (Some(validation_rows), _) => {
                // X_train^T Y_train = X^T Y - X_val^T Y_val.
                let shared = self.shared.expect("the shared projection exists for operators that use it");
                buffers.projected.resize(rank * n_targets, 0.0);
                let mut projected = MatMut::from_column_major_slice_mut(&mut buffers.projected, rank, n_targets);
                projected.copy_from(shared.subcols(cols.start, n_targets));
                let validation_targets = MatRef::from_column_major_slice(&buffers.validation_targets, n_val, n_targets);
                matmul(projected, Accum::Add, validation_rows.transpose(), validation_targets, -1.0, self.par);
                MatRef::from_column_major_slice(&buffers.projected, rank, n_targets)
            }
            (None, Some(left)) => {
                targets(&fold.train, &mut buffers.train_targets);
                let train_targets = MatRef::from_column_major_slice(&buffers.train_targets, n_train, n_targets);
                buffers.projected.resize(rank * n_targets, 0.0);
                let projected = MatMut::from_column_major_slice_mut(&mut buffers.projected, rank, n_targets);
                matmul(projected, Accum::Replace, left.transpose(), train_targets, 1.0, self.par);
                MatRef::from_column_major_slice(&buffers.projected, rank, n_targets)
            }
            (None, None) => {
                targets(&fold.train, &mut buffers.train_targets);
                MatRef::from_column_major_slice(&buffers.train_targets, n_train, n_targets)
            }
        };
        let n_predictions = n_operator_alphas * n_val;
        buffers.predictions.resize(n_predictions * n_targets, 0.0);
        matmul(
            MatMut::from_column_major_slice_mut(&mut buffers.predictions, n_predictions, n_targets),
            Accum::Replace,
            operator.stacked_t.transpose(),
            rhs,
            1.0,
            self.par,
        );

        let mut target_norms = vec![0.0f64; n_targets];
        if self.score == CvScore::Pearson {
            for (j, column) in buffers.validation_targets.chunks_mut(n_val).enumerate() {
                let mean = column.iter().map(|&v| v as f64).sum::<f64>() / n_val as f64;
                column.iter_mut().for_each(|v| *v = (*v as f64 - mean) as f32);
                target_norms[j] = column.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            }
        }
        for j in 0..n_targets {
            let target = &buffers.validation_targets[j * n_val..(j + 1) * n_val];
            let column = &buffers.predictions[j * n_predictions..(j + 1) * n_predictions];
            for a in 0..n_operator_alphas {
                let prediction = &column[a * n_val..(a + 1) * n_val];
                let value = match self.score {
                    CvScore::L2 => negative_mse(target, prediction),
                    CvScore::Pearson => centred_pearson(target, target_norms[j], prediction),
                };
                out[j * self.n_alphas + self.first_alpha + a] += fold_weight * value;
            }
        }
    }
}

/// `X^T Y` (p x n_targets, column-major f32), batch by batch in parallel.
fn shared_projection(x: MatRef<'_, f32>, y: &Matrix, target_batch: usize) -> Mat<f32> {
    let mut projection = Mat::<f32>::zeros(x.ncols(), y.cols);
    let all: Vec<usize> = (0..y.rows).collect();
    let par = inner_parallelism(y.cols, target_batch);
    projection.par_col_chunks_mut(target_batch).enumerate().for_each_init(Vec::new, |gathered, (batch, out)| {
        let first = batch * target_batch;
        let n_targets = out.ncols();
        gather_columns(y, &all, first..first + n_targets, gathered);
        let targets = MatRef::from_column_major_slice(gathered, y.rows, n_targets);
        matmul(out, Accum::Replace, x.transpose(), targets, 1.0, par);
    });
    projection
}

/// `y[rows, cols]` into `out` as a column-major buffer (each target
/// contiguous: faer's products are about twice as fast with a column-major
/// right-hand side).
fn gather_columns(y: &Matrix, rows: &[usize], cols: Range<usize>, out: &mut Vec<f32>) {
    gather(y, rows, cols.len(), |j| cols.start + j, out);
}

/// `out[j * rows.len() + k] = Y[rows[k], column(j)]` for `j < n_cols`.
/// Rows go in tiles of 16, so that each output column is written 16 values
/// at a time while the tile's rows stay in cache (about 1.4x faster than
/// row by row).
fn gather(y: &Matrix, rows: &[usize], n_cols: usize, column: impl Fn(usize) -> usize, out: &mut Vec<f32>) {
    const TILE: usize = 16;
    let n_rows = rows.len();
    out.resize(n_rows * n_cols, 0.0);
    for (t, tile) in rows.chunks(TILE).enumerate() {
        let first = t * TILE;
        let sources: Vec<&[f32]> = tile.iter().map(|&i| y.row(i)).collect();
        for j in 0..n_cols {
            let c = column(j);
            let destination = &mut out[j * n_rows + first..j * n_rows + first + tile.len()];
            for (value, source) in destination.iter_mut().zip(&sources) {
                *value = source[c];
            }
        }
    }
}

/// `out[j * rows.len() + k] = source[j * n_rows + rows[k]]` for `j <
/// n_cols`: rows of a column-major buffer; each run of consecutive rows is
/// one slice copy per column.
fn select_rows(source: &[f32], n_rows: usize, rows: &[usize], n_cols: usize, out: &mut Vec<f32>) {
    let n_selected = rows.len();
    out.resize(n_selected * n_cols, 0.0);
    // (first row in the source, first position in the output, length)
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for (k, &r) in rows.iter().enumerate() {
        match runs.last_mut() {
            Some((start, at, length)) if *start + *length == r && *at + *length == k => *length += 1,
            _ => runs.push((r, k, 1)),
        }
    }
    for (column, destination) in source.chunks_exact(n_rows.max(1)).zip(out.chunks_exact_mut(n_selected.max(1))) {
        for &(start, at, length) in &runs {
            destination[at..at + length].copy_from_slice(&column[start..start + length]);
        }
    }
}

fn negative_mse(target: &[f32], prediction: &[f32]) -> f64 {
    let sum: f64 = target
        .iter()
        .zip(prediction)
        .map(|(&t, &p)| {
            let d = t as f64 - p as f64;
            d * d
        })
        .sum();
    -sum / target.len() as f64
}

/// Pearson r between a centred target (with its norm) and a prediction; 0
/// when either is constant.
fn centred_pearson(target: &[f32], target_norm: f64, prediction: &[f32]) -> f64 {
    let n = target.len() as f64;
    let (mut sum, mut sum_sq, mut cross) = (0.0f64, 0.0f64, 0.0f64);
    for (&t, &p) in target.iter().zip(prediction) {
        let p = p as f64;
        sum += p;
        sum_sq += p * p;
        cross += t as f64 * p;
    }
    let prediction_norm = (sum_sq - sum * sum / n).max(0.0).sqrt();
    if prediction_norm > 0.0 && target_norm > 0.0 {
        cross / (prediction_norm * target_norm)
    } else {
        0.0
    }
}

/// himalaya's choice: the argmax of `score + 1e-10 ln(alpha)`, first on ties;
/// returns the index and that tilted score.
pub(crate) fn best_alpha(scores: &[f64], alphas: &[f64]) -> (usize, f64) {
    let mut best = (0, f64::NEG_INFINITY);
    for (a, (&score, &alpha)) in scores.iter().zip(alphas).enumerate() {
        let tilted = score + 1e-10 * alpha.ln();
        if tilted > best.1 {
            best = (a, tilted);
        }
    }
    best
}

/// Writes `right diag(1 / (lambda + alpha_t)) left^T y_t` into the columns
/// `targets` of `weights`, batch by batch in parallel.
fn refit(
    y: &Matrix,
    solver: &RefitSolver,
    targets: &[usize],
    alphas: &[f64],
    target_batch: usize,
    weights: &mut Matrix,
) {
    let n_cols = weights.cols;
    // Transposed into the p x n_targets weights in parallel, 64 feature rows
    // per task: the block's rows are read contiguously and the 64 rows
    // written to stay in cache.
    const ROWS: usize = 64;
    refit_each(y, solver, targets, alphas, target_batch, &mut |batch, block| {
        let n_features = block.cols;
        weights.data.par_chunks_mut(ROWS * n_cols).enumerate().for_each(|(chunk, rows)| {
            let first = chunk * ROWS;
            let count = rows.len() / n_cols.max(1);
            for (j, &t) in batch.iter().enumerate() {
                let source = &block.data[j * n_features + first..j * n_features + first + count];
                for (f, &value) in source.iter().enumerate() {
                    rows[f * n_cols + t] = value;
                }
            }
        });
    });
}

/// The refit weights of `targets`, handed to `sink` one batch at a time, in
/// order: `(batch's targets, batch x p block)`, voxel-major (faer writes a
/// column-major p x batch product about 20% faster than a row-major one, and
/// it is the layout written to disk). Batches run in parallel in
/// groups of one per thread, and a group is computed while the sink takes
/// the previous one, so at most twice that many blocks exist at once.
fn refit_each(
    y: &Matrix,
    solver: &RefitSolver,
    targets: &[usize],
    alphas: &[f64],
    target_batch: usize,
    sink: BlockSink<'_>,
) {
    let n_rows = y.rows;
    let n_features = match (&solver.spectrum, solver.direct.first()) {
        (Some(spectrum), _) => spectrum.right.nrows(),
        (None, Some((_, operator))) => operator.nrows(),
        (None, None) => 0,
    };
    let par = inner_parallelism(targets.len(), target_batch);
    let group = target_batch * rayon::current_num_threads().max(1);
    let all_rows: Vec<usize> = (0..n_rows).collect();
    let compute = |group_targets: &[usize], group_alphas: &[f64]| -> Vec<Matrix> {
        group_targets
            .par_chunks(target_batch)
            .zip(group_alphas.par_chunks(target_batch))
            .map(|(batch, alphas)| {
                let mut block = Matrix::zeros(batch.len(), n_features);
                // The batch's positions by route: a direct operator, or the
                // spectrum (None).
                let mut routes: Vec<(Option<usize>, Vec<usize>)> = Vec::new();
                for (j, &alpha) in alphas.iter().enumerate() {
                    let route = solver.direct_index(alpha);
                    match routes.iter_mut().find(|(r, _)| *r == route) {
                        Some((_, positions)) => positions.push(j),
                        None => routes.push((route, vec![j])),
                    }
                }
                let whole = routes.len() == 1;
                for (route, positions) in &routes {
                    let n_targets = positions.len();
                    // Column-major, like gather_columns.
                    let mut gathered = Vec::new();
                    gather(y, &all_rows, n_targets, |j| batch[positions[j]], &mut gathered);
                    let gathered_ref = MatRef::from_column_major_slice(&gathered, n_rows, n_targets);
                    let mut part = if whole { Vec::new() } else { vec![0.0f32; n_features * n_targets] };
                    let out = MatMut::from_column_major_slice_mut(
                        if whole { &mut block.data } else { &mut part },
                        n_features,
                        n_targets,
                    );
                    match route {
                        Some(d) => matmul(out, Accum::Replace, solver.direct[*d].1.as_ref(), gathered_ref, 1.0, par),
                        None => {
                            let full = solver
                                .spectrum
                                .as_ref()
                                .expect("the spectrum serves the alphas without a direct operator");
                            let rank = full.lambdas.len();
                            let mut projected = vec![0.0f32; rank * n_targets];
                            matmul(
                                MatMut::from_column_major_slice_mut(&mut projected, rank, n_targets),
                                Accum::Replace,
                                full.left.transpose(),
                                gathered_ref,
                                1.0,
                                par,
                            );
                            for (column, &position) in projected.chunks_mut(rank.max(1)).zip(positions) {
                                let alpha = alphas[position];
                                for (value, lambda) in column.iter_mut().zip(&full.lambdas) {
                                    *value = (*value as f64 / (lambda + alpha)) as f32;
                                }
                            }
                            matmul(
                                out,
                                Accum::Replace,
                                full.right.as_ref(),
                                MatRef::from_column_major_slice(&projected, rank, n_targets),
                                1.0,
                                par,
                            );
                        }
                    }
                    if !whole {
                        for (j, &position) in positions.iter().enumerate() {
                            block.data[position * n_features..(position + 1) * n_features]
                                .copy_from_slice(&part[j * n_features..(j + 1) * n_features]);
                        }
                    }
                }
                block
            })
            .collect()
    };
    let compute = &compute;
    // Each group is computed while the sink takes the one before (the
    // `ridge` stage writes it to disk and predicts the test rows from it),
    // so that the threads do not wait for the sink.
    let mut pending: Option<(&[usize], Vec<Matrix>)> = None;
    let mut drain = |pending: &mut Option<(&[usize], Vec<Matrix>)>| {
        if let Some((group_targets, blocks)) = pending.take() {
            for (batch, block) in group_targets.chunks(target_batch).zip(blocks) {
                sink(batch, block);
            }
        }
    };
    for (group_targets, group_alphas) in targets.chunks(group).zip(alphas.chunks(group)) {
        let mut blocks = Vec::new();
        rayon::in_place_scope(|scope| {
            let blocks = &mut blocks;
            scope.spawn(move |_| *blocks = compute(group_targets, group_alphas));
            drain(&mut pending);
        });
        pending = Some((group_targets, blocks));
    }
    drain(&mut pending);
}

/// Sequential products inside each batch when there are enough batches to
/// keep every thread busy, parallel products otherwise (public so that
/// examples/ridge_bench.rs times the products alone the same way).
pub fn inner_parallelism(n_targets: usize, target_batch: usize) -> Par {
    if n_targets.div_ceil(target_batch) >= 2 * rayon::current_num_threads() {
        Par::Seq
    } else {
        Par::rayon(0)
    }
}

/// Eigendecomposition of a symmetric matrix; returns the eigenvalues above
/// `dim * eps * lambda_max` in decreasing order and their eigenvectors.
fn eigh_descending(
    gram: MatRef<'_, f64>,
    other_dim: usize,
    par: Par,
    what: impl Fn() -> String,
) -> Result<(Vec<f64>, Mat<f64>), RidgeError> {
    let n = gram.nrows();
    let mut vectors = Mat::<f64>::zeros(n, n);
    let mut values = Diag::<f64>::zeros(n);
    let scratch = self_adjoint_evd_scratch::<f64>(n, ComputeEigenvectors::Yes, par, Default::default());
    let mut memory = MemBuffer::new(scratch);
    self_adjoint_evd(
        gram,
        values.as_mut(),
        Some(vectors.as_mut()),
        par,
        MemStack::new(&mut memory),
        Default::default(),
    )
    .map_err(|_| RidgeError::Decomposition(what()))?;
    drop(memory);
    let values = values.column_vector();
    let largest = (0..n).map(|k| values[k]).fold(0.0f64, f64::max);
    let tolerance = largest * n.max(other_dim) as f64 * f64::EPSILON;
    // faer returns increasing eigenvalues: reverse the columns in place and
    // keep the leading ones (no second n x n copy).
    let kept = (0..n).filter(|&k| values[k] > tolerance && largest > 0.0).count();
    let lambdas = (0..kept).map(|j| values[n - 1 - j]).collect();
    for j in 0..n / 2 {
        let (mut a, mut b) = vectors.two_cols_mut(j, n - 1 - j);
        for i in 0..n {
            std::mem::swap(&mut a[i], &mut b[i]);
        }
    }
    vectors.truncate(n, kept);
    Ok((lambdas, vectors))
}

/// The shared projections (`X^T Y - X_V^T Y_V`, and `Z^T Y - Z_V^T Y_V` on
/// the downdate route) subtract in f32: where the training rows hold almost
/// none of a direction that the validation rows hold (a feature that only one
/// story has, such as a per-story intercept), the difference is rounding
/// noise, which the operator then multiplies by up to `1 / alpha`. The share
/// the training rows keep of the least-kept direction is the least
/// eigenvalue of `I - X_V (X^T X + alpha I)^-1 X_V^T` (at the smallest
/// alpha); below this floor the fold projects its own training rows instead
/// (`left^T Y_train`, no subtraction). On random designs it is 0.45-0.75
/// (n = 400, p = 60 with 5 and 20 folds; n = 900, p = 200 with 25 folds).
const CANCELLATION_FLOOR: f64 = 1e-2;

/// The largest eigenvalue of a symmetric matrix (values only).
fn largest_eigenvalue(m: MatRef<'_, f64>) -> f64 {
    let n = m.nrows();
    if n == 0 {
        return 0.0;
    }
    let mut values = Diag::<f64>::zeros(n);
    let scratch = self_adjoint_evd_scratch::<f64>(n, ComputeEigenvectors::No, Par::Seq, Default::default());
    let mut memory = MemBuffer::new(scratch);
    let solved =
        self_adjoint_evd(m, values.as_mut(), None, Par::Seq, MemStack::new(&mut memory), Default::default()).is_ok();
    let values = values.column_vector();
    if !solved {
        return f64::INFINITY;
    }
    (0..n).map(|k| values[k]).fold(f64::NEG_INFINITY, f64::max)
}

/// Cholesky factorisation in place: `L` in the lower triangle. False when
/// the matrix is not numerically positive definite.
fn cholesky_lower<T: Real>(m: MatMut<'_, T>, par: Par) -> bool {
    let scratch = cholesky_in_place_scratch::<T>(m.nrows(), par, Default::default());
    let mut memory = MemBuffer::new(scratch);
    cholesky_in_place(m, Default::default(), par, MemStack::new(&mut memory), Default::default()).is_ok()
}

/// `rhs <- (L L^T)^-1 rhs` with `L` from [`cholesky_lower`].
fn cholesky_solve_in_place<T: Real>(l: MatRef<'_, T>, mut rhs: MatMut<'_, T>, par: Par) {
    solve_lower_triangular_in_place(l, rhs.as_mut(), par);
    solve_upper_triangular_in_place(l.transpose(), rhs, par);
}

/// `gram + alpha I` into `system` (in its precision), factorised in place
/// by [`cholesky_lower`].
fn cholesky_shifted<T: Real>(system: &mut Mat<T>, gram: MatRef<'_, f64>, alpha: f64, par: Par) -> bool {
    for j in 0..gram.ncols() {
        let source = gram.col(j).try_as_col_major().expect("a column is contiguous");
        for (value, &g) in system.col_as_slice_mut(j).iter_mut().zip(source.as_slice()) {
            *value = T::of(g);
        }
        system[(j, j)] = T::of(gram[(j, j)] + alpha);
    }
    cholesky_lower(system.as_mut(), par)
}

/// The precisions the factorisations run in (see [`F32_CONDITION_LIMIT`]).
trait Real: faer::traits::RealField + Copy + Send + Sync {
    fn of(value: f64) -> Self;
    fn narrow(self) -> f32;
}

impl Real for f64 {
    fn of(value: f64) -> Self {
        value
    }
    fn narrow(self) -> f32 {
        self as f32
    }
}

impl Real for f32 {
    fn of(value: f64) -> Self {
        value as f32
    }
    fn narrow(self) -> f32 {
        self
    }
}

/// The bound on the condition number of `Gram + alpha I`,
/// `(lambda_max + alpha) / alpha`, up to which the Schur route's inverse and
/// the refit's direct operators factorise in f32 (see the module's
/// "Precision"). At n = 3000 (fold operators of 600 rows, against the same
/// steps in f64) the relative error grew about linearly with the bound: on
/// a correlated, z-scored design 6.9e-7 at 8, 1.2e-6 at 16, 2.5e-6 at 32,
/// 6.0e-6 at 64, 1.5e-5 at 128; on a Gaussian one 7.8e-7 at 32.
pub const F32_CONDITION_LIMIT: f64 = 32.0;

/// The ratio of the largest eigenvalue of the Gram matrix to its mean
/// eigenvalue up to which factorisations may run in f32 (see
/// [`F32_CONDITION_LIMIT`]). Where one direction dominates (a component
/// that all features share), the operators' f32 error, relative to that direction, swamps the smaller
/// components that a Pearson score depends on. With n = 600, p = 700, 5
/// folds, 2000 targets and alphas from the limit of the condition bound up,
/// the Pearson scores of f32 and f64 factorisations differed by at most
/// (relative to `max(|r|, 0.1)`) 1.2e-6 at a ratio of 4 (Gaussian design),
/// 8.6e-7 at 9, 1.3e-6 at 63, 5.0e-6 at 333 and 2.0e-5 at 524; the L2 scores
/// by at most 2e-7 at any ratio.
pub const F32_SPIKE_LIMIT: f64 = 64.0;

/// Whether ridge_cv factorises `Gram + alpha I` in f32, for a Gram matrix
/// with largest eigenvalue `largest` (an estimate from above, see
/// [`largest_eigenvalue_estimate`]) and mean eigenvalue `mean`: where the
/// bound on its condition number, `(largest + alpha) / alpha`, is at most
/// [`F32_CONDITION_LIMIT`] and no direction dominates the spectrum
/// (`largest / mean` at most [`F32_SPIKE_LIMIT`]).
pub fn factorises_in_f32(largest: f64, mean: f64, alpha: f64) -> bool {
    largest + alpha <= F32_CONDITION_LIMIT * alpha && largest <= F32_SPIKE_LIMIT * mean
}

/// A symmetric positive semi-definite matrix's largest eigenvalue (an
/// estimate from above) and mean eigenvalue.
#[derive(Clone, Copy, Debug)]
struct SpectralScale {
    largest: f64,
    mean: f64,
}

impl SpectralScale {
    /// No Gram matrix to measure: never f32.
    const UNKNOWN: SpectralScale = SpectralScale { largest: f64::INFINITY, mean: 0.0 };

    fn of(m: MatRef<'_, f64>) -> SpectralScale {
        let mean = if m.nrows() == 0 { 0.0 } else { trace(m) / m.nrows() as f64 };
        SpectralScale { largest: largest_eigenvalue_estimate(m), mean }
    }
}

/// An estimate of the largest eigenvalue of a symmetric positive
/// semi-definite matrix, meant to lie above it: the largest Rayleigh
/// quotient of four power iterations from fixed random starts after 32 steps,
/// which approaches the eigenvalue from below, times 1.1. The four run as
/// one product with four columns, which reads the matrix once per step, as
/// one would. On Gaussian designs' kernels (a spectrum without a gap at its
/// top, the slow case) one start after 32 steps reached 95-97% of the
/// eigenvalue (the worst of 150 kernels with n = 100-500: 95.2%; at n =
/// 3000: 97.2%); the best of four starts drops the unlucky ones (the worst
/// of another 150: 97.6%). About 0.1 s at n = 3000.
pub fn largest_eigenvalue_estimate(m: MatRef<'_, f64>) -> f64 {
    const STEPS: usize = 32;
    const STARTS: usize = 4;
    let n = m.nrows();
    if n == 0 {
        return 0.0;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let mut v = Mat::<f64>::from_fn(n, STARTS, |_, _| rand_distr::StandardNormal.sample(&mut rng));
    let mut w = Mat::<f64>::zeros(n, STARTS);
    let mut largest = 0.0f64;
    for _ in 0..STEPS {
        for c in 0..STARTS {
            let norm = v.col(c).norm_l2();
            if !norm.is_finite() {
                return f64::INFINITY;
            }
            if norm > 0.0 {
                v.col_as_slice_mut(c).iter_mut().for_each(|value| *value /= norm);
            }
        }
        matmul(w.as_mut(), Accum::Replace, m, v.as_ref(), 1.0, Par::rayon(0));
        largest = (0..STARTS)
            .map(|c| v.col_as_slice(c).iter().zip(w.col_as_slice(c)).map(|(a, b)| a * b).sum::<f64>())
            .fold(0.0, f64::max);
        std::mem::swap(&mut v, &mut w);
    }
    1.1 * largest
}

fn trace(m: MatRef<'_, f64>) -> f64 {
    (0..m.nrows()).map(|k| m[(k, k)]).sum()
}

/// `items` dealt round-robin into `workers` lanes.
fn into_lanes<T>(items: impl IntoIterator<Item = T>, workers: usize) -> Vec<Vec<T>> {
    let workers = workers.max(1);
    let mut lanes: Vec<Vec<T>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        lanes[i % workers].push(item);
    }
    lanes
}

/// `a a^T` in f64 (both triangles filled), computing one triangle.
fn gram_of_rows(a: MatRef<'_, f64>) -> Mat<f64> {
    let n = a.nrows();
    let mut gram = Mat::<f64>::zeros(n, n);
    triangular::matmul(
        gram.as_mut(),
        BlockStructure::TriangularLower,
        Accum::Replace,
        a,
        BlockStructure::Rectangular,
        a.transpose(),
        BlockStructure::Rectangular,
        1.0,
        Par::rayon(0),
    );
    mirror_lower(&mut gram);
    gram
}

fn product_f32(lhs: MatRef<'_, f64>, rhs: MatRef<'_, f64>, par: Par) -> Mat<f32> {
    let mut out = Mat::<f64>::zeros(lhs.nrows(), rhs.ncols());
    matmul(out.as_mut(), Accum::Replace, lhs, rhs, 1.0, par);
    to_f32(out.as_ref())
}

fn to_f32(m: MatRef<'_, f64>) -> Mat<f32> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)] as f32)
}

fn scale_symmetric(m: &mut Mat<f64>, scales: &[f64]) {
    if scales.iter().all(|&s| s == 1.0) {
        return;
    }
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            m[(i, j)] *= scales[i] * scales[j];
        }
    }
}

fn scale_rows(m: &mut Mat<f64>, scales: &[f64]) {
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            m[(i, j)] *= scales[i];
        }
    }
}

fn complement_fold(n: usize, validation: Vec<usize>) -> Fold {
    let mut in_validation = vec![false; n];
    validation.iter().for_each(|&i| in_validation[i] = true);
    let train = (0..n).filter(|&i| !in_validation[i]).collect();
    Fold { train, validation }
}

/// Whether a fold's training and validation rows together are all `n` rows,
/// each once.
fn splits_all_rows(fold: &Fold, n: usize) -> bool {
    let mut seen = vec![false; n];
    fold.train.len() + fold.validation.len() == n
        && fold.train.iter().chain(&fold.validation).all(|&r| r < n && !std::mem::replace(&mut seen[r], true))
}

pub(crate) fn check_inputs(xs: &[(&str, &Matrix)], y: &Matrix) -> Result<(), RidgeError> {
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

pub(crate) fn check_folds(folds: &[Fold], n_rows: usize) -> Result<(), RidgeError> {
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

pub(crate) fn check_alphas(alphas: &[f64]) -> Result<(), RidgeError> {
    if alphas.is_empty() {
        return Err(RidgeError::NoAlphas);
    }
    match alphas.iter().position(|a| !(*a > 0.0 && a.is_finite())) {
        Some(index) => Err(RidgeError::NonPositiveAlpha { index, value: alphas[index] }),
        None => Ok(()),
    }
}

pub(crate) fn check_batch(target_batch: usize) -> Result<(), RidgeError> {
    if target_batch == 0 {
        return Err(RidgeError::Config("target_batch must be at least 1".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::Rng;
    use rand_distr::StandardNormal;

    use super::*;
    use crate::testing::{fresh_rng, random_matrix};

    /// Y = X W + noise, with a different noise level per target so that the
    /// best alphas differ.
    fn signal_and_noise(rng: &mut ChaCha8Rng, x: &Matrix, n_targets: usize) -> Matrix {
        let true_weights = random_matrix(rng, x.cols, n_targets);
        let mut y = predict(x, &true_weights);
        let scale = 1.0 / (x.cols as f32).sqrt();
        for t in 0..n_targets {
            let noise = 0.3 + 3.0 * rng.random::<f32>();
            for i in 0..y.rows {
                let value = y.get(i, t) * scale + noise * rng.sample::<f32, _>(StandardNormal);
                y.set(i, t, value);
            }
        }
        y
    }

    fn to_f64(m: &Matrix) -> Vec<Vec<f64>> {
        (0..m.rows).map(|i| m.row(i).iter().map(|&v| v as f64).collect()).collect()
    }

    /// Solves the symmetric positive definite system `a x = b` by Cholesky, in f64.
    fn cholesky_solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
        let n = b.len();
        for j in 0..n {
            let diagonal = (a[j][j] - (0..j).map(|k| a[j][k] * a[j][k]).sum::<f64>()).sqrt();
            a[j][j] = diagonal;
            for i in j + 1..n {
                a[i][j] = (a[i][j] - (0..j).map(|k| a[i][k] * a[j][k]).sum::<f64>()) / diagonal;
            }
        }
        for i in 0..n {
            b[i] = (b[i] - (0..i).map(|k| a[i][k] * b[k]).sum::<f64>()) / a[i][i];
        }
        for i in (0..n).rev() {
            b[i] = (b[i] - (i + 1..n).map(|k| a[k][i] * b[k]).sum::<f64>()) / a[i][i];
        }
        b
    }

    /// `(X^T X + diag(penalties))^-1 X^T y` in f64, rows of X restricted to `rows`.
    fn closed_form(x: &Matrix, y: &Matrix, target: usize, rows: &[usize], penalties: &[f64]) -> Vec<f64> {
        let x64 = to_f64(x);
        let p = x.cols;
        let mut gram = vec![vec![0.0; p]; p];
        let mut rhs = vec![0.0; p];
        for &i in rows {
            for a in 0..p {
                rhs[a] += x64[i][a] * y.get(i, target) as f64;
                for b in 0..p {
                    gram[a][b] += x64[i][a] * x64[i][b];
                }
            }
        }
        for a in 0..p {
            gram[a][a] += penalties[a];
        }
        cholesky_solve(gram, rhs)
    }

    fn assert_close(label: &str, actual: &[f64], expected: &[f64], relative: f64) {
        let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
        let worst = actual.iter().zip(expected).map(|(a, e)| (a - e).abs()).fold(0.0, f64::max);
        assert!(
            worst <= relative * scale,
            "{label}: max |difference| {worst:.3e} exceeds {relative:e} x max |expected| {scale:.3e}"
        );
    }

    fn column(m: &Matrix, j: usize) -> Vec<f64> {
        (0..m.rows).map(|i| m.get(i, j) as f64).collect()
    }

    #[test]
    fn fit_ridge_matches_the_closed_form_on_both_shapes() {
        let mut rng = fresh_rng("fit_ridge_matches_the_closed_form_on_both_shapes");
        for (n, p) in [(90, 30), (40, 70)] {
            let x = random_matrix(&mut rng, n, p);
            let y = signal_and_noise(&mut rng, &x, 6);
            let alphas: Vec<f64> = (0..6).map(|_| 10f64.powf(rng.random_range(-1.0..2.5))).collect();
            let weights = fit_ridge(&x, &y, &alphas).unwrap();
            let rows: Vec<usize> = (0..n).collect();
            for (t, &alpha) in alphas.iter().enumerate() {
                let expected = closed_form(&x, &y, t, &rows, &vec![alpha; p]);
                assert_close(&format!("n={n} p={p} target {t}"), &column(&weights, t), &expected, 1e-4);
            }
            let shared = fit_ridge(&x, &y, &alphas[..1]).unwrap();
            let expected = closed_form(&x, &y, 3, &rows, &vec![alphas[0]; p]);
            assert_close("one alpha for all", &column(&shared, 3), &expected, 1e-4);
        }
    }

    fn on_path(path: Path) -> Overrides {
        Overrides { path: Some(path), ..Overrides::default() }
    }

    #[test]
    fn every_path_and_fold_method_gives_the_same_scores() {
        let mut rng = fresh_rng("every_path_and_fold_method_gives_the_same_scores");
        // 120 targets make the eigendecomposition route fold its projection
        // into the operator (see EigenExtra); 5 keep it apart.
        for (n, p, n_targets, score) in
            [(100, 30, 5, CvScore::L2), (45, 70, 5, CvScore::Pearson), (45, 70, 120, CvScore::L2)]
        {
            let x = random_matrix(&mut rng, n, p);
            let y = signal_and_noise(&mut rng, &x, n_targets);
            let config = RidgeConfig {
                alphas: vec![0.2, 2.0, 20.0, 200.0, 2000.0],
                per_target_alpha: true,
                score,
                target_batch: 2,
            };
            let folds = folds_chunked(n, 3, 5, rng.random());
            let mut tables = Vec::new();
            for path in [Path::Svd, Path::Kernel] {
                for (method, workers) in [
                    (FoldMethod::Cholesky, None),
                    (FoldMethod::Cholesky, Some(1)),
                    (FoldMethod::Eigen, None),
                    (FoldMethod::Schur, None),
                    (FoldMethod::Downdate, None),
                ] {
                    let overrides =
                        Overrides { path: Some(path), fold_method: Some(method), workers, ..Overrides::default() };
                    let result = ridge_cv_with(&x, &y, &folds, &config, overrides);
                    if (path, method) == (Path::Svd, FoldMethod::Schur) {
                        assert!(matches!(result, Err(RidgeError::Config(_))), "the Schur route is kernel-only");
                        continue;
                    }
                    if (path, method) == (Path::Kernel, FoldMethod::Downdate) {
                        assert!(matches!(result, Err(RidgeError::Config(_))), "the downdate route is SVD-only");
                        continue;
                    }
                    let table: Vec<f64> = result.unwrap().cv_scores.data.iter().map(|&v| v as f64).collect();
                    tables.push((format!("{path:?} {method:?} {workers:?}"), table));
                }
            }
            for (label, table) in &tables[1..] {
                assert_close(&format!("n={n} p={p} {label} vs {}", tables[0].0), table, &tables[0].1, 1e-4);
            }
        }
    }

    #[test]
    fn tiny_alphas_on_a_rank_deficient_design_take_the_accurate_route() {
        let mut rng = fresh_rng("tiny_alphas_on_a_rank_deficient_design_take_the_accurate_route");
        let factors = random_matrix(&mut rng, 60, 4);
        let loadings = random_matrix(&mut rng, 4, 40);
        let x = predict(&factors, &loadings);
        let y = signal_and_noise(&mut rng, &x, 4);
        let config = RidgeConfig {
            alphas: vec![1e-12, 1e-3, 1.0, 100.0],
            per_target_alpha: true,
            score: CvScore::L2,
            target_batch: 3,
        };
        let folds = folds_chunked(60, 3, 4, rng.random());
        for path in [Path::Svd, Path::Kernel] {
            let automatic = ridge_cv_with(&x, &y, &folds, &config, on_path(path)).unwrap();
            let eigen = Overrides { path: Some(path), fold_method: Some(FoldMethod::Eigen), ..Overrides::default() };
            let reference = ridge_cv_with(&x, &y, &folds, &config, eigen).unwrap();
            let as_f64 = |m: &Matrix| m.data.iter().map(|&v| v as f64).collect::<Vec<_>>();
            assert_close(
                &format!("{path:?} scores"),
                &as_f64(&automatic.cv_scores),
                &as_f64(&reference.cv_scores),
                1e-4,
            );
        }
    }

    /// Folds one at a time and the refit's operators one after the other
    /// (large Y), or each fold prepared while the previous one is scored and
    /// the operators built in parallel: the same numbers.
    #[test]
    fn memory_saving_and_overlapped_schedules_give_the_same_fit() {
        let mut rng = fresh_rng("memory_saving_and_overlapped_schedules_give_the_same_fit");
        for (n, p) in [(90, 30), (40, 70)] {
            let x = random_matrix(&mut rng, n, p);
            let y = signal_and_noise(&mut rng, &x, 11);
            let config = RidgeConfig {
                alphas: vec![0.5, 5.0, 50.0],
                per_target_alpha: true,
                score: CvScore::L2,
                target_batch: 4,
            };
            let folds = folds_contiguous(n, 3);
            let run = |first| {
                ridge_cv_with(&x, &y, &folds, &config, Overrides { memory_first: Some(first), ..Overrides::default() })
                    .unwrap()
            };
            let (overlapped, sequential) = (run(false), run(true));
            assert_eq!(overlapped.best_alphas, sequential.best_alphas);
            assert_eq!(overlapped.cv_scores, sequential.cv_scores);
            let as_f64 = |m: &Matrix| m.data.iter().map(|&v| v as f64).collect::<Vec<_>>();
            assert_close("weights", &as_f64(&overlapped.weights), &as_f64(&sequential.weights), 1e-5);
        }
    }

    #[test]
    fn svd_path_and_kernel_path_agree() {
        let mut rng = fresh_rng("svd_path_and_kernel_path_agree");
        for (n, p) in [(120, 35), (50, 80)] {
            let x = random_matrix(&mut rng, n, p);
            let y = signal_and_noise(&mut rng, &x, 9);
            let alphas = vec![0.3, 3.0, 30.0, 300.0];
            let config =
                RidgeConfig { alphas: alphas.clone(), per_target_alpha: true, score: CvScore::L2, target_batch: 4 };
            let folds = folds_chunked(n, 4, 7, rng.random());
            let svd = ridge_cv_with(&x, &y, &folds, &config, on_path(Path::Svd)).unwrap();
            let kernel = ridge_cv_with(&x, &y, &folds, &config, on_path(Path::Kernel)).unwrap();
            let scores = |r: &RidgeCvResult| r.cv_scores.data.iter().map(|&v| v as f64).collect::<Vec<_>>();
            assert_close(&format!("cv scores n={n} p={p}"), &scores(&svd), &scores(&kernel), 1e-4);
            let weights = |r: &RidgeCvResult| r.weights.data.iter().map(|&v| v as f64).collect::<Vec<_>>();
            let fit_svd = fit_ridge_with(&x, &y, &alphas[1..2], on_path(Path::Svd)).unwrap();
            let fit_kernel = fit_ridge_with(&x, &y, &alphas[1..2], on_path(Path::Kernel)).unwrap();
            let as_f64 = |m: &Matrix| m.data.iter().map(|&v| v as f64).collect::<Vec<_>>();
            assert_close("fit_ridge weights", &as_f64(&fit_svd), &as_f64(&fit_kernel), 1e-4);
            if svd.best_alphas == kernel.best_alphas {
                assert_close("refit weights", &weights(&svd), &weights(&kernel), 1e-4);
            }
        }
    }

    /// Folds that leave a row out of both parts: refused by a route that
    /// needs folds splitting all rows when `forced`, and scored as the
    /// brute force when the route is chosen automatically.
    fn assert_gapped_folds(x: &Matrix, y: &Matrix, folds: &[Fold], config: &RidgeConfig, forced: Overrides) {
        let mut gapped = folds.to_vec();
        let left_out = gapped[0].train.remove(0);
        let refused = ridge_cv_with(x, y, &gapped, config, forced);
        assert!(matches!(refused, Err(RidgeError::Config(_))), "row {left_out} is in no part of fold 0");
        let automatic = ridge_cv(x, y, &gapped, config).unwrap();
        let (alphas, score) = (&config.alphas, config.score);
        assert_scores_match_brute_force("gapped folds", x, y, &gapped, alphas, score, &automatic.cv_scores, y.cols);
    }

    /// Holds the score table of `n_checked` of y's targets (evenly spaced)
    /// to [`brute_force_scores`] with unit penalties, within 1e-4.
    #[allow(clippy::too_many_arguments)]
    fn assert_scores_match_brute_force(
        label: &str,
        x: &Matrix,
        y: &Matrix,
        folds: &[Fold],
        alphas: &[f64],
        score: CvScore,
        cv_scores: &Matrix,
        n_checked: usize,
    ) {
        let checked: Vec<usize> = (0..y.cols).step_by(y.cols.div_ceil(n_checked)).collect();
        let mut y_checked = Matrix::zeros(y.rows, checked.len());
        for (j, &t) in checked.iter().enumerate() {
            (0..y.rows).for_each(|i| y_checked.set(i, j, y.get(i, t)));
        }
        let expected = brute_force_scores(x, &y_checked, folds, alphas, &vec![1.0; x.cols], score);
        for (a, row) in expected.iter().enumerate() {
            let actual: Vec<f64> = checked.iter().map(|&t| cv_scores.get(a, t) as f64).collect();
            assert_close(&format!("{label} {score:?} scores of alpha {}", alphas[a]), &actual, row, 1e-4);
        }
    }

    /// Brute force in f64: the score table (alpha-major) of per-feature
    /// penalties `alpha * penalty_shape` on the folds.
    fn brute_force_scores(
        x: &Matrix,
        y: &Matrix,
        folds: &[Fold],
        alphas: &[f64],
        penalty_shape: &[f64],
        score: CvScore,
    ) -> Vec<Vec<f64>> {
        let x64 = to_f64(x);
        alphas
            .iter()
            .map(|&alpha| {
                let penalties: Vec<f64> = penalty_shape.iter().map(|s| alpha * s).collect();
                (0..y.cols)
                    .map(|t| {
                        let mut total = 0.0;
                        for fold in folds {
                            let w = closed_form(x, y, t, &fold.train, &penalties);
                            let predicted: Vec<f32> = fold
                                .validation
                                .iter()
                                .map(|&i| x64[i].iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() as f32)
                                .collect();
                            let observed: Vec<f32> = fold.validation.iter().map(|&i| y.get(i, t)).collect();
                            total += match score {
                                CvScore::L2 => negative_mse(&observed, &predicted),
                                CvScore::Pearson => {
                                    let mean = observed.iter().map(|&v| v as f64).sum::<f64>() / observed.len() as f64;
                                    let centred: Vec<f32> =
                                        observed.iter().map(|&v| (v as f64 - mean) as f32).collect();
                                    let norm = centred.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
                                    centred_pearson(&centred, norm, &predicted)
                                }
                            };
                        }
                        total / folds.len() as f64
                    })
                    .collect()
            })
            .collect()
    }

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

    /// The Schur route (one inverse of the whole kernel per alpha, shared by
    /// the folds) against a float64 fit per fold and alpha, with alphas in
    /// groups of one and of all; folds that leave a row out are refused when
    /// it is forced and prepared fold by fold when it is not.
    #[test]
    fn schur_route_matches_a_brute_force_search_and_needs_folds_that_split_all_rows() {
        let mut rng = fresh_rng("schur_route_matches_a_brute_force_search_and_needs_folds_that_split_all_rows");
        let (n, p) = (rng.random_range(40..60), rng.random_range(70..90));
        let x = random_matrix(&mut rng, n, p);
        let alphas: Vec<f64> = (0..6).map(|k| 10f64.powf(k as f64 - 1.0 + rng.random::<f64>())).collect();
        let groups: Vec<usize> = (0..n).map(|_| rng.random_range(0..6)).collect();
        let mut folds = folds_by_group(&groups);
        folds.retain(|fold| fold.train.len() >= 2);
        let schur = Overrides { fold_method: Some(FoldMethod::Schur), ..Overrides::default() };
        // Alphas in groups of one, of four (4 + 2) and all at once (the
        // automatic size at this scale).
        // One lane with parallel kernels, or one per thread.
        for (group, n_targets, score, workers) in
            [(Some(1), 5, CvScore::L2, None), (Some(4), 40, CvScore::Pearson, Some(1)), (None, 3000, CvScore::L2, None)]
        {
            let y = signal_and_noise(&mut rng, &x, n_targets);
            let config = RidgeConfig { alphas: alphas.clone(), per_target_alpha: true, score, target_batch: 16 };
            let overrides = Overrides { schur_group: group, workers, ..schur };
            let design = Design::new(&x, &[p], folds.iter().map(|f| f.train.len()), overrides);
            let size = design.schur_group_size(&folds, &alphas, &y).expect("the Schur route applies");
            assert_eq!(size, group.unwrap_or(alphas.len()));
            let result = ridge_cv_with(&x, &y, &folds, &config, overrides).unwrap();
            let label = format!("{group:?}");
            assert_scores_match_brute_force(&label, &x, &y, &folds, &alphas, score, &result.cv_scores, 5);
        }
        let y = signal_and_noise(&mut rng, &x, 3);
        let config =
            RidgeConfig { alphas: alphas.clone(), per_target_alpha: true, score: CvScore::L2, target_batch: 2 };
        assert_gapped_folds(&x, &y, &folds, &config, schur);
    }

    /// The downdate route (one eigendecomposition of X^T X shared by every
    /// fold and alpha, a Woodbury solve per fold) against a float64 fit per
    /// fold and alpha, on leave-one-group-out folds where the costs pick it
    /// themselves, with one lane or one per thread; its refit (through the
    /// same spectrum) against the closed form. Folds that leave a row out
    /// are refused when it is forced and prepared fold by fold when not; a
    /// tiny alpha is refused when it is forced.
    #[test]
    fn downdate_route_matches_a_brute_force_search_and_needs_folds_that_split_all_rows() {
        let mut rng = fresh_rng("downdate_route_matches_a_brute_force_search_and_needs_folds_that_split_all_rows");
        let (n, p) = (rng.random_range(180..220), rng.random_range(30..45));
        let x = random_matrix(&mut rng, n, p);
        let alphas: Vec<f64> = (0..6).map(|k| 10f64.powf(k as f64 - 1.5 + rng.random::<f64>())).collect();
        // About 20 groups of about 10 rows, like stories.
        let groups: Vec<usize> = (0..n).map(|i| i / 10 + usize::from(rng.random_bool(0.2))).collect();
        let folds = folds_by_group(&groups);
        let as_f64 = |m: &Matrix| m.data.iter().map(|&v| v as f64).collect::<Vec<_>>();
        for (n_targets, score, workers) in [(6, CvScore::L2, None), (40, CvScore::Pearson, Some(1))] {
            let y = signal_and_noise(&mut rng, &x, n_targets);
            let config = RidgeConfig { alphas: alphas.clone(), per_target_alpha: true, score, target_batch: 16 };
            let overrides = Overrides { workers, ..Overrides::default() };
            let design = Design::new(&x, &[p], folds.iter().map(|f| f.train.len()).chain([n]), overrides);
            assert!(design.downdate_applies(&folds, &alphas, &y, false), "the costs pick the downdate route here");
            let result = ridge_cv_with(&x, &y, &folds, &config, overrides).unwrap();
            assert_scores_match_brute_force("downdate", &x, &y, &folds, &alphas, score, &result.cv_scores, 6);
            let refit = fit_ridge(&x, &y, &result.best_alphas).unwrap();
            assert_close("refit through the downdate spectrum", &as_f64(&result.weights), &as_f64(&refit), 1e-4);
        }
        let y = signal_and_noise(&mut rng, &x, 3);
        let config =
            RidgeConfig { alphas: alphas.clone(), per_target_alpha: true, score: CvScore::L2, target_batch: 2 };
        let downdate = Overrides { fold_method: Some(FoldMethod::Downdate), ..Overrides::default() };
        assert_gapped_folds(&x, &y, &folds, &config, downdate);
        let trace: f64 = (0..n).flat_map(|i| x.row(i).iter().map(|&v| (v as f64).powi(2))).sum();
        let tiny = RidgeConfig { alphas: vec![1e-12 * trace, 1.0], ..config };
        let refused = ridge_cv_with(&x, &y, &folds, &tiny, downdate);
        assert!(matches!(refused, Err(RidgeError::Decomposition(_))), "an alpha below 1e-10 trace");
    }

    /// Features that only one story has (per-story intercepts, say): the
    /// shared projections' f32 subtraction leaves rounding noise in their
    /// direction, which small alphas would multiply up; such folds project
    /// their own training rows instead (CANCELLATION_FLOOR), on the
    /// downdate route and on the per-fold Cholesky route alike, and the
    /// scores stay at the float64 fit per fold and alpha.
    #[test]
    fn features_of_one_story_keep_the_shared_projections_accurate() {
        let mut rng = fresh_rng("features_of_one_story_keep_the_shared_projections_accurate");
        let (n, p) = (rng.random_range(180..220), rng.random_range(30..40));
        let groups: Vec<usize> = (0..n).map(|i| i / 10).collect();
        let mut x = random_matrix(&mut rng, n, p);
        // Columns 0..3 live in stories 0..3 only; column 3 is story 4's intercept.
        for (i, &group) in groups.iter().enumerate() {
            for c in 0..4 {
                let value = match (c, group) {
                    (3, 4) => 1.0,
                    (c, g) if c < 3 && g == c => 5.0 * x.get(i, c),
                    _ => 0.0,
                };
                x.set(i, c, value);
            }
        }
        let y = signal_and_noise(&mut rng, &x, 4);
        let folds = folds_by_group(&groups);
        let trace: f64 = x.data.iter().map(|&v| (v as f64).powi(2)).sum();
        let alphas: Vec<f64> = [1e-8, 1e-6, 1e-4, 1e-2].iter().map(|f| f * trace).collect();
        let config =
            RidgeConfig { alphas: alphas.clone(), per_target_alpha: true, score: CvScore::L2, target_batch: 2 };
        let expected = brute_force_scores(&x, &y, &folds, &alphas, &vec![1.0; p], CvScore::L2);
        for method in [None, Some(FoldMethod::Downdate), Some(FoldMethod::Cholesky)] {
            let overrides = Overrides { fold_method: method, ..Overrides::default() };
            let design = Design::new(&x, &[p], folds.iter().map(|f| f.train.len()).chain([n]), overrides);
            assert!(design.shared_projection(&folds, &y, false), "the folds could share X^T Y");
            let result = ridge_cv_with(&x, &y, &folds, &config, overrides).unwrap();
            for (a, row) in expected.iter().enumerate() {
                let actual: Vec<f64> = result.cv_scores.row(a).iter().map(|&v| v as f64).collect();
                assert_close(&format!("{method:?}, alpha {:e} trace", alphas[a] / trace), &actual, row, 1e-4);
            }
        }
    }

    /// The power-iteration estimate against the largest eigenvalue from a
    /// full eigendecomposition, on three kinds of spectra: a Gaussian design's
    /// kernel (no gap at the top), correlated columns (one large eigenvalue)
    /// and eigenvalues spread evenly from 0 (many just below the top).
    #[test]
    fn largest_eigenvalue_estimate_lies_just_above_the_largest_eigenvalue() {
        let mut rng = fresh_rng("largest_eigenvalue_estimate_lies_just_above_the_largest_eigenvalue");
        let n = rng.random_range(200..400);
        let (p_gaussian, p_correlated) = (rng.random_range(n..2 * n), rng.random_range(n / 2..2 * n));
        let gaussian = random_matrix(&mut rng, n, p_gaussian);
        let mut correlated = random_matrix(&mut rng, n, p_correlated);
        let shared: Vec<f32> = (0..n).map(|_| rng.sample(rand_distr::StandardNormal)).collect();
        for (i, &common) in shared.iter().enumerate() {
            for j in 0..correlated.cols {
                correlated.set(i, j, correlated.get(i, j) + 3.0 * common);
            }
        }
        let kernel = |x: &Matrix| {
            let x64 = Mat::<f64>::from_fn(x.rows, x.cols, |i, j| x.get(i, j) as f64);
            gram_of_rows(x64.as_ref())
        };
        let basis = {
            let q = kernel(&random_matrix(&mut rng, n, n));
            let mut values = Diag::<f64>::zeros(n);
            let mut vectors = Mat::<f64>::zeros(n, n);
            let scratch = self_adjoint_evd_scratch::<f64>(n, ComputeEigenvectors::Yes, Par::Seq, Default::default());
            let mut memory = MemBuffer::new(scratch);
            let stack = MemStack::new(&mut memory);
            self_adjoint_evd(q.as_ref(), values.as_mut(), Some(vectors.as_mut()), Par::Seq, stack, Default::default())
                .unwrap();
            vectors
        };
        let top = 10f64.powf(rng.random_range(0.0..6.0));
        let spread = Mat::<f64>::from_fn(n, n, |i, j| {
            (0..n).map(|k| basis[(i, k)] * top * (k as f64 / (n - 1) as f64) * basis[(j, k)]).sum::<f64>()
        });
        for (label, m) in [("Gaussian", kernel(&gaussian)), ("correlated", kernel(&correlated)), ("spread", spread)] {
            let exact = largest_eigenvalue(m.as_ref());
            let estimate = largest_eigenvalue_estimate(m.as_ref());
            assert!(
                exact <= estimate && estimate <= 1.1 * exact * (1.0 + 1e-12),
                "{label}, n = {n}: estimate {estimate:.6e}, largest eigenvalue {exact:.6e}"
            );
        }
        assert_eq!(largest_eigenvalue_estimate(Mat::<f64>::zeros(3, 3).as_ref()), 0.0);
    }

    /// The Schur route's operators and the refit's direct operators with the
    /// default precision rule, against the same with every factorisation in
    /// f64, on Gaussian designs (kernel and SVD path): alphas whose bound
    /// `(lambda_max + alpha) / alpha` is at most [`F32_CONDITION_LIMIT`] are
    /// computed in f32 (the operators differ, by at most 4e-6 relative; 2.5e-6
    /// was measured at the limit on n = 3000), the others are the same to the
    /// bit. On a design whose columns share one strong component
    /// (largest / mean eigenvalue far above [`F32_SPIKE_LIMIT`]) every alpha
    /// stays in f64.
    #[test]
    fn well_conditioned_alphas_factorise_in_f32() {
        let mut rng = fresh_rng("well_conditioned_alphas_factorise_in_f32");
        let (n_kernel, n_svd, n_spiked) =
            (rng.random_range(150..250), rng.random_range(200..260), rng.random_range(150..250));
        let cases = [
            (n_kernel, rng.random_range(260..320), false),
            (n_svd, 80, false),
            (n_spiked, rng.random_range(260..320), true),
        ];
        for (n, p, spiked) in cases {
            let mut x = random_matrix(&mut rng, n, p);
            if spiked {
                let shared: Vec<f32> = (0..n).map(|_| rng.sample(rand_distr::StandardNormal)).collect();
                for (i, &common) in shared.iter().enumerate() {
                    for j in 0..p {
                        x.set(i, j, x.get(i, j) + 2.0 * common);
                    }
                }
            }
            let folds = folds_contiguous(n, 5);
            let rows = folds.iter().map(|f| f.train.len()).chain([n]);
            let design = Design::new(&x, &[p], rows.clone(), Overrides::default());
            let double = Overrides { f64_only: true, ..Overrides::default() };
            let reference = Design::new(&x, &[p], rows, double);
            let scale = design.gram_scale();
            let radius = scale.largest;
            assert_eq!(radius > F32_SPIKE_LIMIT * scale.mean, spiked, "{scale:?}");
            // Bounds from 1000 down to 1.01, two of them either side of the limit.
            let alphas: Vec<f64> = [1e-3, 1e-2, 1.0 / 34.0, 1.0 / 29.0, 0.1, 1.0, 100.0]
                .iter()
                .map(|&f| radius * f * 10f64.powf(rng.random_range(-0.01..0.01)))
                .collect();
            let single: Vec<bool> = alphas.iter().map(|&a| design.single_precision(scale, a)).collect();
            let expected_single = if spiked { 0 } else { 4 };
            assert_eq!(single.iter().filter(|&&s| s).count(), expected_single, "{alphas:?} for {scale:?}");
            let relative = |a: MatRef<'_, f32>, b: MatRef<'_, f32>| {
                let (mut diff, mut norm) = (0.0f64, 0.0f64);
                for j in 0..a.ncols() {
                    for i in 0..a.nrows() {
                        diff += (a[(i, j)] as f64 - b[(i, j)] as f64).powi(2);
                        norm += (b[(i, j)] as f64).powi(2);
                    }
                }
                (diff / norm).sqrt()
            };
            let check = |label: String, single: bool, actual: MatRef<'_, f32>, expected: MatRef<'_, f32>| {
                let error = relative(actual, expected);
                if single {
                    assert!(error > 0.0 && error <= 4e-6, "{label}: f32 operator's relative error {error:.3e}");
                } else {
                    assert_eq!(error, 0.0, "{label}: an f64 operator changed");
                }
            };
            if n < p {
                let kernel = design.band_kernels[0].as_ref();
                let operators = design.schur_operators(kernel, scale, &folds, &alphas).unwrap();
                let expected = reference.schur_operators(kernel, scale, &folds, &alphas).unwrap();
                for (k, (fold, (actual, expected))) in folds.iter().zip(operators.iter().zip(&expected)).enumerate() {
                    let n_val = fold.validation.len();
                    for (a, &alpha) in alphas.iter().enumerate() {
                        let (actual, expected) =
                            (actual.stacked_t.subcols(a * n_val, n_val), expected.stacked_t.subcols(a * n_val, n_val));
                        check(format!("n={n} p={p} fold {k} alpha {alpha:.3e}"), single[a], actual, expected);
                    }
                }
            }
            for (a, &alpha) in alphas.iter().enumerate() {
                let actual = design.direct_operator(alpha, scale, Par::Seq).unwrap();
                let expected = reference.direct_operator(alpha, scale, Par::Seq).unwrap();
                check(format!("n={n} p={p} refit alpha {alpha:.3e}"), single[a], actual.as_ref(), expected.as_ref());
            }
        }
    }

    /// The refit by direct operators, by the spectrum, and mixed in one
    /// batch (an alpha too small for Cholesky keeps the spectrum), against
    /// the float64 closed form on both paths; and the route the costs pick.
    #[test]
    fn refit_routes_match_the_closed_form() {
        let mut rng = fresh_rng("refit_routes_match_the_closed_form");
        for (n, p) in [(90, 30), (40, 70)] {
            let x = random_matrix(&mut rng, n, p);
            let y = signal_and_noise(&mut rng, &x, 9);
            let trace: f64 = x.data.iter().map(|&v| (v as f64).powi(2)).sum();
            let grid = [1e-11 * trace, rng.random_range(0.1..1.0), rng.random_range(5.0..50.0)];
            let alphas: Vec<f64> = (0..9).map(|t| grid[(t + rng.random_range(0..3)) % 3]).collect();
            let rows: Vec<usize> = (0..n).collect();
            for (route, workers) in [
                (Some(RefitRoute::Direct), None),
                (Some(RefitRoute::Direct), Some(1)),
                (Some(RefitRoute::Spectrum), None),
                (None, None),
            ] {
                let overrides = Overrides { refit: route, workers, ..Overrides::default() };
                let design = Design::new(&x, &[p], [n].into_iter(), overrides);
                let solver = design.refit_solver(&alphas, false, None).unwrap();
                if route == Some(RefitRoute::Direct) {
                    assert!(solver.direct.iter().all(|(a, _)| *a > grid[0]), "a tiny alpha is never direct");
                    assert_eq!(solver.spectrum.is_some(), alphas.contains(&grid[0]));
                }
                let weights = fit_ridge_with(&x, &y, &alphas, overrides).unwrap();
                for (t, &alpha) in alphas.iter().enumerate() {
                    let expected = closed_form(&x, &y, t, &rows, &vec![alpha; p]);
                    let label = format!("n={n} p={p} {route:?} {workers:?} target {t} alpha {alpha:.3e}");
                    assert_close(&label, &column(&weights, t), &expected, 1e-4);
                }
            }
        }
        // Many targets on two alphas: direct operators, no eigendecomposition.
        // One target on each of 40 alphas: the spectrum.
        let x = random_matrix(&mut rng, 60, 80);
        let design = Design::new(&x, &[80], [60].into_iter(), Overrides::default());
        let two: Vec<f64> = (0..5000).map(|t| if t % 3 == 0 { 1.0 } else { 10.0 }).collect();
        let solver = design.refit_solver(&two, false, None).unwrap();
        assert!(solver.spectrum.is_none() && solver.direct.len() == 2);
        let many: Vec<f64> = (0..40).map(|t| 1.0 + t as f64).collect();
        let solver = design.refit_solver(&many, false, None).unwrap();
        assert!(solver.spectrum.is_some() && solver.direct.is_empty());
    }

    /// SVD path: the training projection from one shared `X^T Y` minus the
    /// validation rows' part, against the per-fold projection and a float64
    /// fit per fold; and when it is taken.
    #[test]
    fn shared_projection_matches_the_per_fold_projection() {
        let mut rng = fresh_rng("shared_projection_matches_the_per_fold_projection");
        let (n, p) = (rng.random_range(100..140), rng.random_range(20..30));
        let x = random_matrix(&mut rng, n, p);
        let y = signal_and_noise(&mut rng, &x, 7);
        let groups: Vec<usize> = (0..n).map(|i| i * 6 / n).collect();
        let folds = folds_by_group(&groups);
        let alphas: Vec<f64> = (0..5).map(|k| 10f64.powf(k as f64 - 1.0 + rng.random::<f64>())).collect();
        let as_f64 = |m: &Matrix| m.data.iter().map(|&v| v as f64).collect::<Vec<_>>();
        let mut tables = Vec::new();
        for (shared, score) in [(true, CvScore::L2), (false, CvScore::L2), (true, CvScore::Pearson)] {
            let config = RidgeConfig { alphas: alphas.clone(), per_target_alpha: true, score, target_batch: 3 };
            let overrides = Overrides { shared_projection: Some(shared), ..Overrides::default() };
            let design = Design::new(&x, &[p], folds.iter().map(|f| f.train.len()), overrides);
            assert_eq!(design.shared_projection(&folds, &y, false), shared);
            let result = ridge_cv_with(&x, &y, &folds, &config, overrides).unwrap();
            let expected = brute_force_scores(&x, &y, &folds, &alphas, &vec![1.0; p], score);
            for (a, row) in expected.iter().enumerate() {
                let actual: Vec<f64> = result.cv_scores.row(a).iter().map(|&v| v as f64).collect();
                assert_close(&format!("shared {shared} {score:?} alpha {}", alphas[a]), &actual, row, 1e-4);
            }
            tables.push(as_f64(&result.cv_scores));
        }
        assert_close("shared vs per-fold projection", &tables[0], &tables[1], 1e-5);
        // Taken automatically here; not with 3 folds; not when memory
        // decides and X^T Y would be more than a third of X and Y.
        let design = Design::new(&x, &[p], folds.iter().map(|f| f.train.len()), Overrides::default());
        assert!(design.shared_projection(&folds, &y, false));
        assert!(!design.shared_projection(&folds_contiguous(n, 3), &y, false));
        assert!(design.shared_projection(&folds, &y, true), "p < n / 3: X^T Y is small next to Y");
        let x2 = random_matrix(&mut rng, 60, 40);
        let folds2 = folds_by_group(&(0..60).map(|i| i / 10).collect::<Vec<_>>());
        let design = Design::new(&x2, &[40], folds2.iter().map(|f| f.train.len()), Overrides::default());
        let (few, many) = (random_matrix(&mut rng, 60, 3), random_matrix(&mut rng, 60, 2000));
        assert!(design.shared_projection(&folds2, &few, true), "p > n / 3, but X outweighs Y");
        assert!(!design.shared_projection(&folds2, &many, true), "p > n / 3 and Y outweighs X");
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
    fn banded_ridge_matches_a_brute_force_search() {
        let mut rng = fresh_rng("banded_ridge_matches_a_brute_force_search");
        for (n, widths) in [(90, [6, 10]), (40, [30, 25])] {
            let bands: Vec<Matrix> = widths.iter().map(|&w| random_matrix(&mut rng, n, w)).collect();
            let band_refs: Vec<&Matrix> = bands.iter().collect();
            let x = Matrix::hstack(&band_refs);
            let mut y = signal_and_noise(&mut rng, &bands[0], 6);
            let second = signal_and_noise(&mut rng, &bands[1], 6);
            for (value, extra) in y.data.iter_mut().zip(&second.data) {
                *value += rng.random::<f32>() * extra;
            }
            let config = BandedConfig {
                n_iter: 6,
                alphas: vec![0.1, 1.0, 10.0, 100.0],
                concentration: 1.0,
                seed: rng.random(),
                score: CvScore::L2,
                target_batch: 4,
            };
            let folds = folds_chunked(n, 3, 5, rng.random());
            let result = banded_ridge_cv(&band_refs, &y, &folds, &config).unwrap();
            assert_eq!(result.samples, dirichlet_samples(6, 2, 1.0, config.seed));
            let mut best = vec![(f64::NEG_INFINITY, 0usize, 0usize); y.cols];
            for i in 0..config.n_iter {
                let gamma: Vec<f64> = result.samples.row(i).iter().map(|&g| g as f64).collect();
                let shape: Vec<f64> = (0..x.cols).map(|j| 1.0 / gamma[usize::from(j >= widths[0])]).collect();
                let table = brute_force_scores(&x, &y, &folds, &config.alphas, &shape, config.score);
                for t in 0..y.cols {
                    let scores: Vec<f64> = table.iter().map(|row| row[t]).collect();
                    let (a, score) = best_alpha(&scores, &config.alphas);
                    let actual = result.cv_scores.get(i, t) as f64;
                    assert!((actual - score).abs() <= 1e-4 * score.abs(), "sample {i} target {t}: {actual} vs {score}");
                    if score > best[t].0 + f32::EPSILON as f64 {
                        best[t] = (score, i, a);
                    }
                }
            }
            for (t, &(score, i, a)) in best.iter().enumerate() {
                let chosen_score = result.cv_scores.get(result.best_sample[t], t) as f64;
                assert!(
                    (result.best_sample[t] == i && result.best_alphas[t] == config.alphas[a])
                        || (chosen_score - score).abs() < 1e-5 * score.abs(),
                    "target {t}: chose sample {} alpha {}, brute force sample {i} alpha {}",
                    result.best_sample[t],
                    result.best_alphas[t],
                    config.alphas[a]
                );
                let gamma: Vec<f64> = result.samples.row(result.best_sample[t]).iter().map(|&g| g as f64).collect();
                let penalties: Vec<f64> =
                    (0..x.cols).map(|j| result.best_alphas[t] / gamma[usize::from(j >= widths[0])]).collect();
                let rows: Vec<usize> = (0..n).collect();
                let expected = closed_form(&x, &y, t, &rows, &penalties);
                assert_close(&format!("banded weights of target {t}"), &column(&result.weights, t), &expected, 1e-4);
                for (b, g) in gamma.iter().enumerate() {
                    let delta = result.deltas.get(b, t) as f64;
                    let expected_delta = (g / result.best_alphas[t]).ln();
                    assert!((delta - expected_delta).abs() < 1e-5 * expected_delta.abs().max(1.0));
                }
            }
        }
    }

    #[test]
    fn dirichlet_samples_are_reproducible_points_of_the_simplex() {
        let mut rng = fresh_rng("dirichlet_samples_are_reproducible_points_of_the_simplex");
        let seed = rng.random();
        let samples = dirichlet_samples(50, 3, 0.5, seed);
        assert_eq!(samples, dirichlet_samples(50, 3, 0.5, seed));
        assert_ne!(samples, dirichlet_samples(50, 3, 0.5, seed.wrapping_add(1)));
        assert!(samples.row(0).iter().all(|&g| (g - 1.0 / 3.0).abs() < 1e-7));
        for i in 0..50 {
            let row = samples.row(i);
            assert!(row.iter().all(|&g| (0.0..=1.0).contains(&g)), "row {i}: {row:?}");
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "row {i}: {row:?}");
        }
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

    fn assert_partition(folds: &[Fold], n: usize) {
        let mut count = vec![0; n];
        for fold in folds {
            fold.validation.iter().for_each(|&i| count[i] += 1);
            let mut all: Vec<usize> = fold.train.iter().chain(&fold.validation).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>(), "train and validation must split the rows");
        }
        assert!(count.iter().all(|&c| c == 1), "every row validates exactly once: {count:?}");
    }

    #[test]
    fn fold_helpers_partition_the_rows() {
        let mut rng = fresh_rng("fold_helpers_partition_the_rows");
        let n = rng.random_range(50..200);
        let k = rng.random_range(2..8);
        let contiguous = folds_contiguous(n, k);
        assert_eq!(contiguous.len(), k);
        assert_partition(&contiguous, n);
        for fold in &contiguous {
            let v = &fold.validation;
            assert_eq!(v.last().unwrap() - v[0] + 1, v.len(), "contiguous blocks");
            assert!(v.len() == n / k || v.len() == n / k + 1);
        }

        let seed: u64 = rng.random();
        let chunked = folds_chunked(n, k, 6, seed);
        assert_eq!(chunked.len(), k);
        assert_partition(&chunked, n);
        assert_eq!(chunked, folds_chunked(n, k, 6, seed), "same seed, same folds");
        // Two seeds can shuffle the chunks into the same folds (1 in 126 with
        // 9 chunks and k = 2), so one of eight other seeds must differ.
        assert!(
            (1..=8u64).any(|d| folds_chunked(n, k, 6, seed.wrapping_add(d.wrapping_mul(0x9e37_79b9))) != chunked),
            "other seeds, other folds"
        );
        for fold in &chunked {
            for piece in fold.validation.chunk_by(|a, b| b == &(a + 1)) {
                assert!(piece[0] % 6 == 0, "chunks start on multiples of chunk_len: {piece:?}");
            }
        }

        let groups: Vec<usize> = (0..n).map(|_| rng.random_range(0..5) * 10).collect();
        let by_group = folds_by_group(&groups);
        let mut distinct = groups.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(by_group.len(), distinct.len());
        assert_partition(&by_group, n);
        for (fold, g) in by_group.iter().zip(&distinct) {
            assert!(fold.validation.iter().all(|&i| groups[i] == *g));
            assert!(fold.train.iter().all(|&i| groups[i] != *g));
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
