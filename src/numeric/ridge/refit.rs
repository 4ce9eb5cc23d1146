//! The refit: after the scoring, with each target's alpha known, the
//! weights on all rows. Each alpha takes one of two solvers (see
//! [`RefitRoute`]):
//! - a direct operator, `A = X^T (K + alpha I)^-1` (kernel path) or
//!   `(X^T X + alpha I)^-1 X^T` (SVD path), p x n, from one Cholesky
//!   factorisation and a solve with X (f64, or f32 for well-conditioned alphas, see
//!   precision.rs); each target then costs `2 n p` f32 flops. Taken for the
//!   alphas that many targets chose (the usual case: at n = 3000, p = 3072
//!   the flop count favours it from about 7000 targets per alpha, and when
//!   it spares the eigendecomposition altogether).
//! - the eigendecomposition of the full Gram matrix in f64, which writes
//!   every solve as `w(alpha) = R diag(1 / (lambda + alpha)) L^T y`: on the
//!   SVD path `X^T X = V diag(lambda) V^T`, `L = X V` (that is `U S`) and `R
//!   = V`; on the kernel path `X X^T = U diag(lambda) U^T`, `L = U` and `R =
//!   X^T U` (that is `V S`). This is the SVD of X without a division by
//!   small singular values. Eigenvalues below `max(n, p) * f64::EPSILON *
//!   lambda_max` are dropped: they are directions that f32 inputs cannot
//!   resolve. Each target then costs `2 (n + p) rank` flops in f32, whatever
//!   its alpha; the decomposition itself is a fixed cost, worth it when many
//!   alphas have few targets each, and the accurate route for alphas below
//!   `1e-10 * trace(Gram)`.
//!
//! The weights go out in batches of targets, computed in parallel, either
//! into one p x n_targets matrix ([`refit`]) or block by block to a sink
//! ([`refit_each`], for [`ridge_cv_streaming`](super::ridge_cv_streaming)).
//!
//! [`RefitRoute`]: super::plan::RefitRoute

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::design::{Design, FullSpectrum};
use super::linalg::{cholesky_shifted, cholesky_solve_in_place, copy_tiled, into_lanes, trace};
use super::plan::{Path, RefitRoute, Schedule};
use super::precision::{Real, SpectralScale};
use super::scoring::gather;
use super::{BlockSink, RidgeError};
use crate::numeric::Matrix;

/// How the refit solves each target: alphas with a direct operator
/// `A_alpha` (p x n, the weights are `A_alpha y`) use it, the others the
/// spectrum.
pub(super) struct RefitSolver {
    pub(super) spectrum: Option<FullSpectrum>,
    pub(super) direct: Vec<(f64, Mat<f32>)>,
}

impl RefitSolver {
    fn direct_index(&self, alpha: f64) -> Option<usize> {
        self.direct.iter().position(|(a, _)| *a == alpha)
    }
}

