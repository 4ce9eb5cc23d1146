//! The shared projection: on the SVD path, with 4 folds or more that each
//! split all rows, the folds take their training projection `X_train^T
//! Y_train` as `X^T Y - X_val^T Y_val` from one shared `X^T Y` (p x n_targets
//! f32): per fold `2 p n_val` f32 flops per target instead of `2 p n_train`,
//! for `2 p n` once. When Y is large enough that memory decides, only if
//! `X^T Y` is at most a third of the bytes of X and Y (p at most about n /
//! 3); the plan decides ([`RoutePlan::shared_projection`]). The downdate
//! route's `Z^T Y` is the same product with `Z = X U`. Both subtract in f32,
//! which [`CANCELLATION_FLOOR`] guards.
//!
//! [`RoutePlan::shared_projection`]: super::plan::RoutePlan::shared_projection

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef};
use rayon::prelude::*;

use super::design::Design;
use super::refit::inner_parallelism;
use super::scoring::gather_columns;
use crate::numeric::Matrix;

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
pub(super) const CANCELLATION_FLOOR: f64 = 1e-2;

impl Design<'_> {
    /// `X^T Y` when the plan says the folds share it.
    pub(super) fn shared_projection_of(&self, y: &Matrix, target_batch: usize) -> Option<Mat<f32>> {
        if !self.plan.shared_projection {
            return None;
        }
        let started = std::time::Instant::now();
        let projection = shared_projection(self.x.as_faer(), y, target_batch);
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "ridge: shared projection X^T Y");
        Some(projection)
    }
}

/// `X^T Y` (p x n_targets, column-major f32), batch by batch in parallel.
pub(super) fn shared_projection(x: MatRef<'_, f32>, y: &Matrix, target_batch: usize) -> Mat<f32> {
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

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::super::folds::{folds_by_group, folds_contiguous};
    use super::super::plan::{FoldMethod, ForcedFolds, PartialPlan, PreparedBy, RoutePlan, Schedule, Shape};
    use super::super::test_helpers::{
        assert_close, brute_force_scores, ridge_cv_forced, ridge_cv_taken, signal_and_noise,
    };
    use super::super::{CvScore, Fold, RidgeConfig};
    use super::*;
    use crate::testing::{fresh_rng, random_matrix};

    /// Whether the plan shares `X^T Y` among `folds`, with the folds
    /// prepared one at a time (`memory_bound`, as when Y is large) or ahead.
    fn shares(x: &Matrix, y: &Matrix, folds: &[Fold], memory_bound: bool) -> bool {
        let schedule = if memory_bound { Schedule::OneAtATime } else { Schedule::PrepareAhead };
        let forced = PartialPlan { schedule: Some(schedule), ..PartialPlan::default() };
        RoutePlan::choose(&Shape::new(x, y, folds, &[1.0, 10.0]), &forced).unwrap().shared_projection
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
        for method in [None, Some(ForcedFolds::Downdate), Some(ForcedFolds::Alone(FoldMethod::Cholesky))] {
            let forced = PartialPlan { folds: method, ..PartialPlan::default() };
            let plan = RoutePlan::choose(&Shape::new(&x, &y, &folds, &alphas), &forced).unwrap();
            assert!(plan.shared_projection, "the folds could share X^T Y");
            let (result, taken) = ridge_cv_taken(&x, &y, &folds, &config, forced).unwrap();
            if method == Some(ForcedFolds::Downdate) {
                // Stories 0, 1, 2 and 4 hold features that their training rows
                // lack: those folds are prepared alone, the others downdated.
                for (k, &route) in taken.folds.iter().enumerate() {
                    let alone = [0, 1, 2, 4].contains(&k);
                    assert_eq!(route == PreparedBy::Downdate, !alone, "fold {k}: {:?}", taken.folds);
                }
            }
            for (a, row) in expected.iter().enumerate() {
                let actual: Vec<f64> = result.cv_scores.row(a).iter().map(|&v| v as f64).collect();
                assert_close(&format!("{method:?}, alpha {:e} trace", alphas[a] / trace), &actual, row, 1e-4);
            }
        }
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
            let forced = PartialPlan { shared_projection: Some(shared), ..PartialPlan::default() };
            let plan = RoutePlan::choose(&Shape::new(&x, &y, &folds, &alphas), &forced).unwrap();
            assert_eq!(plan.shared_projection, shared);
            let result = ridge_cv_forced(&x, &y, &folds, &config, forced).unwrap();
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
        assert!(shares(&x, &y, &folds, false));
        assert!(!shares(&x, &y, &folds_contiguous(n, 3), false));
        assert!(shares(&x, &y, &folds, true), "p < n / 3: X^T Y is small next to Y");
        let x2 = random_matrix(&mut rng, 60, 40);
        let folds2 = folds_by_group(&(0..60).map(|i| i / 10).collect::<Vec<_>>());
        let (few, many) = (random_matrix(&mut rng, 60, 3), random_matrix(&mut rng, 60, 2000));
        assert!(shares(&x2, &few, &folds2, true), "p > n / 3, but X outweighs Y");
        assert!(!shares(&x2, &many, &folds2, true), "p > n / 3 and Y outweighs X");
    }
}
