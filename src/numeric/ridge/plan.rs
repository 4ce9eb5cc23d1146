//! The route choice as a value. [`RoutePlan::choose`] reads the problem's
//! shape and memory ([`Shape`]: n, p, the number of targets, the folds, the
//! alphas, the bytes of X and Y) and decides, before any work, how the call
//! runs: which Gram matrix each solve works with, which route prepares the
//! folds' operators, whether the folds share one `X^T Y`, whether the next
//! fold is prepared while the current one is scored, the precision rule and
//! the refit's route. The executors (scoring.rs, the route files, refit.rs)
//! only read the plan; tests force a route through a [`PartialPlan`] and
//! check what ran through [`RoutesTaken`].
//!
//! # Fold-operator routes
//! For a fold and an alpha the validation predictions are a small operator
//! times the training targets: `K_val,train (K_train + alpha I)^-1 Y_train`
//! on the kernel path, `X_val (X_train^T X_train + alpha I)^-1 X_train^T
//! Y_train` on the SVD path. [`FoldRoute::PerFold`] prepares each fold alone
//! ([`FoldMethod`]: one f64 Cholesky factorisation per alpha, run in
//! parallel over the alphas, or one eigendecomposition when the alphas are
//! so many that it costs fewer flops); an alpha below `1e-10 *
//! trace(Gram)`, where Cholesky would lose accuracy (its error grows like
//! `trace / alpha * f64::EPSILON`), sends the fold to the eigendecomposition
//! at run time, the accurate route.
//!
//! On the kernel path, when every fold splits all rows (leave-one-story-out,
//! k-fold), [`FoldRoute::SharedInverse`] takes the operators from one inverse
//! `P = (K + alpha I)^-1` of the whole kernel per alpha, shared by the folds
//! (the Schur complement, see shared_inverse.rs), so each fold adds only an
//! `n_val x n_val` factorisation. It is taken when it costs fewer flops
//! (about 0.7x with 5 folds, 0.2x with 20; more with 2 or 3 folds) and Y is
//! not so large that memory decides.
//!
//! On the SVD path with such folds, [`FoldRoute::Downdate`] serves every fold
//! and alpha from one eigendecomposition of `X^T X` (Woodbury, see
//! downdate.rs); the refit then reuses the decomposition. Taken when it
//! costs fewer flops: with many folds and `p` large next to `n_val`.
//!
//! With 4 folds or more that split all rows, the SVD path's folds take their
//! training projection `X_train^T Y_train` as `X^T Y - X_val^T Y_val` from
//! one shared `X^T Y` (`2 p n_val n_targets` flops per fold instead of
//! `2 p n_train n_targets`, see shared_projection.rs), unless memory decides
//! and `X^T Y` would be more than a third of X and Y.
//!
//! # Memory
//! Targets are processed in batches of `target_batch` columns, batches in
//! parallel on rayon's pool. Beyond X, Y and the returned weights, a call
//! holds the f64 Gram matrix, one or two fold operators (`n_alphas * n_val *
//! rank` f32) at a time, the refit's solvers (direct operators, p x n f32
//! each, no more than the memory of the spectrum they replace: its working
//! memory and `L`, `R`), and per worker thread a few buffers of
//! `n x target_batch` values and, in the refit, two `target_batch x p`
//! weight blocks (one being computed, one being handed over). Y decides
//! ([`RoutePlan::memory_limit`]) when it is larger than 4x the refit
//! decomposition's working memory: then the folds are prepared one at a
//! time ([`Schedule::OneAtATime`]), the shared-inverse route is not taken
//! (it holds every fold's operator for a group of alphas, at most that
//! limit, and two `n x n` f64 matrices per alpha prepared at once), and the
//! refit's direct operators are built one after the other, each on all
//! threads.

use faer::linalg::evd::{self_adjoint_evd_scratch, ComputeEigenvectors};
use faer::Par;

