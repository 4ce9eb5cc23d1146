//! Tests that every route gives the same answer where several apply: the
//! two Gram matrices, each fold-operator route, both schedules and both
//! refit routes, on fresh random inputs.

use rand::Rng;

use super::folds::{folds_chunked, folds_contiguous};
use super::plan::{FoldMethod, ForcedFolds, PartialPlan, Path, PreparedBy, RefitRoute, Schedule};
use super::test_helpers::{as_f64, assert_close, column, ridge_cv_forced, ridge_cv_taken, signal_and_noise};
use super::{fit_ridge_with, CvScore, RidgeConfig, RidgeCvResult, RidgeError};
use crate::numeric::Matrix;
use crate::testing::{fresh_rng, random_matrix};

fn on_path(path: Path) -> PartialPlan {
    PartialPlan { gram: Some(path), ..PartialPlan::default() }
}

#[test]
fn every_path_and_fold_method_gives_the_same_scores() {
    let mut rng = fresh_rng("every_path_and_fold_method_gives_the_same_scores");
    // 120 targets make the eigendecomposition route fold its projection
    // into the operator (see EigenExtra); 5 keep it apart.
    for (n, p, n_targets, score) in
        [(100, 30, 5, CvScore::L2), (45, 70, 5, CvScore::Pearson), (45, 70, 120, CvScore::L2)]
    {
        let x = random_matrix(&mut rng, n, p);
        let y = signal_and_noise(&mut rng, &x, n_targets);
        let config =
            RidgeConfig { alphas: vec![0.2, 2.0, 20.0, 200.0, 2000.0], per_target_alpha: true, score, target_batch: 2 };
        let folds = folds_chunked(n, 3, 5, rng.random());
        let mut tables = Vec::new();
        for path in [Path::Svd, Path::Kernel] {
            for (method, workers) in [
                (ForcedFolds::Alone(FoldMethod::Cholesky), None),
                (ForcedFolds::Alone(FoldMethod::Cholesky), Some(1)),
                (ForcedFolds::Alone(FoldMethod::Eigen), None),
                (ForcedFolds::SharedInverse { group: None }, None),
                (ForcedFolds::Downdate, None),
            ] {
                let forced = PartialPlan { gram: Some(path), folds: Some(method), workers, ..PartialPlan::default() };
                let result = ridge_cv_forced(&x, &y, &folds, &config, forced);
                if (path, method) == (Path::Svd, ForcedFolds::SharedInverse { group: None }) {
                    assert!(matches!(result, Err(RidgeError::Config(_))), "the Schur route is kernel-only");
                    continue;
                }
                if (path, method) == (Path::Kernel, ForcedFolds::Downdate) {
                    assert!(matches!(result, Err(RidgeError::Config(_))), "the downdate route is SVD-only");
                    continue;
                }
                let table: Vec<f64> = result.unwrap().cv_scores.data.iter().map(|&v| v as f64).collect();
                tables.push((format!("{path:?} {method:?} {workers:?}"), table));
            }
        }
        for (label, table) in &tables[1..] {
            assert_close(&format!("n={n} p={p} {label} vs {}", tables[0].0), table, &tables[0].1, 1e-4);
        }
    }
}

/// Folds one at a time and the refit's operators one after the other
/// (large Y), or each fold prepared while the previous one is scored and
/// the operators built in parallel: the same numbers.
#[test]
fn memory_saving_and_overlapped_schedules_give_the_same_fit() {
    let mut rng = fresh_rng("memory_saving_and_overlapped_schedules_give_the_same_fit");
    for (n, p) in [(90, 30), (40, 70)] {
        let x = random_matrix(&mut rng, n, p);
        let y = signal_and_noise(&mut rng, &x, 11);
        let config =
            RidgeConfig { alphas: vec![0.5, 5.0, 50.0], per_target_alpha: true, score: CvScore::L2, target_batch: 4 };
        let folds = folds_contiguous(n, 3);
        let run = |schedule| {
            ridge_cv_forced(&x, &y, &folds, &config, PartialPlan { schedule: Some(schedule), ..PartialPlan::default() })
                .unwrap()
        };
        let (overlapped, sequential) = (run(Schedule::PrepareAhead), run(Schedule::OneAtATime));
        assert_eq!(overlapped.best_alphas, sequential.best_alphas);
        assert_eq!(overlapped.cv_scores, sequential.cv_scores);
        let as_f64 = |m: &Matrix| m.data.iter().map(|&v| v as f64).collect::<Vec<_>>();
        assert_close("weights", &as_f64(&overlapped.weights), &as_f64(&sequential.weights), 1e-5);
    }
}

