//! The precision rule: where a factorisation may run in f32 instead of f64.
//!
//! The Gram matrices, factorisations and solves run in f64, the products
//! with Y in f32. Two steps factorise in f32 instead when it costs no
//! accuracy that matters: the shared-inverse route's inverse of `K + alpha
//! I` with its folds' solves, and the refit's direct operators. Both
//! conditions of [`factorises_in_f32`] must hold: the bound on the system's
//! condition number, `(lambda_max + alpha) / alpha`, is at most
//! [`F32_CONDITION_LIMIT`] (32), and no direction dominates the Gram
//! matrix's spectrum (`lambda_max` at most [`F32_SPIKE_LIMIT`], 64, times
//! the mean eigenvalue). Gaussian designs pass the second (ratio about 4),
//! and so did the demo pipeline's designs (random embeddings with word
//! rate: 5.5-28.7; MiniLM features with 4 delays, 753 rows: 31-51); a
//! design whose columns all share one strong component (ratio 100-500 in the
//! tests) does not and stays in f64. Where both hold, f32 is the faster
//! (timings in benches/README.md); the operators' relative error stays at
//! or below about 2.5e-6 (measured at n = 3000: 7.8e-7 at the condition
//! limit on a Gaussian design), and the validation scores move by at most
//! 2e-7 (L2) and 1.3e-6 (Pearson, relative to `max(|r|, 0.1)`) against f64
//! (n = 600, p = 700, 2000 targets). `lambda_max` is estimated from above
//! by the power iteration ([`largest_eigenvalue_estimate`], summarised with
//! the mean eigenvalue as a [`SpectralScale`]). Which rule a run follows is
//! part of its [`RoutePlan`](super::plan::RoutePlan).

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::Distribution;

use super::linalg::trace;

/// The precisions the factorisations run in (see [`F32_CONDITION_LIMIT`]).
pub(super) trait Real: faer::traits::RealField + Copy + Send + Sync {
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
pub(super) struct SpectralScale {
    pub(super) largest: f64,
    pub(super) mean: f64,
}

impl SpectralScale {
    /// No Gram matrix to measure: never f32.
    pub(super) const UNKNOWN: SpectralScale = SpectralScale { largest: f64::INFINITY, mean: 0.0 };

    pub(super) fn of(m: MatRef<'_, f64>) -> SpectralScale {
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
/// of another 150: 97.6%). It costs 32 products of the matrix with four
/// columns (timed in benches/README.md).
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

#[cfg(test)]
mod tests {
    use faer::diag::Diag;
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::evd::{self_adjoint_evd, self_adjoint_evd_scratch, ComputeEigenvectors};
    use rand::Rng;

    use super::super::design::Design;
    use super::super::folds::folds_contiguous;
    use super::super::linalg::{gram_of_rows, largest_eigenvalue};
    use super::super::plan::{PartialPlan, Precision, RoutePlan, Shape};
    use super::*;
    use crate::numeric::Matrix;
    use crate::testing::{fresh_rng, random_matrix};

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
            let y = Matrix::zeros(n, 1);
            let shape = Shape::new(&x, &y, &folds, &[1.0]);
            let plan = RoutePlan::choose(&shape, &PartialPlan::default()).unwrap();
            let double = PartialPlan { precision: Some(Precision::F64), ..PartialPlan::default() };
            let double = RoutePlan::choose(&shape, &double).unwrap();
            let design = Design::new(&x, &[p], rows.clone(), &plan);
            let reference = Design::new(&x, &[p], rows, &double);
            let scale = design.gram_scale();
            let radius = scale.largest;
            assert_eq!(radius > F32_SPIKE_LIMIT * scale.mean, spiked, "{scale:?}");
            // Bounds from 1000 down to 1.01, two of them either side of the limit.
            let alphas: Vec<f64> = [1e-3, 1e-2, 1.0 / 34.0, 1.0 / 29.0, 0.1, 1.0, 100.0]
                .iter()
                .map(|&f| radius * f * 10f64.powf(rng.random_range(-0.01..0.01)))
                .collect();
            let single: Vec<bool> = alphas.iter().map(|&a| plan.single_precision(scale, a)).collect();
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
}