use super::fold_eigen::EigenExtra;
use super::folds::splits_all_rows;
use super::precision::{factorises_in_f32, SpectralScale};
use super::{Fold, RidgeError};
use crate::numeric::Matrix;

/// Which Gram matrix a solve works with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Path {
    /// `X^T X` (p x p), for `n >= p`.
    Svd,
    /// `X X^T` (n x n), for `p > n`.
    Kernel,
}

impl Path {
    pub(super) fn for_shape(n_rows: usize, n_features: usize) -> Path {
        if n_rows >= n_features {
            Path::Svd
        } else {
            Path::Kernel
        }
    }
}

/// The Gram matrix of each solve: by the solve's shape (so that every matrix
/// decomposed is `min(n, p)` wide), or one for all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GramChoice {
    ByShape,
    Only(Path),
}

impl GramChoice {
    /// The path of a solve with `n_rows` rows of `n_features` features.
    pub(super) fn path(self, n_rows: usize, n_features: usize) -> Path {
        match self {
            GramChoice::ByShape => Path::for_shape(n_rows, n_features),
            GramChoice::Only(path) => path,
        }
    }
}

/// How the folds' operators are prepared for all alphas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FoldRoute {
    /// Each fold alone, by its method in [`RoutePlan::per_fold`].
    PerFold,
    /// Kernel path, folds that split all rows: per alpha one inverse `P = (K +
    /// alpha I)^-1` of the whole kernel, shared by every fold, and per fold a
    /// solve with its `n_val x n_val` block of P; `group` alphas at a time.
    SharedInverse { group: usize },
    /// SVD path, folds that split all rows, unit band weights: one
    /// eigendecomposition `X^T X = U diag(lambda) U^T` shared by every fold
    /// and alpha; a fold's training Gram matrix is the whole one less its
    /// validation rows' (a downdate), so per fold and alpha it takes a solve
    /// with an `n_val x n_val` matrix (Woodbury), and the folds score in the
    /// eigenbasis.
    Downdate,
}

/// How a fold prepared alone gets its operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FoldMethod {
    /// One Cholesky factorisation of `Gram + alpha I` per alpha (compute-bound).
    Cholesky,
    /// One eigendecomposition of the Gram matrix for all alphas (memory-bound).
    Eigen,
}

/// The route that prepared a fold's operators: the planned one, or what the
/// plan falls back to (see [`RoutePlan::fallback`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PreparedBy {
    Cholesky,
    Eigen,
    SharedInverse,
    Downdate,
}

/// When the folds' operators are prepared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Schedule {
    /// The next fold's operator while the current fold is scored (two in
    /// memory at once), the refit's direct operators in parallel lanes.
    PrepareAhead,
    /// One fold operator at a time, the refit's operators one after the
    /// other on all threads: Y is large enough that memory decides.
    OneAtATime,
}

/// The precision of the factorisations that may run in f32 (the shared
/// inverse with its folds' solves, the refit's direct operators).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Precision {
    /// f32 for each alpha where [`factorises_in_f32`] holds for the Gram
    /// matrix's spectral scale, f64 for the others.
    F32WhereWellConditioned,
    /// Every factorisation in f64.
    F64,
}

/// How the refit solves each target (see refit.rs). On the downdate route
/// the refit reuses that route's decomposition unless the route is `Direct`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RefitRoute {
    /// The eigendecomposition of the full Gram matrix for every alpha.
    Spectrum,
    /// A direct operator for every alpha that Cholesky serves accurately.
    Direct,
    /// Direct operators for the alphas with the most targets, as many as cost
    /// fewer flops and at most `max_direct` (what fits in the memory the
    /// spectrum would hold: its working memory and `L`, `R`; 9 operators at
    /// n = 3000, p = 3072), the spectrum for the rest: decided once the
    /// alphas are chosen, by [`RefitRoute::direct_count`].
    Cheapest { max_direct: usize },
}