impl Design<'_> {
    /// The refit's solver for targets with alphas `alphas` (one per target;
    /// unit band weights), by the plan's [`RefitRoute`]: the alphas with the
    /// most targets go direct first, as many as
    /// [`RefitRoute::direct_count`] says. Building a direct operator takes
    /// an f64 copy of the Gram matrix and of X, in parallel lanes (see
    /// [`RoutePlan::lanes`](super::plan::RoutePlan::lanes)). Alphas below
    /// `1e-10 * trace(Gram)` always take the spectrum, which is the accurate
    /// route there. `spectrum`: one already computed (the downdate route's).
    pub(super) fn refit_solver(
        &self,
        alphas: &[f64],
        spectrum: Option<FullSpectrum>,
    ) -> Result<RefitSolver, RidgeError> {
        let plan = self.plan;
        // A spectrum already computed (the downdate route's) serves every
        // alpha for less than any direct operator costs.
        if let Some(spectrum) = spectrum.filter(|_| plan.refit != RefitRoute::Direct) {
            return Ok(RefitSolver { spectrum: Some(spectrum), direct: Vec::new() });
        }
        let (n, p) = (self.x.rows as f64, self.x.cols as f64);
        let path = self.path(self.x.rows);
        let m = match path {
            Path::Svd => p,
            Path::Kernel => n,
        };
        let tiny = 1e-10 * self.full_gram().map_or(0.0, |gram| trace(gram.as_ref()));
        let mut counts: Vec<(f64, usize)> = Vec::new();
        for &alpha in alphas {
            match counts.iter_mut().find(|(a, _)| *a == alpha) {
                Some((_, count)) => *count += 1,
                None => counts.push((alpha, 1)),
            }
        }
        // Candidates for the direct route, most targets first.
        let mut candidates: Vec<(f64, usize)> = counts.iter().copied().filter(|&(alpha, _)| alpha >= tiny).collect();
        // Targets whose alpha is too small for Cholesky: always the spectrum.
        let spectrum_only: usize = counts.iter().filter(|&&(alpha, _)| alpha < tiny).map(|c| c.1).sum();
        candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.total_cmp(&b.0)));
        let mut n_direct = plan.refit.direct_count(self.x.rows, self.x.cols, path, &candidates, spectrum_only);
        let started = std::time::Instant::now();
        let workspace = (m * m + n * p) as usize * std::mem::size_of::<f64>();
        let (workers, par) = plan.lanes(n_direct, workspace, plan.schedule == Schedule::OneAtATime);
        let lanes = into_lanes(candidates[..n_direct].iter().map(|&(alpha, _)| alpha), workers);
        // Estimated here, before the lanes: a lane that waited on another's
        // estimate could, through rayon's work stealing, run a third lane
        // that waits on the same estimate on the same thread.
        let scale = if n_direct > 0 { self.gram_scale() } else { SpectralScale::UNKNOWN };
        let built: Vec<Vec<(f64, Option<Mat<f32>>)>> = lanes
            .into_par_iter()
            .map(|lane| lane.into_iter().map(|alpha| (alpha, self.direct_operator(alpha, scale, par))).collect())
            .collect();
        let direct: Vec<(f64, Mat<f32>)> =
            built.into_iter().flatten().filter_map(|(alpha, operator)| operator.map(|o| (alpha, o))).collect();
        n_direct = direct.len();
        if n_direct > 0 {
            tracing::debug!(alphas = n_direct, seconds = started.elapsed().as_secs_f64(), "ridge: refit operators");
        }
        let needs_spectrum = alphas.iter().any(|a| !direct.iter().any(|(d, _)| d == a));
        let spectrum = if needs_spectrum { Some(self.decompose_full(&[1.0], Par::rayon(0))?) } else { None };
        Ok(RefitSolver { spectrum, direct })
    }

    /// `A = X^T (K + alpha I)^-1` on the kernel path, `(X^T X + alpha I)^-1 X^T`
    /// on the SVD path (p x n, in f32 from a Cholesky solve with X, in f64 or,
    /// where [`RoutePlan::single_precision`](super::plan::RoutePlan::single_precision) allows for the Gram matrix's
    /// `scale`, in f32); `None` when the factorisation fails.
    pub(super) fn direct_operator(&self, alpha: f64, scale: SpectralScale, par: Par) -> Option<Mat<f32>> {
        if self.plan.single_precision(scale, alpha) {
            direct_operator_in::<f32>(self.x, self.full_gram()?.as_ref(), self.path(self.x.rows), alpha, par)
        } else {
            direct_operator_in::<f64>(self.x, self.full_gram()?.as_ref(), self.path(self.x.rows), alpha, par)
        }
    }
}

