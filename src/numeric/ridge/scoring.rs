//! The validation scores: the score table of all alphas and targets over
//! the folds ([`cv_score_table`], which runs the plan's fold route and
//! schedule), the products of each fold's operator with a batch of targets,
//! the gathers of Y's rows and columns they need, the two scores and the
//! alpha choice.
//!
//! The operators of all alphas are stacked, so that one f32 product per
//! fold and batch of targets gives every prediction. Per fold that costs
//! `2 n_alphas n_val rank n_targets` flops with `rank = min(n_train, p)`,
//! plus on the SVD path the projection `X_train^T Y_train` (or its shared
//! form, see shared_projection.rs). Nothing larger touches Y.
//!
//! # Scores
//! [`CvScore::L2`] is himalaya's `l2_neg_loss` and scikit-learn's
//! `neg_mean_squared_error`: minus the mean squared validation error of each
//! fold, averaged over folds. [`CvScore::Pearson`] is the validation Pearson
//! r of each fold, averaged over folds. The best alpha maximises the score;
//! like himalaya, ties go to the larger alpha (a `1e-10 * ln(alpha)` slope).

use std::ops::Range;

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::design::Design;
use super::plan::{FoldRoute, PreparedBy, Schedule};
use super::refit::inner_parallelism;
use super::{CvScore, Fold, RidgeError};
use crate::numeric::Matrix;

/// One fold, ready to score: the validation predictions of all alphas are
/// `stacked_t^T * left^T * Y_train` (`Y_train` itself when `left` is `None`).
pub(super) struct FoldOperator {
    /// n_train x rank.
    pub(super) left: Option<Mat<f32>>,
    /// rank x (n_alphas * n_val), transposed so that each alpha's operator is
    /// a block of contiguous columns: alpha `a` owns columns `a * n_val ..`.
    pub(super) stacked_t: Mat<f32>,
    /// SVD path with the shared projection: `X_val` (n_val x p); the
    /// operator then applies to `X^T Y - X_val^T Y_val` (= `X_train^T
    /// Y_train`) instead of `left^T Y_train`.
    pub(super) validation_rows: Option<Mat<f32>>,
    /// The route that prepared it.
    pub(super) prepared_by: PreparedBy,
}

/// Validation scores, target-major: entry `t * n_alphas + a` is the score of
/// alpha `a` for target `t`, averaged over folds, and the route that
/// prepared each fold. Folds one after the other, target batches in
/// parallel; the shared-inverse route prepares every fold of a group of
/// alphas at once. With [`Schedule::PrepareAhead`], the next fold's operator
/// is prepared while the current fold is scored (work-stealing fills the
/// gaps at the fold boundaries: the f64 factorisations then run while the
/// last batches of the scoring finish), at the price of two fold operators
/// in memory at once; with [`Schedule::OneAtATime`], one at a time.
#[allow(clippy::too_many_arguments)]
pub(super) fn cv_score_table(
    design: &Design<'_>,
    gamma: &[f64],
    y: &Matrix,
    folds: &[Fold],
    alphas: &[f64],
    score: CvScore,
    target_batch: usize,
    shared: Option<&Mat<f32>>,
) -> Result<(Vec<f64>, Vec<PreparedBy>), RidgeError> {
    let plan = design.plan;
    let n_alphas = alphas.len();
    let mut table = vec![0.0; y.cols * n_alphas];
    let mut prepared = Vec::with_capacity(folds.len());
    let scoring = Scoring { y, folds, n_alphas, score, target_batch, shared };
    let prepare = |k: usize| -> Result<FoldOperator, RidgeError> {
        let started = std::time::Instant::now();
        let operator = design.fold_operator(gamma, k, &folds[k], alphas, y.cols, shared.is_some(), plan.fallback)?;
        tracing::debug!(fold = k, seconds = started.elapsed().as_secs_f64(), "ridge: fold operator");
        Ok(operator)
    };
    if folds.is_empty() {
        return Ok((table, prepared));
    }
    if let FoldRoute::SharedInverse { group } = plan.folds {
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
            return Ok((table, vec![PreparedBy::SharedInverse; folds.len()]));
        }
        if !plan.fallback {
            return Err(RidgeError::Decomposition(format!(
                "the Cholesky factorisation of the kernel plus one of the alphas {alphas:?}"
            )));
        }
        table.iter_mut().for_each(|value| *value = 0.0);
    }
    if plan.schedule == Schedule::OneAtATime {
        for k in 0..folds.len() {
            let operator = prepare(k)?;
            scoring.fold(k, &operator, 0, &mut table);
            prepared.push(operator.prepared_by);
        }
        return Ok((table, prepared));
    }
    let mut operator = prepare(0)?;
    for k in 0..folds.len() {
        let (next, ()) = rayon::join(
            || (k + 1 < folds.len()).then(|| prepare(k + 1)).transpose(),
            || scoring.fold(k, &operator, 0, &mut table),
        );
        prepared.push(operator.prepared_by);
        match next? {
            Some(next) => operator = next,
            None => break,
        }
    }
    Ok((table, prepared))
}

/// What scoring a fold needs besides its operator.
pub(super) struct Scoring<'a> {
    pub(super) y: &'a Matrix,
    pub(super) folds: &'a [Fold],
    pub(super) n_alphas: usize,
    pub(super) score: CvScore,
    pub(super) target_batch: usize,
    /// The projection that operators with `validation_rows` apply to.
    pub(super) shared: Option<&'a Mat<f32>>,
}

impl Scoring<'_> {
    /// Adds the scores of the operator's alphas, `alphas[first_alpha..]`,
    /// on fold `k` to the table (weighted by one over the number of folds),
    /// target batches in parallel.
    pub(super) fn fold(&self, k: usize, operator: &FoldOperator, first_alpha: usize, table: &mut [f64]) {
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
    /// slices), instead of gathered from row-major Y fold by fold (what
    /// those gathers cost: benches/README.md). Each score is summed over the
    /// folds in the same order.
    pub(super) fn all_folds(&self, operators: &[FoldOperator], first_alpha: usize, table: &mut [f64]) {
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

/// `y[rows, cols]` into `out` as a column-major buffer (each target
/// contiguous: faer's products are about twice as fast with a column-major
/// right-hand side).
pub(super) fn gather_columns(y: &Matrix, rows: &[usize], cols: Range<usize>, out: &mut Vec<f32>) {
    gather(y, rows, cols.len(), |j| cols.start + j, out);
}

/// `out[j * rows.len() + k] = Y[rows[k], column(j)]` for `j < n_cols`.
/// Rows go in tiles of 16, so that each output column is written 16 values
/// at a time while the tile's rows stay in cache (faster than row by row:
/// see benches/README.md).
pub(super) fn gather(y: &Matrix, rows: &[usize], n_cols: usize, column: impl Fn(usize) -> usize, out: &mut Vec<f32>) {
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

pub(super) fn negative_mse(target: &[f32], prediction: &[f32]) -> f64 {
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
pub(super) fn centred_pearson(target: &[f32], target_norm: f64, prediction: &[f32]) -> f64 {
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
pub fn best_alpha(scores: &[f64], alphas: &[f64]) -> (usize, f64) {
    let mut best = (0, f64::NEG_INFINITY);
    for (a, (&score, &alpha)) in scores.iter().zip(alphas).enumerate() {
        let tilted = score + 1e-10 * alpha.ln();
        if tilted > best.1 {
            best = (a, tilted);
        }
    }
    best
}