/// How a call runs: computed by [`RoutePlan::choose`], then executed.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct RoutePlan {
    pub(super) gram: GramChoice,
    pub(super) folds: FoldRoute,
    /// Each fold's method when it is prepared alone: on [`FoldRoute::PerFold`],
    /// and where another route falls back to preparing folds alone.
    pub(super) per_fold: Vec<FoldMethod>,
    /// The SVD path's folds prepared alone project `X^T Y - X_val^T Y_val`
    /// from one shared `X^T Y`.
    pub(super) shared_projection: bool,
    pub(super) schedule: Schedule,
    /// Alphas prepared at once; `None`: one per thread, as many as fit in
    /// half of [`RoutePlan::memory_limit`] (see [`RoutePlan::lanes`]).
    pub(super) workers: Option<usize>,
    pub(super) precision: Precision,
    pub(super) refit: RefitRoute,
    /// Where the fold route cannot serve the alphas (one below `1e-10 *
    /// trace`, a failed factorisation), fall back to preparing the folds
    /// alone, each by the accurate route (true), or fail (false: a test
    /// forced the route).
    pub(super) fallback: bool,
    /// Bytes of Y above which memory decides: 4x the refit decomposition's
    /// working memory.
    pub(super) memory_limit: usize,
}

/// What the choice reads.
#[derive(Clone, Copy, Debug)]
pub(super) struct Shape<'a> {
    pub(super) n: usize,
    pub(super) p: usize,
    pub(super) n_targets: usize,
    pub(super) x_bytes: usize,
    pub(super) y_bytes: usize,
    pub(super) folds: &'a [Fold],
    pub(super) alphas: &'a [f64],
    /// Band weightings are searched ([`banded_ridge_cv`](super::banded_ridge_cv)):
    /// no downdate route, and the refit goes through each weighting's spectrum.
    pub(super) band_search: bool,
}

impl<'a> Shape<'a> {
    pub(super) fn new(x: &Matrix, y: &Matrix, folds: &'a [Fold], alphas: &'a [f64]) -> Self {
        Shape {
            n: x.rows,
            p: x.cols,
            n_targets: y.cols,
            x_bytes: std::mem::size_of_val(x.data.as_slice()),
            y_bytes: std::mem::size_of_val(y.data.as_slice()),
            folds,
            alphas,
            band_search: false,
        }
    }
}

/// The part of a plan a caller forces (tests); [`RoutePlan::choose`] decides
/// the rest. A forced fold route does not fall back: where it does not apply
/// the choice fails, and where it cannot serve the alphas the call does.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct PartialPlan {
    pub(super) gram: Option<Path>,
    pub(super) folds: Option<ForcedFolds>,
    pub(super) shared_projection: Option<bool>,
    pub(super) schedule: Option<Schedule>,
    pub(super) workers: Option<usize>,
    pub(super) precision: Option<Precision>,
    pub(super) refit: Option<RefitRoute>,
}

/// A forced fold route.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ForcedFolds {
    /// Every fold alone, by this method.
    Alone(FoldMethod),
    /// The shared inverse, in groups of `group` alphas (by memory when `None`).
    SharedInverse {
        group: Option<usize>,
    },
    Downdate,
}

/// What ran where the plan left a choice to the run: each fold's route
/// (fallbacks included) and the refit's solvers.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct RoutesTaken {
    pub(super) folds: Vec<PreparedBy>,
    /// The alphas the refit served with direct operators.
    pub(super) refit_direct: Vec<f64>,
    /// Whether the refit used a spectrum.
    pub(super) refit_spectrum: bool,
}