#[test]
fn svd_path_and_kernel_path_agree() {
    let mut rng = fresh_rng("svd_path_and_kernel_path_agree");
    for (n, p) in [(120, 35), (50, 80)] {
        let x = random_matrix(&mut rng, n, p);
        let y = signal_and_noise(&mut rng, &x, 9);
        let alphas = vec![0.3, 3.0, 30.0, 300.0];
        let config =
            RidgeConfig { alphas: alphas.clone(), per_target_alpha: true, score: CvScore::L2, target_batch: 4 };
        let folds = folds_chunked(n, 4, 7, rng.random());
        let svd = ridge_cv_forced(&x, &y, &folds, &config, on_path(Path::Svd)).unwrap();
        let kernel = ridge_cv_forced(&x, &y, &folds, &config, on_path(Path::Kernel)).unwrap();
        let scores = |r: &RidgeCvResult| r.cv_scores.data.iter().map(|&v| v as f64).collect::<Vec<_>>();
        assert_close(&format!("cv scores n={n} p={p}"), &scores(&svd), &scores(&kernel), 1e-4);
        let weights = |r: &RidgeCvResult| r.weights.data.iter().map(|&v| v as f64).collect::<Vec<_>>();
        let fit_svd = fit_ridge_with(&x, &y, &alphas[1..2], &on_path(Path::Svd)).unwrap();
        let fit_kernel = fit_ridge_with(&x, &y, &alphas[1..2], &on_path(Path::Kernel)).unwrap();
        let as_f64 = |m: &Matrix| m.data.iter().map(|&v| v as f64).collect::<Vec<_>>();
        assert_close("fit_ridge weights", &as_f64(&fit_svd), &as_f64(&fit_kernel), 1e-4);
        if svd.best_alphas == kernel.best_alphas {
            assert_close("refit weights", &weights(&svd), &weights(&kernel), 1e-4);
        }
    }
}

/// On shapes where several routes apply (folds that split all rows, 5 of
/// them), each fold-operator route of the SVD path (per-fold Cholesky with
/// and without the shared projection, the eigendecomposition, the downdate)
/// and of the kernel path (per-fold Cholesky, the eigendecomposition, the
/// shared inverse in one group and in groups of one), each with both refit
/// routes: the routes run as forced, and give the same scores, the same
/// alphas (but where two alphas' scores tie within rounding) and the same
/// weights.
#[test]
fn every_route_gives_the_same_fit() {
    let mut rng = fresh_rng("every_route_gives_the_same_fit");
    let alone = |method| (ForcedFolds::Alone(method), None);
    let svd = [
        (ForcedFolds::Alone(FoldMethod::Cholesky), Some(false)),
        (ForcedFolds::Alone(FoldMethod::Cholesky), Some(true)),
        alone(FoldMethod::Eigen),
        (ForcedFolds::Downdate, None),
    ];
    let kernel = [
        alone(FoldMethod::Cholesky),
        alone(FoldMethod::Eigen),
        (ForcedFolds::SharedInverse { group: None }, None),
        (ForcedFolds::SharedInverse { group: Some(1) }, None),
    ];
    for (n, p, routes, score) in
        [(rng.random_range(100..140), 30, svd, CvScore::L2), (50, rng.random_range(80..100), kernel, CvScore::Pearson)]
    {
        let x = random_matrix(&mut rng, n, p);
        let y = signal_and_noise(&mut rng, &x, 12);
        let config =
            RidgeConfig { alphas: vec![0.3, 3.0, 30.0, 300.0], per_target_alpha: true, score, target_batch: 5 };
        let folds = folds_contiguous(n, 5);
        let mut fits: Vec<(String, RidgeCvResult)> = Vec::new();
        for (route, shared_projection) in routes {
            for refit in [RefitRoute::Spectrum, RefitRoute::Direct] {
                let forced =
                    PartialPlan { folds: Some(route), shared_projection, refit: Some(refit), ..PartialPlan::default() };
                let (result, taken) = ridge_cv_taken(&x, &y, &folds, &config, forced).unwrap();
                let expected = match route {
                    ForcedFolds::Alone(FoldMethod::Cholesky) => PreparedBy::Cholesky,
                    ForcedFolds::Alone(FoldMethod::Eigen) => PreparedBy::Eigen,
                    ForcedFolds::SharedInverse { .. } => PreparedBy::SharedInverse,
                    ForcedFolds::Downdate => PreparedBy::Downdate,
                };
                assert_eq!(taken.folds, vec![expected; folds.len()], "{route:?}");
                match refit {
                    RefitRoute::Direct => assert!(!taken.refit_spectrum, "{taken:?}"),
                    _ => assert!(taken.refit_spectrum && taken.refit_direct.is_empty(), "{taken:?}"),
                }
                fits.push((format!("n={n} p={p} {route:?} shared {shared_projection:?} refit {refit:?}"), result));
            }
        }
        let (first_label, first) = &fits[0];
        for (label, fit) in &fits[1..] {
            let label = format!("{label} vs {first_label}");
            assert_close(&format!("{label}: scores"), &as_f64(&fit.cv_scores), &as_f64(&first.cv_scores), 1e-4);
            for t in 0..y.cols {
                let (a, b) = (fit.best_alphas[t], first.best_alphas[t]);
                if a == b {
                    assert_close(
                        &format!("{label}: weights of {t}"),
                        &column(&fit.weights, t),
                        &column(&first.weights, t),
                        1e-4,
                    );
                } else {
                    let score = |alpha: f64| {
                        let row = config.alphas.iter().position(|&c| c == alpha).unwrap();
                        first.cv_scores.get(row, t) as f64
                    };
                    let (sa, sb) = (score(a), score(b));
                    assert!((sa - sb).abs() <= 1e-5 * sa.abs().max(sb.abs()), "{label}: target {t} chose {a} vs {b}");
                }
            }
        }
    }
}