/// A direct operator in precision `T` (see [`Design::direct_operator`]),
/// for X and its Gram matrix on `path`; `None` when the factorisation fails.
pub(super) fn direct_operator_in<T: Real>(
    x: &Matrix,
    gram: MatRef<'_, f64>,
    path: Path,
    alpha: f64,
    par: Par,
) -> Option<Mat<f32>> {
    let (n, p) = (x.rows, x.cols);
    let mut system = Mat::<T>::zeros(gram.nrows(), gram.ncols());
    if !cholesky_shifted(&mut system, gram, alpha, par) {
        return None;
    }
    // Kernel path: solve with X (n x p), A is the transpose; SVD path:
    // solve with X^T (p x n), A is the solution. The kernel path's copies
    // in and out transpose, so they go in tiles (see copy_tiled; timings
    // in benches/README.md).
    let mut solution = match path {
        Path::Kernel => {
            let mut solution = Mat::<T>::zeros(n, p);
            copy_tiled(x.as_faer(), solution.as_mut(), |v| T::of(v as f64));
            solution
        }
        Path::Svd => Mat::<T>::from_fn(p, n, |i, j| T::of(x.get(j, i) as f64)),
    };
    cholesky_solve_in_place(system.as_ref(), solution.as_mut(), par);
    drop(system);
    Some(match path {
        Path::Kernel => {
            let mut operator = Mat::<f32>::zeros(p, n);
            copy_tiled(solution.transpose(), operator.as_mut(), |v: T| v.narrow());
            operator
        }
        Path::Svd => Mat::<f32>::from_fn(p, n, |i, j| solution[(i, j)].narrow()),
    })
}

/// Writes `right diag(1 / (lambda + alpha_t)) left^T y_t` into the columns
/// `targets` of `weights`, batch by batch in parallel.
pub(super) fn refit(
    y: &Matrix,
    solver: &RefitSolver,
    targets: &[usize],
    alphas: &[f64],
    target_batch: usize,
    weights: &mut Matrix,
) {
    let n_cols = weights.cols;
    // Transposed into the p x n_targets weights in parallel, 64 feature rows
    // per task: the block's rows are read contiguously and the 64 rows
    // written to stay in cache.
    const ROWS: usize = 64;
    refit_each(y, solver, targets, alphas, target_batch, &mut |batch, block| {
        let n_features = block.cols;
        weights.data.par_chunks_mut(ROWS * n_cols).enumerate().for_each(|(chunk, rows)| {
            let first = chunk * ROWS;
            let count = rows.len() / n_cols.max(1);
            for (j, &t) in batch.iter().enumerate() {
                let source = &block.data[j * n_features + first..j * n_features + first + count];
                for (f, &value) in source.iter().enumerate() {
                    rows[f * n_cols + t] = value;
                }
            }
        });
    });
}