impl RoutePlan {
    /// The plan for `shape`, with what `forced` fixes. Costs are counted in
    /// f64 flops; an eigendecomposition's `9 d^3` weighs 1.5x (it is
    /// memory-bound) and f32 work half.
    ///
    /// - Each fold alone: per-alpha Cholesky when it costs less than the
    ///   eigendecomposition (see [`fold_costs`]).
    /// - The downdate route: it costs one eigendecomposition of `X^T X` (`9
    ///   p^3`, weighed 1.5x) and `X U` (`2 n p^2`), then per fold and alpha
    ///   `4 n_val^2 p + n_val^3 / 3`; preparing each fold alone costs per fold
    ///   and alpha a Cholesky factorisation and a solve, `p^3 / 3 + 2 p^2
    ///   n_val`. It wins with many folds and alphas (leave-one-story-out on 25
    ///   stories, n = 9000, p = 3072, 10 alphas is 0.24x the flops). Like the
    ///   shared projection, it holds a p x n_targets projection (`Z^T Y`), so
    ///   where memory decides it needs the same room.
    /// - The shared inverse: per alpha `n^3` flops for the inverse (Cholesky,
    ///   triangular inverse, product; weighed 1.15x, what it runs slower than
    ///   the per-fold factorisations) and per fold `n_val^3 / 3 + 2 n_val^2
    ///   n_train`; preparing each fold alone costs `n_train^3 / 3 + 2
    ///   n_train^2 n_val` per fold and alpha. So it wins with many folds (5
    ///   folds: 0.72x the flops; 20 folds: 0.2x) and loses with 2 or 3. It
    ///   holds every fold's operator for the alphas of a group at once: groups
    ///   are as large as keeps that under [`RoutePlan::memory_limit`]; fewer
    ///   groups mean fewer passes over Y and larger products.
    pub(super) fn choose(shape: &Shape<'_>, forced: &PartialPlan) -> Result<RoutePlan, RidgeError> {
        let (n, p, folds) = (shape.n, shape.p, shape.folds);
        let gram = forced.gram.map_or(GramChoice::ByShape, GramChoice::Only);
        let path = |n_rows: usize| gram.path(n_rows, p);
        // The refit's Gram matrix is m x m.
        let m = match path(n) {
            Path::Svd => p,
            Path::Kernel => n,
        };
        let decomposition_bytes = full_decomposition_bytes(m);
        let memory_limit = 4 * decomposition_bytes;
        let memory_bound = shape.y_bytes > memory_limit;
        let default_schedule = if memory_bound { Schedule::OneAtATime } else { Schedule::PrepareAhead };
        let schedule = forced.schedule.unwrap_or(default_schedule);
        let one_at_a_time = schedule == Schedule::OneAtATime;
        let n_alphas = shape.alphas.len();

        let costs: Vec<(f64, f64)> = folds.iter().map(|fold| fold_costs(p, fold, n_alphas, shape.n_targets)).collect();
        let per_fold: Vec<FoldMethod> = costs
            .iter()
            .map(|&(cholesky, eigen)| match forced.folds {
                Some(ForcedFolds::Alone(method)) => method,
                _ if cholesky <= eigen => FoldMethod::Cholesky,
                _ => FoldMethod::Eigen,
            })
            .collect();
        let alone_flops: f64 = costs.iter().map(|&(cholesky, eigen)| cholesky.min(eigen)).sum();
        let all_split_on =
            |wanted: Path| folds.iter().all(|fold| path(fold.train.len()) == wanted && splits_all_rows(fold, n));
        // A p x n_targets f32 projection beside X and Y: where memory decides,
        // only if it is at most a third of them.
        let projection_fits =
            !one_at_a_time || 3 * p * shape.n_targets * std::mem::size_of::<f32>() <= shape.y_bytes + shape.x_bytes;

        let downdate_applies = !shape.band_search && !folds.is_empty() && all_split_on(Path::Svd);
        let downdate = match forced.folds {
            Some(ForcedFolds::Downdate) if !downdate_applies => {
                return Err(RidgeError::Config(
                    "the downdate route needs the SVD path and folds that split all rows".into(),
                ))
            }
            Some(ForcedFolds::Downdate) => true,
            Some(_) => false,
            None if !downdate_applies || folds.len() < 2 => false,
            None => {
                let (n_alphas, p) = (n_alphas as f64, p as f64);
                let solves: f64 = folds
                    .iter()
                    .map(|fold| {
                        let v = fold.validation.len() as f64;
                        4.0 * v * v * p + v * v * v / 3.0
                    })
                    .sum();
                let downdate = 13.5 * p * p * p + 2.0 * n as f64 * p * p + n_alphas * solves;
                projection_fits && downdate < alone_flops
            }
        };

        let shared_inverse_applies = !folds.is_empty() && all_split_on(Path::Kernel);
        let group_by_memory = || {
            let per_alpha_bytes: usize =
                folds.iter().map(|fold| fold.train.len() * fold.validation.len() * std::mem::size_of::<f32>()).sum();
            let fits = memory_limit / per_alpha_bytes.max(1);
            let groups = n_alphas.div_ceil(fits.clamp(1, n_alphas));
            n_alphas.div_ceil(groups)
        };
        let shared_inverse = match forced.folds {
            Some(ForcedFolds::SharedInverse { .. }) if !shared_inverse_applies => {
                return Err(RidgeError::Config(
                    "the Schur route needs the kernel path and folds that split all rows".into(),
                ))
            }
            Some(ForcedFolds::SharedInverse { group }) => Some(group.unwrap_or_else(group_by_memory)),
            Some(_) => None,
            None if one_at_a_time || !shared_inverse_applies => None,
            None => {
                let solves: f64 = folds
                    .iter()
                    .map(|fold| {
                        let (t, v) = (fold.train.len() as f64, fold.validation.len() as f64);
                        v * v * v / 3.0 + 2.0 * v * v * t
                    })
                    .sum();
                let schur = 1.15 * n_alphas as f64 * ((n as f64).powi(3) + solves);
                (schur < alone_flops).then(group_by_memory)
            }
        };

        let fold_route = match (downdate, shared_inverse) {
            (true, _) => FoldRoute::Downdate,
            (false, Some(group)) => FoldRoute::SharedInverse { group },
            (false, None) => FoldRoute::PerFold,
        };
        let shared_projection = folds.len() >= 4
            && all_split_on(Path::Svd)
            && forced.folds != Some(ForcedFolds::Alone(FoldMethod::Eigen))
            && forced.shared_projection.unwrap_or(projection_fits);
        let refit = match forced.refit {
            Some(route) => route,
            None if shape.band_search => RefitRoute::Spectrum,
            None => {
                let operator_bytes = n * p * std::mem::size_of::<f32>();
                let spectrum_bytes = decomposition_bytes + (n + p) * m * 4;
                RefitRoute::Cheapest { max_direct: (spectrum_bytes / operator_bytes.max(1)).max(1) }
            }
        };
        Ok(RoutePlan {
            gram,
            folds: fold_route,
            per_fold,
            shared_projection,
            schedule,
            workers: forced.workers,
            precision: forced.precision.unwrap_or(Precision::F32WhereWellConditioned),
            refit,
            fallback: forced.folds.is_none(),
            memory_limit,
        })
    }

