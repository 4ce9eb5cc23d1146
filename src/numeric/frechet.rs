//! The Frechet distance between two Gaussians fitted to feature sets (the
//! FID's formula), in float64:
//! d^2 = ||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2)).
//! The trace of the matrix square root is computed as the sum of the square
//! roots of the eigenvalues of S_1^(1/2) S_2 S_1^(1/2) (similar to S_1 S_2,
//! symmetric positive semi-definite), with S_1^(1/2) from S_1's symmetric
//! eigendecomposition; scipy.linalg.sqrtm of S_1 S_2 is the reference the
//! tests compare with. Covariances use n - 1 (numpy's `np.cov`).

use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::{self_adjoint_evd, self_adjoint_evd_scratch, ComputeEigenvectors};
use faer::{Mat, MatRef, Par};

/// Mean and covariance (n - 1) of `rows` x `dim` features, row-major.
pub fn gaussian_fit(features: &[f32], rows: usize, dim: usize) -> (Vec<f64>, Mat<f64>) {
    assert_eq!(features.len(), rows * dim);
    let mut mean = vec![0.0f64; dim];
    for row in features.chunks(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= rows as f64);
    let mut cov = Mat::<f64>::zeros(dim, dim);
    for row in features.chunks(dim) {
        for i in 0..dim {
            let di = row[i] as f64 - mean[i];
            for j in 0..=i {
                cov[(i, j)] += di * (row[j] as f64 - mean[j]);
            }
        }
    }
    let denominator = (rows.max(2) - 1) as f64;
    for i in 0..dim {
        for j in 0..=i {
            let value = cov[(i, j)] / denominator;
            cov[(i, j)] = value;
            cov[(j, i)] = value;
        }
    }
    (mean, cov)
}

/// Eigenvalues and eigenvectors of a symmetric matrix.
fn eigh(m: MatRef<'_, f64>) -> (Vec<f64>, Mat<f64>) {
    let n = m.nrows();
    let mut vectors = Mat::<f64>::zeros(n, n);
    let mut values = Diag::<f64>::zeros(n);
    let scratch = self_adjoint_evd_scratch::<f64>(n, ComputeEigenvectors::Yes, Par::Seq, Default::default());
    let mut memory = MemBuffer::new(scratch);
    self_adjoint_evd(
        m,
        values.as_mut(),
        Some(vectors.as_mut()),
        Par::Seq,
        MemStack::new(&mut memory),
        Default::default(),
    )
    .expect("symmetric eigendecomposition of a covariance");
    let values = values.column_vector();
    ((0..n).map(|k| values[k]).collect(), vectors)
}

/// The Frechet distance between N(mu_1, S_1) and N(mu_2, S_2).
pub fn frechet_distance(mu1: &[f64], s1: MatRef<'_, f64>, mu2: &[f64], s2: MatRef<'_, f64>) -> f64 {
    let n = mu1.len();
    let mean_term: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b) * (a - b)).sum();
    let (values, vectors) = eigh(s1);
    // S_1^(1/2) = V diag(sqrt(max(l, 0))) V^T.
    let roots: Vec<f64> = values.iter().map(|&l| l.max(0.0).sqrt()).collect();
    let root = Mat::<f64>::from_fn(n, n, |i, j| (0..n).map(|k| vectors[(i, k)] * roots[k] * vectors[(j, k)]).sum());
    let product = &root * s2 * &root;
    let symmetric = Mat::<f64>::from_fn(n, n, |i, j| 0.5 * (product[(i, j)] + product[(j, i)]));
    let (inner, _) = eigh(symmetric.as_ref());
    let trace_root: f64 = inner.iter().map(|&l| l.max(0.0).sqrt()).sum();
    let trace = |m: MatRef<'_, f64>| (0..n).map(|i| m[(i, i)]).sum::<f64>();
    mean_term + trace(s1) + trace(s2) - 2.0 * trace_root
}

/// The Frechet distance between the Gaussians fitted to two feature sets
/// (`dim` columns each, row-major).
pub fn frechet_distance_of(a: &[f32], b: &[f32], dim: usize) -> f64 {
    let (mu1, s1) = gaussian_fit(a, a.len() / dim, dim);
    let (mu2, s2) = gaussian_fit(b, b.len() / dim, dim);
    frechet_distance(&mu1, s1.as_ref(), &mu2, s2.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn identical_sets_are_at_zero_and_a_shift_adds_its_square() {
        let mut rng = crate::testing::fresh_rng("frechet");
        let dim = 5;
        let a: Vec<f32> = (0..200 * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        assert!(frechet_distance_of(&a, &a, dim).abs() < 1e-9);
        let shifted: Vec<f32> = a.iter().enumerate().map(|(i, v)| if i % dim == 0 { v + 3.0 } else { *v }).collect();
        assert!((frechet_distance_of(&a, &shifted, dim) - 9.0).abs() < 1e-4);
    }
}
