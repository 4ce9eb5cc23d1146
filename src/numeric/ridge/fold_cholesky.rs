//! Folds prepared alone ([`FoldRoute::PerFold`](super::plan::FoldRoute),
//! and the folds that another route hands back): [`Design::fold_operator`]
//! takes the fold's method from the plan. This file holds the Cholesky
//! method: per alpha one f64 Cholesky factorisation of the fold's training
//! Gram matrix plus alpha and a solve ([`solve_shifted`]), alphas in
//! parallel lanes, compute-bound. It refuses an alpha below `1e-10 *
//! trace(Gram)`, where Cholesky's error (growing like `trace / alpha *
//! f64::EPSILON`) would matter; the eigendecomposition (fold_eigen.rs),
//! which drops directions under rounding level, then serves the fold.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::design::Design;
use super::linalg::{
    cholesky_shifted, cholesky_solve_in_place, copy_tiled, into_lanes, largest_eigenvalue, scale_rows, scale_symmetric,
    trace,
};
use super::plan::{FoldMethod, Path, PreparedBy};
use super::scoring::FoldOperator;
use super::shared_projection::CANCELLATION_FLOOR;
use super::{Fold, RidgeError};

impl Design<'_> {
    /// One fold's operators for all `alphas`, prepared alone by the plan's
    /// method for fold `k`: per-alpha Cholesky, or the eigendecomposition,
    /// which also takes over when an alpha is too small for Cholesky to be
    /// accurate or a factorisation fails (unless `may_fall_back` is false: a
    /// test forced Cholesky, and that is an error). `shared`: on the SVD
    /// path, the fold projects from the shared `X^T Y`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fold_operator(
        &self,
        gamma: &[f64],
        k: usize,
        fold: &Fold,
        alphas: &[f64],
        n_targets: usize,
        shared: bool,
        may_fall_back: bool,
    ) -> Result<FoldOperator, RidgeError> {
        if self.plan.per_fold[k] == FoldMethod::Cholesky {
            if let Some(operator) = self.cholesky_operator(gamma, fold, alphas, shared) {
                return Ok(operator);
            }
            if !may_fall_back {
                return Err(RidgeError::Decomposition(format!(
                    "the Cholesky factorisation of a fold's Gram matrix plus one of the alphas \
                     {alphas:?}"
                )));
            }
        }
        self.eigen_operator(gamma, fold, alphas, n_targets)
    }

    /// SVD path: `stacked[a] = X_val D (D G_train D + alpha I)^-1 D` (stored
    /// transposed), applied to `X_train^T Y_train`. Kernel path: `stacked[a] = K_val,train
    /// (K_train + alpha I)^-1`, applied to `Y_train` directly. Alphas in
    /// parallel lanes (see [`RoutePlan::lanes`](super::plan::RoutePlan::lanes)). `None` when an alpha is below
    /// `1e-10 * trace(Gram)` or a factorisation fails.
    pub(super) fn cholesky_operator(
        &self,
        gamma: &[f64],
        fold: &Fold,
        alphas: &[f64],
        shared: bool,
    ) -> Option<FoldOperator> {
        let n_val = fold.validation.len();
        let prepared_by = PreparedBy::Cholesky;
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
        let (workers, par) =
            self.plan.lanes(alphas.len(), (rank * rank + rank * n_val) * std::mem::size_of::<f64>(), false);
        let blocks: Vec<MatMut<'_, f32>> = stacked_t.par_col_chunks_mut(n_val.max(1)).collect();
        let lanes = into_lanes(alphas.iter().copied().zip(blocks), workers);
        let factorised = lanes.into_par_iter().map(|lane| {
            let (mut system, mut solution) = (Mat::<f64>::zeros(rank, rank), Mat::<f64>::zeros(rank, n_val));
            lane.into_iter().all(|(alpha, block)| {
                if !solve_shifted(gram.as_ref(), rhs.as_ref(), alpha, &mut system, &mut solution, par) {
                    return false;
                }
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
                return Some(FoldOperator { left: Some(left), stacked_t, validation_rows: None, prepared_by });
            }
        }
        Some(FoldOperator { left, stacked_t, validation_rows, prepared_by })
    }
}

/// `solution = (gram + alpha I)^-1 rhs` by Cholesky in f64, `system` holding
/// the factor: one alpha of the per-fold Cholesky method. False when the
/// factorisation fails.
pub(super) fn solve_shifted(
    gram: MatRef<'_, f64>,
    rhs: MatRef<'_, f64>,
    alpha: f64,
    system: &mut Mat<f64>,
    solution: &mut Mat<f64>,
    par: Par,
) -> bool {
    if !cholesky_shifted(system, gram, alpha, par) {
        return false;
    }
    solution.copy_from(rhs);
    cholesky_solve_in_place(system.as_ref(), solution.as_mut(), par);
    true
}
