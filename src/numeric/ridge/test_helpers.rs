//! Helpers of the ridge module's unit tests: data with a known signal,
//! float64 references (the closed form per fold, a brute-force score table)
//! and comparisons, and ridge_cv with routes forced.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::plan::{PartialPlan, RoutesTaken};
use super::scoring::{centred_pearson, negative_mse};
use super::{predict, ridge_cv, ridge_cv_inner, CvScore, Fold, RidgeConfig, RidgeCvResult, RidgeError};
use crate::numeric::Matrix;
use crate::testing::random_matrix;

/// ridge_cv with the routes that `forced` fixes (the rest chosen as usual),
/// and the routes that ran.
pub(super) fn ridge_cv_taken(
    x: &Matrix,
    y: &Matrix,
    folds: &[Fold],
    config: &RidgeConfig,
    forced: PartialPlan,
) -> Result<(RidgeCvResult, RoutesTaken), RidgeError> {
    ridge_cv_inner(x, y, folds, config, &forced, None)
}

/// ridge_cv with the routes that `forced` fixes.
pub(super) fn ridge_cv_forced(
    x: &Matrix,
    y: &Matrix,
    folds: &[Fold],
    config: &RidgeConfig,
    forced: PartialPlan,
) -> Result<RidgeCvResult, RidgeError> {
    ridge_cv_taken(x, y, folds, config, forced).map(|(result, _)| result)
}

/// A matrix's values as f64.
pub(super) fn as_f64(m: &Matrix) -> Vec<f64> {
    m.data.iter().map(|&v| v as f64).collect()
}

/// Y = X W + noise, with a different noise level per target so that the
/// best alphas differ.
pub(super) fn signal_and_noise(rng: &mut ChaCha8Rng, x: &Matrix, n_targets: usize) -> Matrix {
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

pub(super) fn to_f64(m: &Matrix) -> Vec<Vec<f64>> {
    (0..m.rows).map(|i| m.row(i).iter().map(|&v| v as f64).collect()).collect()
}

/// Solves the symmetric positive definite system `a x = b` by Cholesky, in f64.
pub(super) fn cholesky_solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
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
pub(super) fn closed_form(x: &Matrix, y: &Matrix, target: usize, rows: &[usize], penalties: &[f64]) -> Vec<f64> {
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

pub(super) fn assert_close(label: &str, actual: &[f64], expected: &[f64], relative: f64) {
    let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    let worst = actual.iter().zip(expected).map(|(a, e)| (a - e).abs()).fold(0.0, f64::max);
    assert!(
        worst <= relative * scale,
        "{label}: max |difference| {worst:.3e} exceeds {relative:e} x max |expected| {scale:.3e}"
    );
}

pub(super) fn column(m: &Matrix, j: usize) -> Vec<f64> {
    (0..m.rows).map(|i| m.get(i, j) as f64).collect()
}

/// Folds that leave a row out of both parts: refused by a route that
/// needs folds splitting all rows when `forced`, and scored as the
/// brute force when the route is chosen automatically.
pub(super) fn assert_gapped_folds(x: &Matrix, y: &Matrix, folds: &[Fold], config: &RidgeConfig, forced: PartialPlan) {
    let mut gapped = folds.to_vec();
    let left_out = gapped[0].train.remove(0);
    let refused = ridge_cv_forced(x, y, &gapped, config, forced);
    assert!(matches!(refused, Err(RidgeError::Config(_))), "row {left_out} is in no part of fold 0");
    let automatic = ridge_cv(x, y, &gapped, config).unwrap();
    let (alphas, score) = (&config.alphas, config.score);
    assert_scores_match_brute_force("gapped folds", x, y, &gapped, alphas, score, &automatic.cv_scores, y.cols);
}

/// Holds the score table of `n_checked` of y's targets (evenly spaced)
/// to [`brute_force_scores`] with unit penalties, within 1e-4.
#[allow(clippy::too_many_arguments)]
pub(super) fn assert_scores_match_brute_force(
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
pub(super) fn brute_force_scores(
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
                                let centred: Vec<f32> = observed.iter().map(|&v| (v as f64 - mean) as f32).collect();
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
