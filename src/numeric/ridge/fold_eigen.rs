//! The eigendecomposition method of a fold prepared alone: one
//! eigendecomposition of the fold's training Gram matrix serves every alpha
//! (`stacked[a] = X_val R diag(1 / (lambda + alpha))`), memory-bound. The
//! plan picks it when the alphas are so many that it costs fewer flops than
//! per-alpha Cholesky (see [`EigenExtra`] for the f32 work it adds); it is
//! also the accurate route for alphas below `1e-10 * trace(Gram)`, since it
//! drops the directions under rounding level.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};

use super::design::Design;
use super::plan::PreparedBy;
use super::scoring::FoldOperator;
use super::{Fold, RidgeError};

/// The f32 work that the eigendecomposition route adds to a fold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EigenExtra {
    /// Project the training targets, `L^T Y_train`: `2 rank n_train n_targets`.
    Project,
    /// Fold `L` into the operator once, `2 rank n_train n_predictions`; the
    /// scoring product then runs `n_train` deep instead of `rank`.
    Fold,
}

impl EigenExtra {
    /// The cheaper of the two and its flops.
    pub(super) fn cheaper(n_train: f64, rank: f64, n_predictions: f64, n_targets: f64) -> (EigenExtra, f64) {
        let project = 2.0 * rank * n_train * n_targets;
        let fold = 2.0 * rank * n_train * n_predictions + 2.0 * n_predictions * (n_train - rank) * n_targets;
        if fold < project {
            (EigenExtra::Fold, fold)
        } else {
            (EigenExtra::Project, project)
        }
    }
}

impl Design<'_> {
    /// `stacked[a] = X_val R diag(1 / (lambda + alpha))` (transposed), applied
    /// to `L^T Y_train`.
    ///
    /// With many targets the projection `L^T Y_train` is folded into the
    /// operator instead (`stacked_t = L stacked_t`, one product per fold)
    /// when that costs fewer flops.
    pub(super) fn eigen_operator(
        &self,
        gamma: &[f64],
        fold: &Fold,
        alphas: &[f64],
        n_targets: usize,
    ) -> Result<FoldOperator, RidgeError> {
        let prepared_by = PreparedBy::Eigen;
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
            EigenExtra::Project => {
                Ok(FoldOperator { left: Some(spectrum.left), stacked_t, validation_rows: None, prepared_by })
            }
            EigenExtra::Fold => {
                let mut folded = Mat::<f32>::zeros(fold.train.len(), alphas.len() * n_val);
                let par = Par::rayon(0);
                matmul(folded.as_mut(), Accum::Replace, spectrum.left.as_ref(), stacked_t.as_ref(), 1.0, par);
                Ok(FoldOperator { left: None, stacked_t: folded, validation_rows: None, prepared_by })
            }
        }
    }
}
