//! Banded ridge: one penalty per band of features, by himalaya's random
//! search over band weightings ([`banded_ridge_cv`], with
//! [`dirichlet_samples`] for the weightings). Each weighting scores every
//! alpha on the folds through the same design, plan and score table as
//! [`ridge_cv`](super::ridge_cv); the refit goes through each chosen
//! weighting's spectrum.

use faer::Par;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};

use super::design::Design;
use super::plan::{PartialPlan, RoutePlan, Shape};
use super::refit::{refit, RefitSolver};
use super::scoring::{best_alpha, cv_score_table};
use super::{check_alphas, check_batch, check_folds, check_inputs, CvScore, Fold, RidgeError};
use crate::numeric::Matrix;

/// Settings of [`banded_ridge_cv`].
#[derive(Clone, Debug, PartialEq)]
pub struct BandedConfig {
    /// Band weightings tried: the first is uniform, the others are Dirichlet
    /// samples (himalaya's `n_iter`).
    pub n_iter: usize,
    /// Candidate global alphas, each positive and finite.
    pub alphas: Vec<f64>,
    /// Dirichlet concentration (1 samples the simplex uniformly; himalaya
    /// cycles through 0.1 and 1).
    pub concentration: f64,
    /// Seed of the ChaCha8 generator that draws the band weightings.
    pub seed: u64,
    pub score: CvScore,
    pub target_batch: usize,
}

/// What [`banded_ridge_cv`] found. With band weights `gamma` (summing to one)
/// and a global `alpha`, band `b` is penalised by `alpha / gamma_b`: the
/// solution minimises `||sum_b X_b w_b - y||^2 + sum_b alpha / gamma_b ||w_b||^2`.
#[derive(Clone, Debug, PartialEq)]
pub struct BandedResult {
    /// n_iter x n_bands: every band weighting tried (rounded to f32, and used
    /// exactly as stored here).
    pub samples: Matrix,
    /// Per target: the row of `samples` chosen.
    pub best_sample: Vec<usize>,
    /// n_bands x n_targets: the chosen band weights `gamma`.
    pub gammas: Matrix,
    /// Per target: the chosen global alpha.
    pub best_alphas: Vec<f64>,
    /// n_bands x n_targets: himalaya's `deltas`, `ln(gamma_b / alpha)`; the
    /// penalty of band `b` is `exp(-delta_b)`.
    pub deltas: Matrix,
    /// n_iter x n_targets: for each band weighting, the score of its best
    /// alpha, averaged over folds.
    pub cv_scores: Matrix,
    /// p_total x n_targets, on the unscaled bands stacked in order.
    pub weights: Matrix,
}

/// Band weightings tried by [`banded_ridge_cv`]: `n_iter` x `n_bands`, the
/// first row uniform, the others Dirichlet(`concentration`) samples drawn by
/// `ChaCha8Rng::seed_from_u64(seed)` (normalised Gamma draws), rounded to f32.
pub fn dirichlet_samples(n_iter: usize, n_bands: usize, concentration: f64, seed: u64) -> Matrix {
    let mut samples = Matrix::zeros(n_iter, n_bands);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let gamma = Gamma::new(concentration, 1.0).ok();
    for i in 0..n_iter {
        let mut draw = vec![1.0 / n_bands as f64; n_bands];
        if i > 0 {
            if let Some(gamma) = &gamma {
                loop {
                    draw.iter_mut().for_each(|d| *d = gamma.sample(&mut rng));
                    let total: f64 = draw.iter().sum();
                    if total > 0.0 && total.is_finite() {
                        draw.iter_mut().for_each(|d| *d /= total);
                        break;
                    }
                }
            }
        }
        for (b, d) in draw.into_iter().enumerate() {
            samples.set(i, b, d as f32);
        }
    }
    samples
}

