//! Per-unit statistics of encoding-model results: Pearson r and R^2 per
//! column, two-sided p-values of r (Student t, with our own regularized
//! incomplete beta), Benjamini-Hochberg FDR q-values, the noise ceiling from
//! repeated presentations (signal power after Sahani & Linden 2003 and
//! Schoppe et al. 2016), and numpy's default percentile.
//!
//! Column statistics read the row-major [`Matrix`] in blocks of columns,
//! accumulate in `f64` and run in parallel over the blocks.

use rayon::prelude::*;

use crate::numeric::Matrix;

/// Columns handled together by one task: long enough rows for the inner
/// loop to vectorize, few enough accumulators to stay in cache.
const COLUMN_BLOCK: usize = 512;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    #[error("a noise ceiling needs at least 2 repeats, got {0}")]
    TooFewRepeats(usize),
    #[error("repeat {index} is {rows} x {cols} but repeat 0 is {expected_rows} x {expected_cols}")]
    RepeatShapeMismatch { index: usize, rows: usize, cols: usize, expected_rows: usize, expected_cols: usize },
}

/// Pearson correlation of each column of `a` with the same column of `b`,
/// accumulated in `f64` (two passes). A column that is constant in either
/// matrix (std 0, or below `1e-12` of the mean's magnitude) gets 0.
///
/// Panics if the shapes differ.
pub fn pearson_columns(a: &Matrix, b: &Matrix) -> Vec<f64> {
    assert_same_shape(a, b, "pearson_columns");
    let n = a.rows as f64;
    column_blocks(a.cols, |columns| {
        let mean_a = block_means(a, columns.clone());
        let mean_b = block_means(b, columns.clone());
        let width = columns.len();
        let (mut sab, mut saa, mut sbb) = (vec![0.0; width], vec![0.0; width], vec![0.0; width]);
        for row in 0..a.rows {
            let xs = &a.row(row)[columns.clone()];
            let ys = &b.row(row)[columns.clone()];
            for c in 0..width {
                let x = xs[c] as f64 - mean_a[c];
                let y = ys[c] as f64 - mean_b[c];
                sab[c] += x * y;
                saa[c] += x * x;
                sbb[c] += y * y;
            }
        }
        (0..width)
            .map(|c| {
                let constant =
                    is_constant((saa[c] / n).sqrt(), mean_a[c]) || is_constant((sbb[c] / n).sqrt(), mean_b[c]);
                if constant || a.rows == 0 {
                    0.0
                } else {
                    (sab[c] / (saa[c].sqrt() * sbb[c].sqrt())).clamp(-1.0, 1.0)
                }
            })
            .collect()
    })
}

/// Coefficient of determination per column, `1 - SSE / SST` with `SST`
/// about the column mean of `actual`. A constant `actual` column gets 1 if
/// the prediction is exact and 0 otherwise (scikit-learn's `r2_score`
/// convention).
///
/// Panics if the shapes differ.
pub fn r2_columns(prediction: &Matrix, actual: &Matrix) -> Vec<f64> {
    assert_same_shape(prediction, actual, "r2_columns");
    column_blocks(actual.cols, |columns| {
        let mean = block_means(actual, columns.clone());
        let width = columns.len();
        let (mut sse, mut sst) = (vec![0.0; width], vec![0.0; width]);
        for row in 0..actual.rows {
            let ps = &prediction.row(row)[columns.clone()];
            let ys = &actual.row(row)[columns.clone()];
            for c in 0..width {
                let y = ys[c] as f64;
                let error = y - ps[c] as f64;
                sse[c] += error * error;
                sst[c] += (y - mean[c]) * (y - mean[c]);
            }
        }
        (0..width)
            .map(|c| match (sse[c] == 0.0, sst[c] == 0.0) {
                (true, _) => 1.0,
                (false, true) => 0.0,
                (false, false) => 1.0 - sse[c] / sst[c],
            })
            .collect()
    })
}

