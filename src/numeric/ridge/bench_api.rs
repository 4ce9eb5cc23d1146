//! The steps of ridge_cv's routes, one alpha at a time, for
//! examples/ridge_bench.rs, which times the factorisations alone on the
//! shapes of a fit. These are the functions the routes themselves run; they
//! are public only for that bench and not a stable API.

use faer::{Mat, MatRef, Par};

use super::fold_cholesky::solve_shifted;
use super::plan::Path;
use super::refit::direct_operator_in;
use super::shared_inverse::schur_alpha;
use super::Fold;
use crate::numeric::Matrix;

/// `a a^T` in f64, as the design computes its Gram matrices (`X X^T` from
/// X, `X^T X` from `X^T`).
pub fn gram_of_rows(a: MatRef<'_, f64>) -> Mat<f64> {
    super::linalg::gram_of_rows(a)
}

/// One alpha of the shared-inverse route on `kernel` (n x n, every fold
/// splitting its n rows): the inverse of `kernel + alpha I` (Cholesky,
/// triangular inverse, product), then per fold a Cholesky factorisation of
/// its `n_val x n_val` block and a solve, into the fold's operator (n_train
/// x n_val). In f32 when `single`, else in f64; `None` when a factorisation
/// fails.
pub fn shared_inverse_alpha(
    kernel: MatRef<'_, f64>,
    folds: &[Fold],
    alpha: f64,
    single: bool,
    par: Par,
) -> Option<Vec<Mat<f32>>> {
    let n = kernel.nrows();
    let mut operators: Vec<Mat<f32>> =
        folds.iter().map(|fold| Mat::zeros(fold.train.len(), fold.validation.len())).collect();
    let blocks = operators.iter_mut().map(|operator| operator.as_mut()).collect();
    let factorised = if single {
        let (mut system, mut inverse) = (Mat::<f32>::zeros(n, n), Mat::<f32>::zeros(n, n));
        schur_alpha(kernel, folds, alpha, blocks, &mut system, &mut inverse, par)
    } else {
        let (mut system, mut inverse) = (Mat::<f64>::zeros(n, n), Mat::<f64>::zeros(n, n));
        schur_alpha(kernel, folds, alpha, blocks, &mut system, &mut inverse, par)
    };
    factorised.then_some(operators)
}

/// One fold and alpha of the per-fold Cholesky route: `(gram + alpha
/// I)^-1 rhs` in f64, with `gram` the fold's `d x d` training Gram matrix
/// and `rhs` its `d x n_val` right-hand side; `None` when the factorisation
/// fails.
pub fn per_fold_alpha(gram: MatRef<'_, f64>, rhs: MatRef<'_, f64>, alpha: f64, par: Par) -> Option<Mat<f64>> {
    let mut system = Mat::<f64>::zeros(gram.nrows(), gram.ncols());
    let mut solution = Mat::<f64>::zeros(rhs.nrows(), rhs.ncols());
    solve_shifted(gram, rhs, alpha, &mut system, &mut solution, par).then_some(solution)
}

/// One of the refit's direct operators (p x n): a Cholesky factorisation
/// of `gram + alpha I` and a solve with X, where `gram` is X's kernel when
/// `n < p`, else `X^T X`. In f32 when `single`, else in f64; `None` when the
/// factorisation fails.
pub fn direct_operator(x: &Matrix, gram: MatRef<'_, f64>, alpha: f64, single: bool, par: Par) -> Option<Mat<f32>> {
    let path = Path::for_shape(x.rows, x.cols);
    if single {
        direct_operator_in::<f32>(x, gram, path, alpha, par)
    } else {
        direct_operator_in::<f64>(x, gram, path, alpha, par)
    }
}