/// Banded ridge by himalaya's random search (`solve_group_ridge_random_search`
/// with `local_alpha=True`): for each band weighting `gamma` of
/// [`dirichlet_samples`], the bands are scaled by `sqrt(gamma_b)` and every
/// alpha is scored on the folds; a target keeps the first weighting whose
/// best score beats its best so far by more than `f32::EPSILON`. The weights
/// are refit on all rows with each target's weighting and alpha.
pub fn banded_ridge_cv(
    x_bands: &[&Matrix],
    y: &Matrix,
    folds: &[Fold],
    config: &BandedConfig,
) -> Result<BandedResult, RidgeError> {
    if x_bands.is_empty() {
        return Err(RidgeError::Config("no feature bands given".into()));
    }
    if config.n_iter == 0 {
        return Err(RidgeError::Config("n_iter must be at least 1".into()));
    }
    if config.n_iter > 1 && !(config.concentration > 0.0 && config.concentration.is_finite()) {
        return Err(RidgeError::Config(format!(
            "the Dirichlet concentration must be positive and finite, not {}",
            config.concentration
        )));
    }
    let names: Vec<String> = (0..x_bands.len()).map(|b| format!("X band {b}")).collect();
    let named: Vec<(&str, &Matrix)> = names.iter().map(String::as_str).zip(x_bands.iter().copied()).collect();
    check_inputs(&named, y)?;
    check_folds(folds, y.rows)?;
    check_alphas(&config.alphas)?;
    check_batch(config.target_batch)?;

    let x = Matrix::hstack(x_bands);
    let band_widths: Vec<usize> = x_bands.iter().map(|band| band.cols).collect();
    let n_bands = x_bands.len();
    let samples = dirichlet_samples(config.n_iter, n_bands, config.concentration, config.seed);
    let shape = Shape { band_search: true, ..Shape::new(&x, y, folds, &config.alphas) };
    let plan = RoutePlan::choose(&shape, &PartialPlan::default())?;
    tracing::debug!(?plan, "ridge: route plan (banded)");
    let row_counts = folds.iter().map(|f| f.train.len()).chain([x.rows]);
    let design = Design::new(&x, &band_widths, row_counts, &plan);
    // X^T Y does not depend on the band weights: one for every weighting.
    let shared = design.shared_projection_of(y, config.target_batch);
    let n_alphas = config.alphas.len();
    let n_targets = y.cols;
    let mut best_score = vec![f64::NEG_INFINITY; n_targets];
    let mut best_sample = vec![0usize; n_targets];
    let mut best_alpha_index = vec![0usize; n_targets];
    let mut cv_scores = Matrix::zeros(config.n_iter, n_targets);
    for i in 0..config.n_iter {
        let gamma: Vec<f64> = samples.row(i).iter().map(|&g| g as f64).collect();
        let (table, _) = cv_score_table(
            &design,
            &gamma,
            y,
            folds,
            &config.alphas,
            config.score,
            config.target_batch,
            shared.as_ref(),
        )?;
        for t in 0..n_targets {
            let (a, score) = best_alpha(&table[t * n_alphas..(t + 1) * n_alphas], &config.alphas);
            cv_scores.set(i, t, score as f32);
            if score > best_score[t] + f32::EPSILON as f64 {
                best_score[t] = score;
                best_sample[t] = i;
                best_alpha_index[t] = a;
            }
        }
    }

    let best_alphas: Vec<f64> = best_alpha_index.iter().map(|&a| config.alphas[a]).collect();
    let mut weights = Matrix::zeros(x.cols, n_targets);
    let mut chosen: Vec<usize> = best_sample.clone();
    chosen.sort_unstable();
    chosen.dedup();
    for i in chosen {
        let gamma: Vec<f64> = samples.row(i).iter().map(|&g| g as f64).collect();
        let solver = RefitSolver { spectrum: Some(design.decompose_full(&gamma, Par::rayon(0))?), direct: Vec::new() };
        let targets: Vec<usize> = (0..n_targets).filter(|&t| best_sample[t] == i).collect();
        let alphas: Vec<f64> = targets.iter().map(|&t| best_alphas[t]).collect();
        refit(y, &solver, &targets, &alphas, config.target_batch, &mut weights);
    }
    let mut gammas = Matrix::zeros(n_bands, n_targets);
    let mut deltas = Matrix::zeros(n_bands, n_targets);
    for t in 0..n_targets {
        for b in 0..n_bands {
            let g = samples.get(best_sample[t], b);
            gammas.set(b, t, g);
            deltas.set(b, t, (g as f64 / best_alphas[t]).ln() as f32);
        }
    }
    Ok(BandedResult { samples, best_sample, gammas, best_alphas, deltas, cv_scores, weights })
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::super::folds::folds_chunked;
    use super::super::test_helpers::{assert_close, brute_force_scores, closed_form, column, signal_and_noise};
    use super::*;
    use crate::testing::{fresh_rng, random_matrix};

    #[test]
    fn banded_ridge_matches_a_brute_force_search() {
        let mut rng = fresh_rng("banded_ridge_matches_a_brute_force_search");
        for (n, widths) in [(90, [6, 10]), (40, [30, 25])] {
            let bands: Vec<Matrix> = widths.iter().map(|&w| random_matrix(&mut rng, n, w)).collect();
            let band_refs: Vec<&Matrix> = bands.iter().collect();
            let x = Matrix::hstack(&band_refs);
            let mut y = signal_and_noise(&mut rng, &bands[0], 6);
            let second = signal_and_noise(&mut rng, &bands[1], 6);
            for (value, extra) in y.data.iter_mut().zip(&second.data) {
                *value += rng.random::<f32>() * extra;
            }
            let config = BandedConfig {
                n_iter: 6,
                alphas: vec![0.1, 1.0, 10.0, 100.0],
                concentration: 1.0,
                seed: rng.random(),
                score: CvScore::L2,
                target_batch: 4,
            };
            let folds = folds_chunked(n, 3, 5, rng.random());
            let result = banded_ridge_cv(&band_refs, &y, &folds, &config).unwrap();
            assert_eq!(result.samples, dirichlet_samples(6, 2, 1.0, config.seed));
            let mut best = vec![(f64::NEG_INFINITY, 0usize, 0usize); y.cols];
            for i in 0..config.n_iter {
                let gamma: Vec<f64> = result.samples.row(i).iter().map(|&g| g as f64).collect();
                let shape: Vec<f64> = (0..x.cols).map(|j| 1.0 / gamma[usize::from(j >= widths[0])]).collect();
                let table = brute_force_scores(&x, &y, &folds, &config.alphas, &shape, config.score);
                for t in 0..y.cols {
                    let scores: Vec<f64> = table.iter().map(|row| row[t]).collect();
                    let (a, score) = best_alpha(&scores, &config.alphas);
                    let actual = result.cv_scores.get(i, t) as f64;
                    assert!((actual - score).abs() <= 1e-4 * score.abs(), "sample {i} target {t}: {actual} vs {score}");
                    if score > best[t].0 + f32::EPSILON as f64 {
                        best[t] = (score, i, a);
                    }
                }
            }
            for (t, &(score, i, a)) in best.iter().enumerate() {
                let chosen_score = result.cv_scores.get(result.best_sample[t], t) as f64;
                assert!(
                    (result.best_sample[t] == i && result.best_alphas[t] == config.alphas[a])
                        || (chosen_score - score).abs() < 1e-5 * score.abs(),
                    "target {t}: chose sample {} alpha {}, brute force sample {i} alpha {}",
                    result.best_sample[t],
                    result.best_alphas[t],
                    config.alphas[a]
                );
                let gamma: Vec<f64> = result.samples.row(result.best_sample[t]).iter().map(|&g| g as f64).collect();
                let penalties: Vec<f64> =
                    (0..x.cols).map(|j| result.best_alphas[t] / gamma[usize::from(j >= widths[0])]).collect();
                let rows: Vec<usize> = (0..n).collect();
                let expected = closed_form(&x, &y, t, &rows, &penalties);
                assert_close(&format!("banded weights of target {t}"), &column(&result.weights, t), &expected, 1e-4);
                for (b, g) in gamma.iter().enumerate() {
                    let delta = result.deltas.get(b, t) as f64;
                    let expected_delta = (g / result.best_alphas[t]).ln();
                    assert!((delta - expected_delta).abs() < 1e-5 * expected_delta.abs().max(1.0));
                }
            }
        }
    }

    #[test]
    fn dirichlet_samples_are_reproducible_points_of_the_simplex() {
        let mut rng = fresh_rng("dirichlet_samples_are_reproducible_points_of_the_simplex");
        let seed = rng.random();
        let samples = dirichlet_samples(50, 3, 0.5, seed);
        assert_eq!(samples, dirichlet_samples(50, 3, 0.5, seed));
        assert_ne!(samples, dirichlet_samples(50, 3, 0.5, seed.wrapping_add(1)));
        assert!(samples.row(0).iter().all(|&g| (g - 1.0 / 3.0).abs() < 1e-7));
        for i in 0..50 {
            let row = samples.row(i);
            assert!(row.iter().all(|&g| (0.0..=1.0).contains(&g)), "row {i}: {row:?}");
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "row {i}: {row:?}");
        }
    }
}
