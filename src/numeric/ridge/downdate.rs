//! The downdate route, [`FoldRoute::Downdate`]: on the SVD path with folds
//! that split all rows (unit band weights), one eigendecomposition `X^T X =
//! U diag(lambda) U^T` serves every fold and alpha. A fold's training Gram
//! matrix is the whole one less its validation rows', so Woodbury turns its
//! operator into a solve with an `n_val x n_val` matrix, and with `Z = X U`
//! the folds score in the eigenbasis against `Z^T Y - Z_val^T Y_val` (see
//! [`Design::downdate_operator`]); the refit then reuses the decomposition.
//! A fold whose training rows lack a direction that its validation rows have
//! is prepared alone instead (see [`CANCELLATION_FLOOR`]).
//!
//! [`FoldRoute::Downdate`]: super::plan::FoldRoute::Downdate

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::design::{Design, FullSpectrum};
use super::linalg::{
    cholesky_lower, cholesky_solve_in_place, copy_tiled, eigh_descending, into_lanes, largest_eigenvalue, to_f32, trace,
};
use super::plan::PreparedBy;
use super::scoring::{FoldOperator, Scoring};
use super::shared_projection::{shared_projection, CANCELLATION_FLOOR};
use super::{CvScore, Fold, RidgeError};
use crate::numeric::Matrix;

/// The downdate route's decomposition of the whole design (unit band
/// weights): `X^T X = vectors diag(lambdas) vectors^T`, and `z = X vectors`.
pub(super) struct DowndateSpectrum {
    lambdas: Vec<f64>,
    /// p x rank.
    vectors: Mat<f64>,
    /// n x rank.
    z: Mat<f64>,
}

impl Design<'_> {
    /// The downdate route's shared decomposition: `X^T X = U diag(lambda)
    /// U^T` (directions under rounding level dropped, as for the refit) and
    /// `Z = X U` in f64. `None` when an alpha is below `1e-10 * trace(X^T X)`
    /// (a fold's own Gram matrix may then be singular where the whole one is
    /// not, which the per-fold eigendecomposition handles).
    pub(super) fn downdate_spectrum(&self, alphas: &[f64], par: Par) -> Result<Option<DowndateSpectrum>, RidgeError> {
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
    pub(super) fn downdate_serves(
        &self,
        spectrum: &DowndateSpectrum,
        z_val: MatRef<'_, f64>,
        smallest_alpha: f64,
    ) -> bool {
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
    /// [`RoutePlan::lanes`](super::plan::RoutePlan::lanes)). `None` when a factorisation fails.
    pub(super) fn downdate_operator(
        &self,
        spectrum: &DowndateSpectrum,
        z_val: MatRef<'_, f64>,
        alphas: &[f64],
    ) -> Option<FoldOperator> {
        let (n_val, rank) = (z_val.nrows(), spectrum.lambdas.len());
        let mut stacked_t = Mat::<f32>::zeros(rank, alphas.len() * n_val);
        let (workers, par) =
            self.plan.lanes(alphas.len(), (n_val * n_val + n_val * rank) * std::mem::size_of::<f64>(), false);
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
        Some(FoldOperator { left: None, stacked_t, validation_rows, prepared_by: PreparedBy::Downdate })
    }
}

/// What the downdate route's scoring gives: the score table, the
/// decomposition for the refit, and the route that prepared each fold.
pub(super) type DowndateScores = (Vec<f64>, FullSpectrum, Vec<PreparedBy>);

/// The score table (as [`cv_score_table`](super::scoring::cv_score_table)) on
/// the downdate route, with the decomposition for the refit and the route
/// that prepared each fold. Each fold's operator is prepared while the
/// previous fold is scored. `None` when the route cannot serve these alphas
/// (a tiny alpha, a failed factorisation): the caller then prepares the
/// folds one by one.
pub(super) fn downdate_score_table(
    design: &Design<'_>,
    y: &Matrix,
    folds: &[Fold],
    alphas: &[f64],
    score: CvScore,
    target_batch: usize,
) -> Result<Option<DowndateScores>, RidgeError> {
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
            Some(design.fold_operator(&[1.0], k, &folds[k], alphas, y.cols, false, true)?)
        };
        tracing::debug!(fold = k, seconds = started.elapsed().as_secs_f64(), "ridge: fold operator (downdate)");
        Ok(operator)
    };
    let mut prepared = Vec::with_capacity(folds.len());
    let Some(mut operator) = prepare(0)? else {
        return Ok(None);
    };
    for k in 0..folds.len() {
        let (next, ()) = rayon::join(
            || (k + 1 < folds.len()).then(|| prepare(k + 1)).transpose(),
            || scoring.fold(k, &operator, 0, &mut table),
        );
        prepared.push(operator.prepared_by);
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
    Ok(Some((table, FullSpectrum { lambdas, left, right: to_f32(vectors.as_ref()) }, prepared)))
}

/// The downdate route's system for one fold and alpha: returns `A = Z_V
/// diag(1 / (lambda + alpha))` (n_val x rank) and puts `I - A Z_V^T` into
/// `system` (n_val x n_val).
pub(super) fn downdate_system(
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

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::super::folds::folds_by_group;
    use super::super::plan::{FoldRoute, ForcedFolds, PartialPlan, RoutePlan, Shape};
    use super::super::test_helpers::{
        assert_close, assert_gapped_folds, assert_scores_match_brute_force, ridge_cv_forced, ridge_cv_taken,
        signal_and_noise,
    };
    use super::super::{fit_ridge, RidgeConfig};
    use super::*;
    use crate::testing::{fresh_rng, random_matrix};

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
            let forced = PartialPlan { workers, ..PartialPlan::default() };
            let plan = RoutePlan::choose(&Shape::new(&x, &y, &folds, &alphas), &forced).unwrap();
            assert_eq!(plan.folds, FoldRoute::Downdate, "the costs pick the downdate route here");
            let (result, taken) = ridge_cv_taken(&x, &y, &folds, &config, forced).unwrap();
            assert_eq!(taken.folds, vec![PreparedBy::Downdate; folds.len()], "the route serves every fold");
            assert!(taken.refit_spectrum && taken.refit_direct.is_empty(), "the refit reuses the spectrum");
            assert_scores_match_brute_force("downdate", &x, &y, &folds, &alphas, score, &result.cv_scores, 6);
            let refit = fit_ridge(&x, &y, &result.best_alphas).unwrap();
            assert_close("refit through the downdate spectrum", &as_f64(&result.weights), &as_f64(&refit), 1e-4);
        }
        let y = signal_and_noise(&mut rng, &x, 3);
        let config =
            RidgeConfig { alphas: alphas.clone(), per_target_alpha: true, score: CvScore::L2, target_batch: 2 };
        let downdate = PartialPlan { folds: Some(ForcedFolds::Downdate), ..PartialPlan::default() };
        assert_gapped_folds(&x, &y, &folds, &config, downdate);
        let trace: f64 = (0..n).flat_map(|i| x.row(i).iter().map(|&v| (v as f64).powi(2))).sum();
        let tiny = RidgeConfig { alphas: vec![1e-12 * trace, 1.0], ..config };
        let refused = ridge_cv_forced(&x, &y, &folds, &tiny, downdate);
        assert!(matches!(refused, Err(RidgeError::Decomposition(_))), "an alpha below 1e-10 trace");
    }
}
