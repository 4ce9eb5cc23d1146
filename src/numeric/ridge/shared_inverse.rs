//! The shared-inverse (Schur) route, [`FoldRoute::SharedInverse`]: on the
//! kernel path with folds that split all rows, one inverse `P = (K + alpha
//! I)^-1` of the whole kernel per alpha serves every fold, since
//! `K_val,train (K_train + alpha I)^-1 = -P_val,val^-1 P_val,train` (the
//! inverse of a principal block of `K + alpha I` is the Schur complement of
//! the other block in P); each fold adds only an `n_val x n_val`
//! factorisation. In f32 for well-conditioned alphas (see precision.rs).
//!
//! [`FoldRoute::SharedInverse`]: super::plan::FoldRoute::SharedInverse

use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::triangular_inverse::invert_lower_triangular;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::design::Design;
use super::linalg::{
    cholesky_lower, cholesky_shifted, cholesky_solve_in_place, copy_tiled, into_lanes, mirror_lower, trace,
};
use super::plan::PreparedBy;
use super::precision::{Real, SpectralScale};
use super::scoring::FoldOperator;
use super::Fold;

impl Design<'_> {
    /// Every fold's operator for `alphas` (kernel path) from the inverse of
    /// the whole kernel: with `P = (K + alpha I)^-1`, a fold's validation rows
    /// V and training rows T, `K_VT (K_TT + alpha I)^-1 = -P_VV^-1 P_VT` (the
    /// inverse of a principal block of `K + alpha I` is the Schur complement
    /// of the other block in P). One P per alpha, alphas in parallel lanes
    /// (see [`RoutePlan::lanes`](super::plan::RoutePlan::lanes)), each lane with two n x n f64 matrices of
    /// workspace (f32 for its alphas that factorise in f32, `scale` being
    /// the kernel's, see [`RoutePlan::single_precision`](super::plan::RoutePlan::single_precision); a
    /// lane does its f64 alphas first and drops their workspace). `None`
    /// when an alpha is below `1e-10 * trace(K)` (as for the per-fold
    /// Cholesky) or a factorisation fails.
    pub(super) fn schur_operators(
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
        let (workers, par) = self.plan.lanes(alphas.len(), 2 * n * n * std::mem::size_of::<f64>(), false);
        let lanes = into_lanes(alphas.iter().copied().zip(blocks), workers);
        let factorised = lanes.into_par_iter().map(|lane| {
            let (single, double): (Vec<_>, Vec<_>) =
                lane.into_iter().partition(|(alpha, _)| self.plan.single_precision(scale, *alpha));
            schur_lane::<f64>(kernel, folds, double, par) && schur_lane::<f32>(kernel, folds, single, par)
        });
        if !factorised.all(|ok| ok) {
            return None;
        }
        Some(
            stacked
                .into_iter()
                .map(|stacked_t| FoldOperator {
                    left: None,
                    stacked_t,
                    validation_rows: None,
                    prepared_by: PreparedBy::SharedInverse,
                })
                .collect(),
        )
    }
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
pub(super) fn schur_alpha<T: Real>(
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

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::super::folds::folds_by_group;
    use super::super::plan::{FoldRoute, ForcedFolds, PartialPlan, RoutePlan, Shape};
    use super::super::test_helpers::{
        assert_gapped_folds, assert_scores_match_brute_force, ridge_cv_taken, signal_and_noise,
    };
    use super::super::{CvScore, RidgeConfig};
    use super::*;
    use crate::testing::{fresh_rng, random_matrix};

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
        let schur = PartialPlan { folds: Some(ForcedFolds::SharedInverse { group: None }), ..PartialPlan::default() };
        // Alphas in groups of one, of four (4 + 2) and all at once (the
        // automatic size at this scale).
        // One lane with parallel kernels, or one per thread.
        for (group, n_targets, score, workers) in
            [(Some(1), 5, CvScore::L2, None), (Some(4), 40, CvScore::Pearson, Some(1)), (None, 3000, CvScore::L2, None)]
        {
            let y = signal_and_noise(&mut rng, &x, n_targets);
            let config = RidgeConfig { alphas: alphas.clone(), per_target_alpha: true, score, target_batch: 16 };
            let forced = PartialPlan { folds: Some(ForcedFolds::SharedInverse { group }), workers, ..schur };
            let plan = RoutePlan::choose(&Shape::new(&x, &y, &folds, &alphas), &forced).unwrap();
            assert_eq!(plan.folds, FoldRoute::SharedInverse { group: group.unwrap_or(alphas.len()) });
            let (result, taken) = ridge_cv_taken(&x, &y, &folds, &config, forced).unwrap();
            assert_eq!(taken.folds, vec![PreparedBy::SharedInverse; folds.len()]);
            let label = format!("{group:?}");
            assert_scores_match_brute_force(&label, &x, &y, &folds, &alphas, score, &result.cv_scores, 5);
        }
        let y = signal_and_noise(&mut rng, &x, 3);
        let config =
            RidgeConfig { alphas: alphas.clone(), per_target_alpha: true, score: CvScore::L2, target_batch: 2 };
        assert_gapped_folds(&x, &y, &folds, &config, schur);
    }
}