    /// How many of `n_items` alphas to prepare at once, and the parallelism
    /// of the factorisations inside each: one per thread (sequential
    /// kernels, the fastest use of the cores), but no more than
    /// `per_worker` bytes of workspace each fit in half of
    /// [`RoutePlan::memory_limit`], so that a machine with many cores does
    /// not hold a workspace per core; the threads left over go to the
    /// kernels of each. With `one_at_a_time`, one at a time on all threads.
    pub(super) fn lanes(&self, n_items: usize, per_worker: usize, one_at_a_time: bool) -> (usize, Par) {
        let threads = rayon::current_num_threads().max(1);
        let fits = if one_at_a_time { 1 } else { (self.memory_limit / 2) / per_worker.max(1) };
        let workers = self.workers.unwrap_or(threads.min(fits)).clamp(1, n_items.max(1));
        let inner = threads / workers;
        (workers, if inner > 1 { Par::rayon(inner) } else { Par::Seq })
    }

    /// Whether `Gram + alpha I`, for a Gram matrix of spectral scale `scale`,
    /// factorises in f32 (see [`factorises_in_f32`]).
    pub(super) fn single_precision(&self, scale: SpectralScale, alpha: f64) -> bool {
        self.precision == Precision::F32WhereWellConditioned && factorises_in_f32(scale.largest, scale.mean, alpha)
    }
}