/// Two-sided p-value of a Pearson correlation `r` over `n` samples under
/// the null of no correlation: `t = r sqrt((n - 2) / (1 - r^2))` is Student
/// t with `n - 2` degrees of freedom, so `p = I_{1 - r^2}((n - 2) / 2, 1/2)`
/// (what `scipy.stats.pearsonr` returns). `p = 1` for `n < 3`, 0 for
/// `|r| = 1`, NaN for a NaN `r`.
pub fn pearson_p_value(r: f64, n: usize) -> f64 {
    if r.is_nan() {
        return f64::NAN;
    }
    if n < 3 {
        return 1.0;
    }
    let r = r.abs().min(1.0);
    let x = (1.0 - r) * (1.0 + r);
    if x <= 0.0 {
        return 0.0;
    }
    incomplete_beta(0.5 * (n - 2) as f64, 0.5, x, r * r)
}

/// The regularized incomplete beta function `I_x(a, b)` for `a, b > 0`,
/// `0 <= x <= 1`: the continued fraction of Numerical Recipes (modified
/// Lentz), on whichever of `x`, `1 - x` converges fast.
///
/// Kept instead of `statrs::function::beta::beta_reg` on purpose: that takes
/// `x` alone and recomputes `1 - x`, which for a p-value is `r^2` lost to
/// cancellation when `r` is small (at r = 1e-4, n = 315: relative error
/// 3.6e-12 against 50-digit mpmath, this one 2.4e-17), and its different
/// last bits would change every `evaluate` output's digest.
pub fn regularized_incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x.is_nan() || a.is_nan() || b.is_nan() || a <= 0.0 || b <= 0.0 {
        return f64::NAN;
    }
    incomplete_beta(a, b, x.clamp(0.0, 1.0), 1.0 - x.clamp(0.0, 1.0))
}

/// `ln Gamma(x)` for `x > 0` (Lanczos approximation, g = 7, relative error
/// about 1e-15).
pub fn ln_gamma(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Gamma(x) Gamma(1 - x) = pi / sin(pi x).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).abs().ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, &c) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// Benjamini-Hochberg adjusted p-values (q-values), in the input order:
/// `q_(i) = min_{j >= i} p_(j) m / j`, capped at 1, so that `q <= alpha`
/// selects a set with false discovery rate at most `alpha`. Matches
/// `scipy.stats.false_discovery_control(p, method="bh")`. NaN p-values get a
/// NaN q-value and do not count towards `m`.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p_values.len()).filter(|&i| !p_values[i].is_nan()).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let m = order.len() as f64;
    let mut q = vec![f64::NAN; p_values.len()];
    let mut running_min = f64::INFINITY;
    for (rank, &index) in order.iter().enumerate().rev() {
        let adjusted = p_values[index] * (m / (rank + 1) as f64);
        running_min = running_min.min(adjusted);
        q[index] = running_min.min(1.0);
    }
    q
}

/// The noise ceiling of each unit from `R >= 2` repeats of the same
/// stimulus (each `n x v`, time x unit).
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseCeiling {
    /// Signal power over the mean single-repeat variance,
    /// `SP / mean_r Var(y_r)`: the fraction of a single repeat's variance
    /// that is stimulus-driven. Equals the bias-corrected explainable
    /// variance of the Gallant lab's `explainable_variance`
    /// (`ev - (1 - ev) / (R - 1)`); can be negative for pure noise.
    pub explainable_variance: Vec<f64>,
    /// The largest correlation any model can reach with the mean over the
    /// `R` repeats, `sqrt(SP / Var(mean_r y_r))` (Schoppe et al. 2016), 0
    /// where the signal power is not positive. Normalized correlation is
    /// `r / cc_max` ([`NoiseCeiling::normalize`]).
    pub cc_max: Vec<f64>,
}

