//! Small dense linear-algebra helpers on faer matrices that every route
//! shares: Cholesky factorisation and solves (in f64 or f32, see
//! [`Real`](super::precision::Real)), the symmetric eigendecomposition with
//! the directions under rounding level dropped, Gram matrices of rows,
//! tiled copies and mirrors, scalings, and the dealing of work into lanes.

use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::evd::{self_adjoint_evd, self_adjoint_evd_scratch, ComputeEigenvectors};
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::triangular_solve::{solve_lower_triangular_in_place, solve_upper_triangular_in_place};
use faer::{Accum, Mat, MatMut, MatRef, Par};

use super::precision::Real;
use super::RidgeError;

/// Cholesky factorisation in place: `L` in the lower triangle. False when
/// the matrix is not numerically positive definite.
pub(super) fn cholesky_lower<T: Real>(m: MatMut<'_, T>, par: Par) -> bool {
    let scratch = cholesky_in_place_scratch::<T>(m.nrows(), par, Default::default());
    let mut memory = MemBuffer::new(scratch);
    cholesky_in_place(m, Default::default(), par, MemStack::new(&mut memory), Default::default()).is_ok()
}

/// `rhs <- (L L^T)^-1 rhs` with `L` from [`cholesky_lower`].
pub(super) fn cholesky_solve_in_place<T: Real>(l: MatRef<'_, T>, mut rhs: MatMut<'_, T>, par: Par) {
    solve_lower_triangular_in_place(l, rhs.as_mut(), par);
    solve_upper_triangular_in_place(l.transpose(), rhs, par);
}

/// `gram + alpha I` into `system` (in its precision), factorised in place
/// by [`cholesky_lower`].
pub(super) fn cholesky_shifted<T: Real>(system: &mut Mat<T>, gram: MatRef<'_, f64>, alpha: f64, par: Par) -> bool {
    for j in 0..gram.ncols() {
        let source = gram.col(j).try_as_col_major().expect("a column is contiguous");
        for (value, &g) in system.col_as_slice_mut(j).iter_mut().zip(source.as_slice()) {
            *value = T::of(g);
        }
        system[(j, j)] = T::of(gram[(j, j)] + alpha);
    }
    cholesky_lower(system.as_mut(), par)
}

/// Eigendecomposition of a symmetric matrix; returns the eigenvalues above
/// `dim * eps * lambda_max` in decreasing order and their eigenvectors.
pub(super) fn eigh_descending(
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

/// The largest eigenvalue of a symmetric matrix (values only).
pub(super) fn largest_eigenvalue(m: MatRef<'_, f64>) -> f64 {
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

/// `destination = convert(source)` element by element, where `source` may
/// be a transposed or row-major view (the destination's columns must be
/// contiguous): the copy goes in tiles of 64 rows, so that neither side is
/// walked with a stride across the whole matrix. Every route's fold
/// operators and the refit's direct operators are stored through it.
pub(super) fn copy_tiled<S: Copy, D>(source: MatRef<'_, S>, mut destination: MatMut<'_, D>, convert: impl Fn(S) -> D) {
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
pub(super) fn mirror_lower<T: Copy>(m: &mut Mat<T>) {
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

pub(super) fn trace(m: MatRef<'_, f64>) -> f64 {
    (0..m.nrows()).map(|k| m[(k, k)]).sum()
}

/// `items` dealt round-robin into `workers` lanes.
pub(super) fn into_lanes<T>(items: impl IntoIterator<Item = T>, workers: usize) -> Vec<Vec<T>> {
    let workers = workers.max(1);
    let mut lanes: Vec<Vec<T>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        lanes[i % workers].push(item);
    }
    lanes
}

/// `a a^T` in f64 (both triangles filled), computing one triangle.
pub(super) fn gram_of_rows(a: MatRef<'_, f64>) -> Mat<f64> {
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

pub(super) fn product_f32(lhs: MatRef<'_, f64>, rhs: MatRef<'_, f64>, par: Par) -> Mat<f32> {
    let mut out = Mat::<f64>::zeros(lhs.nrows(), rhs.ncols());
    matmul(out.as_mut(), Accum::Replace, lhs, rhs, 1.0, par);
    to_f32(out.as_ref())
}

pub(super) fn to_f32(m: MatRef<'_, f64>) -> Mat<f32> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)] as f32)
}

pub(super) fn scale_symmetric(m: &mut Mat<f64>, scales: &[f64]) {
    if scales.iter().all(|&s| s == 1.0) {
        return;
    }
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            m[(i, j)] *= scales[i] * scales[j];
        }
    }
}

pub(super) fn scale_rows(m: &mut Mat<f64>, scales: &[f64]) {
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            m[(i, j)] *= scales[i];
        }
    }
}