/// The refit weights of `targets`, handed to `sink` one batch at a time, in
/// order: `(batch's targets, batch x p block)`, voxel-major (faer writes a
/// column-major p x batch product faster than a row-major one, see
/// benches/README.md, and it is the layout written to disk). Batches run in parallel in
/// groups of one per thread, and a group is computed while the sink takes
/// the previous one, so at most twice that many blocks exist at once.
pub(super) fn refit_each(
    y: &Matrix,
    solver: &RefitSolver,
    targets: &[usize],
    alphas: &[f64],
    target_batch: usize,
    sink: BlockSink<'_>,
) {
    let n_rows = y.rows;
    let n_features = match (&solver.spectrum, solver.direct.first()) {
        (Some(spectrum), _) => spectrum.right.nrows(),
        (None, Some((_, operator))) => operator.nrows(),
        (None, None) => 0,
    };
    let par = inner_parallelism(targets.len(), target_batch);
    let group = target_batch * rayon::current_num_threads().max(1);
    let all_rows: Vec<usize> = (0..n_rows).collect();
    let compute = |group_targets: &[usize], group_alphas: &[f64]| -> Vec<Matrix> {
        group_targets
            .par_chunks(target_batch)
            .zip(group_alphas.par_chunks(target_batch))
            .map(|(batch, alphas)| {
                let mut block = Matrix::zeros(batch.len(), n_features);
                // The batch's positions by route: a direct operator, or the
                // spectrum (None).
                let mut routes: Vec<(Option<usize>, Vec<usize>)> = Vec::new();
                for (j, &alpha) in alphas.iter().enumerate() {
                    let route = solver.direct_index(alpha);
                    match routes.iter_mut().find(|(r, _)| *r == route) {
                        Some((_, positions)) => positions.push(j),
                        None => routes.push((route, vec![j])),
                    }
                }
                let whole = routes.len() == 1;
                for (route, positions) in &routes {
                    let n_targets = positions.len();
                    // Column-major, like gather_columns.
                    let mut gathered = Vec::new();
                    gather(y, &all_rows, n_targets, |j| batch[positions[j]], &mut gathered);
                    let gathered_ref = MatRef::from_column_major_slice(&gathered, n_rows, n_targets);
                    let mut part = if whole { Vec::new() } else { vec![0.0f32; n_features * n_targets] };
                    let out = MatMut::from_column_major_slice_mut(
                        if whole { &mut block.data } else { &mut part },
                        n_features,
                        n_targets,
                    );
                    match route {
                        Some(d) => matmul(out, Accum::Replace, solver.direct[*d].1.as_ref(), gathered_ref, 1.0, par),
                        None => {
                            let full = solver
                                .spectrum
                                .as_ref()
                                .expect("the spectrum serves the alphas without a direct operator");
                            let rank = full.lambdas.len();
                            let mut projected = vec![0.0f32; rank * n_targets];
                            matmul(
                                MatMut::from_column_major_slice_mut(&mut projected, rank, n_targets),
                                Accum::Replace,
                                full.left.transpose(),
                                gathered_ref,
                                1.0,
                                par,
                            );
                            for (column, &position) in projected.chunks_mut(rank.max(1)).zip(positions) {
                                let alpha = alphas[position];
                                for (value, lambda) in column.iter_mut().zip(&full.lambdas) {
                                    *value = (*value as f64 / (lambda + alpha)) as f32;
                                }
                            }
                            matmul(
                                out,
                                Accum::Replace,
                                full.right.as_ref(),
                                MatRef::from_column_major_slice(&projected, rank, n_targets),
                                1.0,
                                par,
                            );
                        }
                    }
                    if !whole {
                        for (j, &position) in positions.iter().enumerate() {
                            block.data[position * n_features..(position + 1) * n_features]
                                .copy_from_slice(&part[j * n_features..(j + 1) * n_features]);
                        }
                    }
                }
                block
            })
            .collect()
    };
    let compute = &compute;
    // Each group is computed while the sink takes the one before (the
    // `ridge` stage writes it to disk and predicts the test rows from it),
    // so that the threads do not wait for the sink.
    let mut pending: Option<(&[usize], Vec<Matrix>)> = None;
    let mut drain = |pending: &mut Option<(&[usize], Vec<Matrix>)>| {
        if let Some((group_targets, blocks)) = pending.take() {
            for (batch, block) in group_targets.chunks(target_batch).zip(blocks) {
                sink(batch, block);
            }
        }
    };
    for (group_targets, group_alphas) in targets.chunks(group).zip(alphas.chunks(group)) {
        let mut blocks = Vec::new();
        rayon::in_place_scope(|scope| {
            let blocks = &mut blocks;
            scope.spawn(move |_| *blocks = compute(group_targets, group_alphas));
            drain(&mut pending);
        });
        pending = Some((group_targets, blocks));
    }
    drain(&mut pending);
}