impl NoiseCeiling {
    /// `r / cc_max` per unit; NaN where `cc_max` is 0 (no measurable
    /// signal), so that such units are not silently counted as perfect.
    ///
    /// Panics if `r` does not have one value per unit.
    pub fn normalize(&self, r: &[f64]) -> Vec<f64> {
        assert_eq!(r.len(), self.cc_max.len(), "one correlation per unit");
        r.iter().zip(&self.cc_max).map(|(&r, &ceiling)| if ceiling > 0.0 { r / ceiling } else { f64::NAN }).collect()
    }
}

/// Signal power per unit (Sahani & Linden 2003; Schoppe et al. 2016):
/// `SP = (Var(sum_r y_r) - sum_r Var(y_r)) / (R (R - 1))
///     = (R Var(mean) - mean_r Var(y_r)) / (R - 1)`,
/// with population variances over time. Returns the explainable variance
/// `SP / mean_r Var(y_r)` and `CC_max = sqrt(SP / Var(mean))`. The repeats
/// are used as given (z-score them first if their scales differ); a unit
/// constant in every repeat gets 0 for both.
pub fn noise_ceiling(repeats: &[&Matrix]) -> Result<NoiseCeiling, StatsError> {
    if repeats.len() < 2 {
        return Err(StatsError::TooFewRepeats(repeats.len()));
    }
    let (rows, cols) = (repeats[0].rows, repeats[0].cols);
    for (index, m) in repeats.iter().enumerate() {
        if m.rows != rows || m.cols != cols {
            return Err(StatsError::RepeatShapeMismatch {
                index,
                rows: m.rows,
                cols: m.cols,
                expected_rows: rows,
                expected_cols: cols,
            });
        }
    }
    let n_repeats = repeats.len() as f64;
    let n = rows.max(1) as f64;
    let pairs = column_blocks(cols, |columns| {
        let width = columns.len();
        let means: Vec<Vec<f64>> = repeats.iter().map(|m| block_means(m, columns.clone())).collect();
        let grand_mean: Vec<f64> = (0..width).map(|c| means.iter().map(|m| m[c]).sum::<f64>() / n_repeats).collect();
        let mut mean_of_vars = vec![0.0; width];
        let mut var_of_mean = vec![0.0; width];
        let mut average = vec![0.0; width];
        for row in 0..rows {
            average.iter_mut().for_each(|a| *a = 0.0);
            for (m, mean) in repeats.iter().zip(&means) {
                let ys = &m.row(row)[columns.clone()];
                for c in 0..width {
                    let y = ys[c] as f64;
                    average[c] += y;
                    mean_of_vars[c] += (y - mean[c]) * (y - mean[c]);
                }
            }
            for c in 0..width {
                let deviation = average[c] / n_repeats - grand_mean[c];
                var_of_mean[c] += deviation * deviation;
            }
        }
        (0..width)
            .map(|c| {
                let mean_var = mean_of_vars[c] / (n * n_repeats);
                let var_mean = var_of_mean[c] / n;
                let signal_power = (n_repeats * var_mean - mean_var) / (n_repeats - 1.0);
                let explainable = if mean_var > 0.0 { signal_power / mean_var } else { 0.0 };
                let cc_max =
                    if signal_power > 0.0 && var_mean > 0.0 { (signal_power / var_mean).sqrt().min(1.0) } else { 0.0 };
                (explainable, cc_max)
            })
            .collect()
    });
    let (explainable_variance, cc_max) = pairs.into_iter().unzip();
    Ok(NoiseCeiling { explainable_variance, cc_max })
}

/// The `q`-th percentile (`0 <= q <= 100`) with numpy's default linear
/// interpolation between the closest ranks, `np.percentile(values, q)`.
/// NaN if `values` is empty, contains NaN (as numpy), or `q` is out of range.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() || !(0.0..=100.0).contains(&q) || values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len() - 1;
    let position = q / 100.0 * last as f64;
    let below = (position.floor() as usize).min(last);
    let above = (below + 1).min(last);
    let fraction = position - below as f64;
    let (a, b) = (sorted[below], sorted[above]);
    // numpy's _lerp: interpolate from the nearer end for accuracy.
    let difference = b - a;
    if fraction >= 0.5 {
        b - difference * (1.0 - fraction)
    } else {
        a + difference * fraction
    }
}