impl RefitRoute {
    /// How many of `candidates` (alpha and its number of targets, most
    /// targets first, every alpha large enough for Cholesky) get a direct
    /// operator; `spectrum_only` targets take the spectrum whatever the
    /// route. Per distinct alpha a direct operator costs `m^3 / 3 + 2 m^2 k`
    /// f64 flops (`m = min(n, p)`, `k = max(n, p)`: a Cholesky factorisation
    /// and a solve with X) and saves `2 m^2` f32 flops per target against the
    /// spectrum, which costs a fixed `8 m^3` (the eigendecomposition, as
    /// measured here) plus `2 n p m` f32 flops (`X V` or `X^T U`); f32 flops
    /// weigh half. The count that costs least is taken.
    pub(super) fn direct_count(
        self,
        n: usize,
        p: usize,
        path: Path,
        candidates: &[(f64, usize)],
        spectrum_only: usize,
    ) -> usize {
        let max_direct = match self {
            RefitRoute::Spectrum => return 0,
            RefitRoute::Direct => return candidates.len(),
            RefitRoute::Cheapest { max_direct } => max_direct,
        };
        let (n, p) = (n as f64, p as f64);
        let (m, k) = match path {
            Path::Svd => (p, n),
            Path::Kernel => (n, p),
        };
        let direct_cost = m * m * m / 3.0 + 2.0 * m * m * k;
        let spectrum_fixed = 8.0 * m * m * m + n * p * m;
        let cost = |count: usize| {
            let rest: usize = candidates[count..].iter().map(|c| c.1).sum::<usize>() + spectrum_only;
            count as f64 * direct_cost + if rest > 0 { spectrum_fixed + rest as f64 * m * m } else { 0.0 }
        };
        (0..=candidates.len().min(max_direct)).min_by(|&a, &b| cost(a).total_cmp(&cost(b))).unwrap_or(0)
    }
}

/// The f64 flops of preparing one fold alone for `n_alphas` alphas, by
/// per-alpha Cholesky and by the eigendecomposition (whose `9 d^3` weigh
/// 1.5x, as it is memory-bound, plus half the f32 work it adds, see
/// [`EigenExtra`]); `d = min(n_train, p)`.
fn fold_costs(p: usize, fold: &Fold, n_alphas: usize, n_targets: usize) -> (f64, f64) {
    let d = fold.train.len().min(p) as f64;
    let n_val = fold.validation.len() as f64;
    let cholesky_flops = n_alphas as f64 * (d * d * d / 3.0 + 2.0 * d * d * n_val);
    let n_train = fold.train.len() as f64;
    let added = EigenExtra::cheaper(n_train, d, n_alphas as f64 * n_val, n_targets as f64);
    (cholesky_flops, 13.5 * d * d * d + added.1 / 2.0)
}