/// Sequential products inside each batch when there are enough batches to
/// keep every thread busy, parallel products otherwise (public so that
/// examples/ridge_bench.rs times the products alone the same way).
pub fn inner_parallelism(n_targets: usize, target_batch: usize) -> Par {
    if n_targets.div_ceil(target_batch) >= 2 * rayon::current_num_threads() {
        Par::Seq
    } else {
        Par::rayon(0)
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::super::plan::{PartialPlan, RoutePlan, Shape};
    use super::super::test_helpers::{assert_close, closed_form, column, signal_and_noise};
    use super::super::{fit_ridge, fit_ridge_with};
    use super::*;
    use crate::testing::{fresh_rng, random_matrix};

    /// The plan of a fit of `x` at `alphas` (no folds, a small Y).
    fn plan_for(x: &Matrix, alphas: &[f64], forced: PartialPlan) -> RoutePlan {
        RoutePlan::choose(&Shape::new(x, &Matrix::zeros(x.rows, 1), &[], alphas), &forced).unwrap()
    }

    #[test]
    fn fit_ridge_matches_the_closed_form_on_both_shapes() {
        let mut rng = fresh_rng("fit_ridge_matches_the_closed_form_on_both_shapes");
        for (n, p) in [(90, 30), (40, 70)] {
            let x = random_matrix(&mut rng, n, p);
            let y = signal_and_noise(&mut rng, &x, 6);
            let alphas: Vec<f64> = (0..6).map(|_| 10f64.powf(rng.random_range(-1.0..2.5))).collect();
            let weights = fit_ridge(&x, &y, &alphas).unwrap();
            let rows: Vec<usize> = (0..n).collect();
            for (t, &alpha) in alphas.iter().enumerate() {
                let expected = closed_form(&x, &y, t, &rows, &vec![alpha; p]);
                assert_close(&format!("n={n} p={p} target {t}"), &column(&weights, t), &expected, 1e-4);
            }
            let shared = fit_ridge(&x, &y, &alphas[..1]).unwrap();
            let expected = closed_form(&x, &y, 3, &rows, &vec![alphas[0]; p]);
            assert_close("one alpha for all", &column(&shared, 3), &expected, 1e-4);
        }
    }

    /// The refit by direct operators, by the spectrum, and mixed in one
    /// batch (an alpha too small for Cholesky keeps the spectrum), against
    /// the float64 closed form on both paths; and the route the costs pick.
    #[test]
    fn refit_routes_match_the_closed_form() {
        let mut rng = fresh_rng("refit_routes_match_the_closed_form");
        for (n, p) in [(90, 30), (40, 70)] {
            let x = random_matrix(&mut rng, n, p);
            let y = signal_and_noise(&mut rng, &x, 9);
            let trace: f64 = x.data.iter().map(|&v| (v as f64).powi(2)).sum();
            let grid = [1e-11 * trace, rng.random_range(0.1..1.0), rng.random_range(5.0..50.0)];
            let alphas: Vec<f64> = (0..9).map(|t| grid[(t + rng.random_range(0..3)) % 3]).collect();
            let rows: Vec<usize> = (0..n).collect();
            for (route, workers) in [
                (Some(RefitRoute::Direct), None),
                (Some(RefitRoute::Direct), Some(1)),
                (Some(RefitRoute::Spectrum), None),
                (None, None),
            ] {
                let forced = PartialPlan { refit: route, workers, ..PartialPlan::default() };
                let plan = plan_for(&x, &alphas, forced);
                let design = Design::new(&x, &[p], [n].into_iter(), &plan);
                let solver = design.refit_solver(&alphas, None).unwrap();
                if route == Some(RefitRoute::Direct) {
                    assert!(solver.direct.iter().all(|(a, _)| *a > grid[0]), "a tiny alpha is never direct");
                    assert_eq!(solver.spectrum.is_some(), alphas.contains(&grid[0]));
                }
                let weights = fit_ridge_with(&x, &y, &alphas, &forced).unwrap();
                for (t, &alpha) in alphas.iter().enumerate() {
                    let expected = closed_form(&x, &y, t, &rows, &vec![alpha; p]);
                    let label = format!("n={n} p={p} {route:?} {workers:?} target {t} alpha {alpha:.3e}");
                    assert_close(&label, &column(&weights, t), &expected, 1e-4);
                }
            }
        }
        // Many targets on two alphas: direct operators, no eigendecomposition.
        // One target on each of 40 alphas: the spectrum.
        let x = random_matrix(&mut rng, 60, 80);
        let two: Vec<f64> = (0..5000).map(|t| if t % 3 == 0 { 1.0 } else { 10.0 }).collect();
        let plan = plan_for(&x, &two, PartialPlan::default());
        assert!(matches!(plan.refit, RefitRoute::Cheapest { .. }), "{plan:?}");
        let design = Design::new(&x, &[80], [60].into_iter(), &plan);
        let solver = design.refit_solver(&two, None).unwrap();
        assert!(solver.spectrum.is_none() && solver.direct.len() == 2);
        let many: Vec<f64> = (0..40).map(|t| 1.0 + t as f64).collect();
        let solver = design.refit_solver(&many, None).unwrap();
        assert!(solver.spectrum.is_some() && solver.direct.is_empty());
    }
}