/// Whether a column with this population std and mean is constant up to
/// rounding: std 0, or below `1e-12` of the mean's magnitude (an `f32`
/// column of one repeated value has a tiny nonzero std after `f64`
/// accumulation; real `f32` variation is at least about `6e-8` relative).
pub(crate) fn is_constant(std: f64, mean: f64) -> bool {
    std == 0.0 || std <= 1e-12 * mean.abs()
}

/// `I_x(a, b)` given both `x` and `y = 1 - x` (callers that know `y`
/// exactly, such as `r^2`, avoid the cancellation in `1 - x`).
fn incomplete_beta(a: f64, b: f64, x: f64, y: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if y <= 0.0 {
        return 1.0;
    }
    let ln_front = a * x.ln() + b * y.ln() - ln_beta(a, b);
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_continued_fraction(a, b, x) / a
    } else {
        1.0 - ln_front.exp() * beta_continued_fraction(b, a, y) / b
    }
}

fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// The continued fraction of `I_x(a, b)` (Numerical Recipes `betacf`),
/// evaluated with the modified Lentz method.
fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const MAX_ITERATIONS: usize = 100_000;
    const EPSILON: f64 = 1e-16;
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=MAX_ITERATIONS {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < EPSILON {
            break;
        }
    }
    h
}

fn assert_same_shape(a: &Matrix, b: &Matrix, what: &str) {
    assert!(
        a.rows == b.rows && a.cols == b.cols,
        "{what}: shapes differ ({} x {} and {} x {})",
        a.rows,
        a.cols,
        b.rows,
        b.cols
    );
}

/// Runs `per_block` on consecutive column ranges in parallel and
/// concatenates the per-column results in column order.
fn column_blocks<T: Send>(cols: usize, per_block: impl Fn(std::ops::Range<usize>) -> Vec<T> + Sync) -> Vec<T> {
    let starts: Vec<usize> = (0..cols).step_by(COLUMN_BLOCK).collect();
    starts.into_par_iter().map(|start| per_block(start..(start + COLUMN_BLOCK).min(cols))).flatten_iter().collect()
}