/// Bytes that the refit's decomposition of a `dim x dim` Gram matrix holds
/// at its peak: the eigensolver's workspace and its f64 eigenvectors.
fn full_decomposition_bytes(dim: usize) -> usize {
    let scratch = self_adjoint_evd_scratch::<f64>(dim, ComputeEigenvectors::Yes, Par::Seq, Default::default());
    scratch.size_bytes() + dim * dim * std::mem::size_of::<f64>()
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::super::folds::{folds_by_group, folds_chunked, folds_contiguous};
    use super::super::test_helpers::{as_f64, assert_close, ridge_cv_forced, ridge_cv_taken, signal_and_noise};
    use super::super::{predict, CvScore, RidgeConfig};
    use super::*;
    use crate::testing::{fresh_rng, random_matrix};

    fn alphas(count: usize) -> Vec<f64> {
        (0..count).map(|k| 10f64.powi(k as i32 - 2)).collect()
    }

    /// The plan of `folds` on an `n x p` design with `n_targets` targets of
    /// f32 (no data needed: the choice reads the shape).
    fn plan_of(n: usize, p: usize, n_targets: usize, folds: &[Fold], alphas: &[f64]) -> RoutePlan {
        let shape = Shape {
            n,
            p,
            n_targets,
            x_bytes: 4 * n * p,
            y_bytes: 4 * n * n_targets,
            folds,
            alphas,
            band_search: false,
        };
        RoutePlan::choose(&shape, &PartialPlan::default()).unwrap()
    }

    /// The kernel path with folds that split all rows: with 5 folds and a
    /// small Y the shared inverse (all alphas in one group), with 3 folds
    /// each fold alone, and with Y past the memory limit one fold at a time,
    /// each alone; the refit by cost either way.
    #[test]
    fn the_kernel_path_shares_the_inverse_unless_folds_are_few_or_y_is_large() {
        let alphas = alphas(10);
        let five = folds_contiguous(60, 5);
        let plan = plan_of(60, 120, 50, &five, &alphas);
        assert_eq!(plan.folds, FoldRoute::SharedInverse { group: 10 }, "{plan:?}");
        assert_eq!((plan.gram.path(60, 120), plan.schedule), (Path::Kernel, Schedule::PrepareAhead));
        assert!(!plan.shared_projection && plan.fallback, "{plan:?}");
        assert!(matches!(plan.refit, RefitRoute::Cheapest { .. }), "{plan:?}");

        let plan = plan_of(60, 120, 50, &folds_contiguous(60, 3), &alphas);
        assert_eq!(plan.folds, FoldRoute::PerFold, "{plan:?}");

        let large = plan.memory_limit / (4 * 60) + 1;
        let plan = plan_of(60, 120, large, &five, &alphas);
        assert_eq!((plan.folds, plan.schedule), (FoldRoute::PerFold, Schedule::OneAtATime), "{plan:?}");
        assert_eq!(plan.per_fold, vec![FoldMethod::Cholesky; 5]);
        let (workers, _) = plan.lanes(8, 1, true);
        assert_eq!(workers, 1, "the refit's operators one after the other");
    }

    /// The SVD path: with 25 folds that split all rows and p large next to
    /// n_val the downdate route (and the shared projection for a fallback);
    /// with 3 folds each fold alone; a banded search never takes the
    /// downdate and refits through the spectrum.
    #[test]
    fn the_svd_path_downdates_with_many_folds_and_large_p() {
        let alphas = alphas(10);
        let stories = folds_by_group(&(0..900).map(|i| i / 36).collect::<Vec<_>>());
        let plan = plan_of(900, 200, 100, &stories, &alphas);
        assert_eq!(plan.folds, FoldRoute::Downdate, "{plan:?}");
        assert!(plan.shared_projection, "{plan:?}");

        let plan = plan_of(900, 200, 100, &folds_contiguous(900, 3), &alphas);
        assert_eq!(plan.folds, FoldRoute::PerFold, "{plan:?}");
        assert!(!plan.shared_projection, "3 folds: no shared X^T Y");

        let banded = Shape {
            band_search: true,
            ..Shape {
                n: 900,
                p: 200,
                n_targets: 100,
                x_bytes: 4 * 900 * 200,
                y_bytes: 4 * 900 * 100,
                folds: &stories,
                alphas: &alphas,
                band_search: false,
            }
        };
        let plan = RoutePlan::choose(&banded, &PartialPlan::default()).unwrap();
        assert_eq!((plan.folds, plan.refit), (FoldRoute::PerFold, RefitRoute::Spectrum), "{plan:?}");
    }

    /// Many alphas and few targets make the eigendecomposition cheaper than
    /// a Cholesky factorisation per alpha (per fold prepared alone).
    #[test]
    fn many_alphas_prepare_a_fold_by_its_eigendecomposition() {
        let folds = folds_contiguous(300, 3);
        let plan = plan_of(300, 100, 10, &folds, &alphas(60));
        assert_eq!(plan.folds, FoldRoute::PerFold, "{plan:?}");
        assert_eq!(plan.per_fold, vec![FoldMethod::Eigen; 3]);
        let plan = plan_of(300, 100, 10, &folds, &alphas(3));
        assert_eq!(plan.per_fold, vec![FoldMethod::Cholesky; 3]);
    }

    /// Forced routes that do not apply are refused by the choice.
    #[test]
    fn a_forced_route_that_does_not_apply_is_refused() {
        let alphas = alphas(4);
        let folds = folds_contiguous(60, 5);
        let shape = |p| Shape {
            n: 60,
            p,
            n_targets: 5,
            x_bytes: 4 * 60 * p,
            y_bytes: 4 * 60 * 5,
            folds: &folds,
            alphas: &alphas,
            band_search: false,
        };
        let forced = |folds| PartialPlan { folds: Some(folds), ..PartialPlan::default() };
        let downdate = RoutePlan::choose(&shape(120), &forced(ForcedFolds::Downdate));
        assert!(matches!(downdate, Err(RidgeError::Config(_))), "the kernel path has no downdate");
        let schur = RoutePlan::choose(&shape(20), &forced(ForcedFolds::SharedInverse { group: None }));
        assert!(matches!(schur, Err(RidgeError::Config(_))), "the SVD path has no shared inverse");
        let plan = RoutePlan::choose(&shape(20), &forced(ForcedFolds::Downdate)).unwrap();
        assert_eq!((plan.folds, plan.fallback), (FoldRoute::Downdate, false));
    }

    /// An alpha below `1e-10 * trace(Gram)`: the costs pick Cholesky for
    /// every fold, but the folds are prepared by the eigendecomposition, the
    /// accurate route, and score as when it is forced; forced Cholesky is
    /// refused.
    #[test]
    fn tiny_alphas_on_a_rank_deficient_design_take_the_accurate_route() {
        let mut rng = fresh_rng("tiny_alphas_on_a_rank_deficient_design_take_the_accurate_route");
        let factors = random_matrix(&mut rng, 60, 4);
        let loadings = random_matrix(&mut rng, 4, 40);
        let x = predict(&factors, &loadings);
        let y = signal_and_noise(&mut rng, &x, 4);
        let config = RidgeConfig {
            alphas: vec![1e-12, 1e-3, 1.0, 100.0],
            per_target_alpha: true,
            score: CvScore::L2,
            target_batch: 3,
        };
        let folds = folds_chunked(60, 3, 4, rng.random());
        for path in [Path::Svd, Path::Kernel] {
            let on_path = PartialPlan { gram: Some(path), ..PartialPlan::default() };
            let plan = RoutePlan::choose(&Shape::new(&x, &y, &folds, &config.alphas), &on_path).unwrap();
            assert_eq!(plan.folds, FoldRoute::PerFold, "{plan:?}");
            assert_eq!(plan.per_fold, vec![FoldMethod::Cholesky; folds.len()], "{plan:?}");
            let (automatic, taken) = ridge_cv_taken(&x, &y, &folds, &config, on_path).unwrap();
            assert_eq!(taken.folds, vec![PreparedBy::Eigen; folds.len()], "{path:?}");
            let forced = |method| PartialPlan { folds: Some(ForcedFolds::Alone(method)), ..on_path };
            let reference = ridge_cv_forced(&x, &y, &folds, &config, forced(FoldMethod::Eigen)).unwrap();
            assert_close(
                &format!("{path:?} scores"),
                &as_f64(&automatic.cv_scores),
                &as_f64(&reference.cv_scores),
                1e-4,
            );
            let refused = ridge_cv_forced(&x, &y, &folds, &config, forced(FoldMethod::Cholesky));
            assert!(matches!(refused, Err(RidgeError::Decomposition(_))), "{path:?}");
        }
    }
}