fn block_means(m: &Matrix, columns: std::ops::Range<usize>) -> Vec<f64> {
    let mut sums = vec![0.0; columns.len()];
    for row in 0..m.rows {
        for (s, &x) in sums.iter_mut().zip(&m.row(row)[columns.clone()]) {
            *s += x as f64;
        }
    }
    let n = m.rows.max(1) as f64;
    sums.into_iter().map(|s| s / n).collect()
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;
    use crate::testing::{fresh_rng as rng, random_matrix};

    fn column(m: &Matrix, c: usize) -> Vec<f64> {
        (0..m.rows).map(|r| m.get(r, c) as f64).collect()
    }

    fn naive_pearson(x: &[f64], y: &[f64]) -> f64 {
        let n = x.len() as f64;
        let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
        let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
        let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
        let syy: f64 = y.iter().map(|b| (b - my) * (b - my)).sum();
        sxy / (sxx * syy).sqrt()
    }

    #[test]
    fn pearson_and_r2_match_the_textbook_formulas() {
        let mut rng = rng("pearson_and_r2_match_the_textbook_formulas");
        let (rows, cols) = (rng.random_range(20..200), 1100);
        let a = random_matrix(&mut rng, rows, cols);
        let mut b = random_matrix(&mut rng, rows, cols);
        for r in 0..rows {
            for c in 0..cols {
                let mixed = b.get(r, c) + a.get(r, c) * (c % 7) as f32 * 0.5;
                b.set(r, c, mixed);
            }
            b.set(r, 3, 2.5);
        }
        let r = pearson_columns(&a, &b);
        let r2 = r2_columns(&a, &b);
        for c in 0..cols {
            let (x, y) = (column(&a, c), column(&b, c));
            if c == 3 {
                assert_eq!(r[c], 0.0);
                assert_eq!(r2[c], 0.0);
                continue;
            }
            assert!((r[c] - naive_pearson(&x, &y)).abs() < 1e-12, "column {c}");
            let mean = y.iter().sum::<f64>() / y.len() as f64;
            let sse: f64 = x.iter().zip(&y).map(|(p, t)| (t - p) * (t - p)).sum();
            let sst: f64 = y.iter().map(|t| (t - mean) * (t - mean)).sum();
            assert!((r2[c] - (1.0 - sse / sst)).abs() < 1e-10, "column {c}");
        }
        assert!(pearson_columns(&a, &a).iter().all(|&v| (v - 1.0).abs() < 1e-12));
        assert!(r2_columns(&a, &a).iter().all(|&v| v == 1.0));
    }

    #[test]
    fn p_values_match_closed_forms_and_t_tables() {
        use std::f64::consts::PI;
        let mut rng = rng("p_values_match_closed_forms_and_t_tables");
        for _ in 0..500 {
            let r: f64 = rng.random_range(-1.0..1.0);
            // n = 3: t has 1 dof (Cauchy), p = 1 - (2 / pi) asin |r|.
            let cauchy = 1.0 - 2.0 / PI * r.abs().asin();
            assert!((pearson_p_value(r, 3) - cauchy).abs() < 1e-12, "n = 3, r = {r}");
            // n = 4: t has 2 dof, p = 1 - |r|.
            assert!((pearson_p_value(r, 4) - (1.0 - r.abs())).abs() < 1e-12, "n = 4, r = {r}");
        }
        // Two-sided critical values of Student t (scipy.stats.t.ppf).
        for (t, dof, p) in [
            (2.306004135204166, 8usize, 0.05),
            (2.8453397097861077, 20, 0.01),
            (3.390491311164263, 100, 0.001),
            (12.706204736174694, 1, 0.05),
        ] {
            let dof_f = dof as f64;
            let r = t / (dof_f + t * t).sqrt();
            let got = pearson_p_value(r, dof + 2);
            assert!((got - p).abs() < 1e-9 * p, "t = {t}, dof = {dof}: {got}");
        }
        assert_eq!(pearson_p_value(1.0, 50), 0.0);
        assert_eq!(pearson_p_value(0.0, 50), 1.0);
        assert_eq!(pearson_p_value(0.3, 2), 1.0);
        assert!(pearson_p_value(f64::NAN, 10).is_nan());
        // Large samples: tiny p-values stay positive and ordered.
        let (strong, weaker) = (pearson_p_value(0.9, 500), pearson_p_value(0.8, 500));
        assert!(strong > 0.0 && strong < weaker && weaker < 1e-100);
    }

    #[test]
    fn ln_gamma_and_incomplete_beta_known_values() {
        assert!((ln_gamma(1.0)).abs() < 1e-15);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-14);
        assert!((ln_gamma(10.0) - 362880f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.1) - 2.252712651734206).abs() < 1e-13);
        let mut rng = rng("ln_gamma_and_incomplete_beta_known_values");
        for _ in 0..200 {
            let x: f64 = rng.random_range(0.0..1.0);
            let a: f64 = rng.random_range(0.2..30.0);
            // I_x(a, 1) = x^a and I_x(1, b) = 1 - (1 - x)^b.
            assert!((regularized_incomplete_beta(a, 1.0, x) - x.powf(a)).abs() < 1e-12);
            let expected = 1.0 - (1.0 - x).powf(a);
            assert!((regularized_incomplete_beta(1.0, a, x) - expected).abs() < 1e-12);
            // Symmetry I_x(a, b) = 1 - I_{1-x}(b, a).
            let b: f64 = rng.random_range(0.2..30.0);
            let sum = regularized_incomplete_beta(a, b, x) + regularized_incomplete_beta(b, a, 1.0 - x);
            assert!((sum - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn benjamini_hochberg_hand_example_and_monotonicity() {
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005, 0.2]);
        let expected = [0.025, 0.05, 0.05, 0.025, 0.2];
        for (got, want) in q.iter().zip(expected) {
            assert!((got - want).abs() < 1e-15, "{q:?}");
        }
        assert_eq!(benjamini_hochberg(&[0.9, 0.95]), vec![0.95, 0.95]);
        assert_eq!(benjamini_hochberg(&[0.6, 0.9]), vec![0.9, 0.9]);
        let with_nan = benjamini_hochberg(&[0.01, f64::NAN, 0.02]);
        assert!(with_nan[1].is_nan() && with_nan[0] == 0.02 && with_nan[2] == 0.02);

        let mut rng = rng("benjamini_hochberg_hand_example_and_monotonicity");
        let p: Vec<f64> = (0..1000).map(|_| rng.random::<f64>().powi(3)).collect();
        let q = benjamini_hochberg(&p);
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
        for pair in order.windows(2) {
            assert!(q[pair[0]] <= q[pair[1]], "q not monotone in p");
        }
        assert!(p.iter().zip(&q).all(|(p, q)| q >= p && *q <= 1.0));
    }

    #[test]
    fn percentile_follows_numpy_linear() {
        let values = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&values, 50.0), 2.5);
        assert_eq!(percentile(&values, 0.0), 1.0);
        assert_eq!(percentile(&values, 100.0), 4.0);
        assert_eq!(percentile(&values, 25.0), 1.75);
        assert_eq!(percentile(&[7.0], 30.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
        assert!(percentile(&values, 101.0).is_nan());
        assert!(percentile(&[1.0, f64::NAN], 50.0).is_nan());
    }

    #[test]
    fn noise_ceiling_recovers_the_simulated_signal_fraction() {
        let mut rng = rng("noise_ceiling_recovers_the_simulated_signal_fraction");
        let (rows, cols, n_repeats) = (4000, 6, 4);
        // Unit c has signal variance 1 and noise std c / 2 (c = 0: no noise);
        // the last unit is pure noise.
        let signal = random_matrix(&mut rng, rows, cols);
        let repeats: Vec<Matrix> = (0..n_repeats)
            .map(|_| {
                let noise = random_matrix(&mut rng, rows, cols);
                let data = (0..rows * cols)
                    .map(|i| {
                        let c = i % cols;
                        let s = if c == cols - 1 { 0.0 } else { signal.data[i] };
                        s + noise.data[i] * c as f32 * 0.5
                    })
                    .collect();
                Matrix::from_vec(rows, cols, data)
            })
            .collect();
        let views: Vec<&Matrix> = repeats.iter().collect();
        let ceiling = noise_ceiling(&views).unwrap();
        assert!((ceiling.explainable_variance[0] - 1.0).abs() < 1e-9);
        assert!((ceiling.cc_max[0] - 1.0).abs() < 1e-9);
        for c in 1..cols - 1 {
            let noise_var = (c as f64 * 0.5).powi(2);
            let ev = 1.0 / (1.0 + noise_var);
            let cc_max = (1.0 / (1.0 + noise_var / n_repeats as f64)).sqrt();
            assert!((ceiling.explainable_variance[c] - ev).abs() < 0.05, "unit {c}");
            assert!((ceiling.cc_max[c] - cc_max).abs() < 0.05, "unit {c}");
        }
        assert!(ceiling.explainable_variance[cols - 1].abs() < 0.05);
        let normalized = ceiling.normalize(&[0.5; 6]);
        assert!((normalized[0] - 0.5).abs() < 1e-9);
        assert!(noise_ceiling(&views[..1]).is_err());
        let constant = Matrix::from_vec(2, 1, vec![3.0, 3.0]);
        let flat = noise_ceiling(&[&constant, &constant]).unwrap();
        assert_eq!((flat.explainable_variance[0], flat.cc_max[0]), (0.0, 0.0));
        assert!(flat.normalize(&[0.2])[0].is_nan());
    }
}
