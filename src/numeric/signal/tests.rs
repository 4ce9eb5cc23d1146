//! Unit tests of the downsampling, delay, z-scoring, trimming and
//! temporal-baseline kernels against closed forms and float64 references.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::testing::{fresh_rng as rng, random_matrix};

/// A story: TR midpoints on a regular grid and sorted word times that
/// start before the first TR and end after the last.
fn random_story(rng: &mut ChaCha8Rng, n_trs: usize, n_words: usize) -> (Vec<f64>, Vec<f64>, f64) {
    let tr_seconds = rng.random_range(0.8..2.5);
    let onset = rng.random_range(-12.0..3.0);
    let tr_times: Vec<f64> = (0..n_trs).map(|i| onset + tr_seconds * (i as f64 + 0.5)).collect();
    let span = (onset - 4.0)..(onset + tr_seconds * n_trs as f64 + 4.0);
    let mut word_times: Vec<f64> = (0..n_words).map(|_| rng.random_range(span.clone())).collect();
    word_times.sort_by(f64::total_cmp);
    (tr_times, word_times, tr_seconds)
}

fn max_abs_difference(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).abs()).fold(0.0, f64::max)
}

/// `dense[i][j] * values[j]` summed over every word, in f64.
fn dense_product(weights: &[Vec<f64>], values: &Matrix) -> Vec<f64> {
    let mut out = vec![0.0; weights.len() * values.cols];
    for (i, row) in weights.iter().enumerate() {
        for (j, &w) in row.iter().enumerate() {
            for c in 0..values.cols {
                out[i * values.cols + c] += w * values.get(j, c) as f64;
            }
        }
    }
    out
}

#[test]
fn lanczos_kernel_matches_the_closed_form() {
    let mut rng = rng("lanczos_kernel_matches_the_closed_form");
    for _ in 0..2000 {
        let window = rng.random_range(1..=5usize);
        let w = window as f64;
        let t: f64 = rng.random_range(-w..w);
        // sinc(t) sinc(t / w) with sinc(x) = sin(pi x) / (pi x).
        let sinc = |x: f64| (PI * x).sin() / (PI * x);
        let expected = sinc(t) * sinc(t / w);
        let got = lanczos_kernel(t, window);
        assert!((got - expected).abs() < 1e-12, "L({t}, {window}) = {got}, expected {expected}");
        let outside = t.signum() * (w + 1e-9 + t.abs());
        assert_eq!(lanczos_kernel(outside, window), 0.0);
    }
    for window in 1..=5 {
        assert_eq!(lanczos_kernel(0.0, window), 1.0);
        for k in 1..=window {
            assert!(lanczos_kernel(k as f64, window).abs() < 1e-15);
            assert!(lanczos_kernel(-(k as f64), window).abs() < 1e-15);
        }
        assert_eq!(lanczos_kernel(window as f64 + 1e-9, window), 0.0);
    }
}

#[test]
fn lanczos_downsample_equals_the_dense_float64_product() {
    let mut rng = rng("lanczos_downsample_equals_the_dense_float64_product");
    for _ in 0..5 {
        let (tr_times, word_times, tr_seconds) = random_story(&mut rng, 60, 250);
        let values = random_matrix(&mut rng, word_times.len(), 9);
        let window = rng.random_range(1..=4usize);
        let cutoff_mult = rng.random_range(0.5..1.5);
        let method = DownsampleMethod::Lanczos { window, cutoff_mult };
        let got = downsample(&values, &word_times, &tr_times, tr_seconds, &method).unwrap();
        let spacing = (tr_times[tr_times.len() - 1] - tr_times[0]) / (tr_times.len() - 1) as f64;
        let cutoff = cutoff_mult / spacing;
        let weights: Vec<Vec<f64>> = tr_times
            .iter()
            .map(|t| word_times.iter().map(|w| lanczos_kernel((t - w) * cutoff, window)).collect())
            .collect();
        let expected = dense_product(&weights, &values);
        // f32 output of sums of about 10 terms of size <= 4.
        let error = max_abs_difference(&got.data, &expected);
        assert!(error < 1e-5, "max |lanczos - dense| = {error}");
    }
}

#[test]
fn sinc_downsample_equals_the_dense_float64_product() {
    let mut rng = rng("sinc_downsample_equals_the_dense_float64_product");
    for _ in 0..5 {
        let (tr_times, word_times, tr_seconds) = random_story(&mut rng, 50, 200);
        let values = random_matrix(&mut rng, word_times.len(), 5);
        let window = rng.random_range(1..=3usize);
        let cutoff_mult = rng.random_range(0.5..1.5);
        let method = DownsampleMethod::Sinc { window, cutoff_mult };
        let got = downsample(&values, &word_times, &tr_times, tr_seconds, &method).unwrap();
        let spacing = (tr_times[tr_times.len() - 1] - tr_times[0]) / (tr_times.len() - 1) as f64;
        let b = cutoff_mult / spacing;
        let weights: Vec<Vec<f64>> = tr_times
            .iter()
            .map(|t| {
                let raw: Vec<f64> = word_times
                    .iter()
                    .map(|w| {
                        let dt = t - w;
                        let x = 2.0 * PI * b * dt;
                        if dt.abs() > window as f64 / (2.0 * b) {
                            0.0
                        } else {
                            2.0 * b * x.sin() / x
                        }
                    })
                    .collect();
                let total: f64 = raw.iter().sum();
                raw.iter().map(|w| if total != 0.0 { w / total } else { *w }).collect()
            })
            .collect();
        let expected = dense_product(&weights, &values);
        // The normalised sinc weights can be large where the raw ones
        // nearly cancel, so each entry is held to f32 accuracy of its
        // own sum of |weight x value|.
        let magnitudes: Vec<Vec<f64>> = weights.iter().map(|row| row.iter().map(|w| w.abs()).collect()).collect();
        let abs_values = Matrix::from_vec(values.rows, values.cols, values.data.iter().map(|v| v.abs()).collect());
        let bounds = dense_product(&magnitudes, &abs_values);
        for ((&g, &e), &bound) in got.data.iter().zip(&expected).zip(&bounds) {
            let error = (g as f64 - e).abs();
            assert!(error <= 1e-5 * (1.0 + bound), "|sinc - dense| = {error:e} with sum |w v| = {bound:e}");
        }
    }
}

#[test]
fn binning_methods_on_a_hand_made_story() {
    // TRs at 1, 3, 5 (TR 2 s): bins [0, 2), [2, 4), [4, 6).
    let tr_times = [1.0, 3.0, 5.0];
    let word_times = [-0.5, 0.1, 0.5, 1.9, 2.0, 4.5, 6.0, 7.0];
    let values = Matrix::from_vec(8, 2, (1..=16).map(|v| v as f32).collect());
    let run = |method| downsample(&values, &word_times, &tr_times, 2.0, &method).unwrap();
    // Bin 0 holds rows 1..=3, bin 1 row 4, bin 2 row 5; rows 0, 6, 7 are outside.
    let sum = run(DownsampleMethod::Sum);
    assert_eq!(sum.data, vec![3. + 5. + 7., 4. + 6. + 8., 9., 10., 11., 12.]);
    let average = run(DownsampleMethod::Average);
    assert_eq!(average.data, vec![5., 6., 9., 10., 11., 12.]);
    assert_eq!(run(DownsampleMethod::Rect), average);
    let last = run(DownsampleMethod::Last);
    assert_eq!(last.data, vec![7., 8., 9., 10., 11., 12.]);
    // A TR without words is zero.
    let empty = downsample(&values, &word_times, &[9.0, 11.0], 2.0, &DownsampleMethod::Average);
    assert_eq!(empty.unwrap().data, vec![0.0; 4]);
}

#[test]
fn word_order_does_not_matter() {
    let mut rng = rng("word_order_does_not_matter");
    let (tr_times, word_times, tr_seconds) = random_story(&mut rng, 40, 150);
    let values = random_matrix(&mut rng, word_times.len(), 4);
    let mut order: Vec<usize> = (0..word_times.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let shuffled_times: Vec<f64> = order.iter().map(|&i| word_times[i]).collect();
    let shuffled_values = values.select_rows(&order);
    for method in [
        DownsampleMethod::Rect,
        DownsampleMethod::Average,
        DownsampleMethod::Sum,
        DownsampleMethod::Last,
        DownsampleMethod::LANCZOS3,
        DownsampleMethod::Sinc { window: 2, cutoff_mult: 1.0 },
    ] {
        let a = downsample(&values, &word_times, &tr_times, tr_seconds, &method).unwrap();
        let b = downsample(&shuffled_values, &shuffled_times, &tr_times, tr_seconds, &method).unwrap();
        let error = max_abs_difference(&a.data, &b.data.iter().map(|&x| x as f64).collect::<Vec<_>>());
        assert!(error < 1e-5, "{method:?}: {error}");
    }
}

#[test]
fn downsample_rejects_bad_input() {
    let values = Matrix::zeros(3, 2);
    let words = [0.5, 1.0, 1.5];
    let lanczos = DownsampleMethod::LANCZOS3;
    let err = downsample(&values, &words[..2], &[1.0, 3.0], 2.0, &lanczos).unwrap_err();
    assert_eq!(err, SignalError::WordCountMismatch { rows: 3, times: 2 });
    let err = downsample(&values, &words, &[1.0, 3.0, 3.0], 2.0, &lanczos).unwrap_err();
    assert!(matches!(err, SignalError::TrTimesNotIncreasing { index: 2, .. }));
    let err = downsample(&values, &words, &[1.0, 2.0, 3.0], 2.0, &lanczos).unwrap_err();
    assert!(matches!(err, SignalError::TrSpacingMismatch { .. }));
    let err = downsample(&values, &[0.5, f64::NAN, 1.0], &[1.0, 3.0], 2.0, &lanczos);
    assert!(matches!(err.unwrap_err(), SignalError::NonFiniteTime { index: 1, .. }));
    let zero_window = DownsampleMethod::Lanczos { window: 0, cutoff_mult: 1.0 };
    let err = downsample(&values, &words, &[1.0, 3.0], 2.0, &zero_window).unwrap_err();
    assert!(matches!(err, SignalError::BadKernel { .. }));
    let err = downsample(&values, &words, &[1.0, 3.0], 0.0, &lanczos).unwrap_err();
    assert_eq!(err, SignalError::BadTrSeconds(0.0));
}

#[test]
fn lag_shifts_within_each_story() {
    let mut rng = rng("lag_shifts_within_each_story");
    let story_lengths: Vec<usize> = (0..4).map(|_| rng.random_range(1..40)).collect();
    let rows: usize = story_lengths.iter().sum();
    let features = random_matrix(&mut rng, rows, 6);
    let delays = [0, 1, 2, 4, 7];
    let lagged = lag(&features, &story_lengths, &delays).unwrap();
    assert_eq!((lagged.rows, lagged.cols), (rows, 6 * delays.len()));
    let mut story_start = 0;
    for &length in &story_lengths {
        for position in 0..length {
            let row = story_start + position;
            for (k, &delay) in delays.iter().enumerate() {
                let block = &lagged.row(row)[k * 6..(k + 1) * 6];
                if position >= delay {
                    assert_eq!(block, features.row(row - delay), "row {row} delay {delay}");
                } else {
                    assert!(block.iter().all(|&x| x == 0.0), "row {row} delay {delay}");
                }
            }
        }
        story_start += length;
    }
    let err = lag(&features, &story_lengths[1..], &delays).unwrap_err();
    assert!(matches!(err, SignalError::StoryLengthMismatch { .. }));
    assert_eq!(lag(&features, &story_lengths, &[]).unwrap_err(), SignalError::NoDelays);
}

#[test]
fn zscore_gives_zero_mean_unit_std_and_zeroes_constant_columns() {
    let mut rng = rng("zscore_gives_zero_mean_unit_std_and_zeroes_constant_columns");
    let (rows, cols) = (rng.random_range(50..300), 7);
    let mut m = random_matrix(&mut rng, rows, cols);
    for r in 0..rows {
        for c in 0..cols {
            let scaled = m.get(r, c) * (c as f32 + 0.5) * 10.0 + 100.0 * c as f32;
            m.set(r, c, scaled);
        }
        m.set(r, 2, 0.1);
        m.set(r, 5, -3.0e4);
    }
    let fitted = ZScore::fit(&m);
    assert_eq!(fitted.constant_columns(), vec![2, 5]);
    fitted.apply(&mut m);
    let refit = ZScore::fit(&m);
    for c in 0..cols {
        if c == 2 || c == 5 {
            assert!((0..rows).all(|r| m.get(r, c) == 0.0));
            continue;
        }
        assert!(refit.mean[c].abs() < 1e-6, "column {c} mean {}", refit.mean[c]);
        assert!((refit.std[c] - 1.0).abs() < 1e-5, "column {c} std {}", refit.std[c]);
    }
}

#[test]
fn trim_presets_and_errors() {
    let ranges = trim(&[300, 20, 16], Trim::LEBEL_2023.start, Trim::LEBEL_2023.end).unwrap();
    assert_eq!(ranges, vec![(10, 295), (310, 315), (330, 331)]);
    assert_eq!(trimmed_rows(&ranges[1..]), vec![310, 311, 312, 313, 314, 330]);
    assert_eq!(trim(&[3, 4], Trim::NONE.start, Trim::NONE.end).unwrap(), vec![(0, 3), (3, 7)]);
    let err = trim(&[300, 15, 40], 10, 5).unwrap_err();
    assert_eq!(err, SignalError::StoryTooShort { story: 1, length: 15, start: 10, end: 5 });
    assert!(trim(&[0], 0, 0).is_err());
}

#[test]
fn temporal_baseline_reconstructs_the_exponential_kernel() {
    let mut rng = rng("temporal_baseline_reconstructs_the_exponential_kernel");
    let n = rng.random_range(20..60);
    let length_scale = rng.random_range(1.0..20.0);
    let lengths = [n, 7, n];
    // More features than rows: F F^T is the kernel itself.
    let features = temporal_baseline(&lengths, n + 3, length_scale, 0).unwrap();
    assert_eq!((features.rows, features.cols), (2 * n + 7, n + 3));
    for i in 0..n {
        for j in 0..n {
            let dot: f64 = (0..n + 3).map(|c| features.get(i, c) as f64 * features.get(j, c) as f64).sum();
            let expected = (-(i.abs_diff(j) as f64) / length_scale).exp();
            assert!((dot - expected).abs() < 1e-5, "({i}, {j}): {dot} vs {expected}");
        }
    }
    // The 7-row story fills 7 columns; equal lengths give equal blocks.
    assert!((n..n + 7).all(|r| features.row(r)[7..].iter().all(|&x| x == 0.0)));
    assert_eq!(features.row(0), features.row(n + 7));
    // Fewer features: orthogonal columns with descending norms (the
    // eigenvalues), each positive at its first entry.
    let k = 5;
    let truncated = temporal_baseline(&[n], k, length_scale, 0).unwrap();
    let gram =
        |a: usize, b: usize| -> f64 { (0..n).map(|i| truncated.get(i, a) as f64 * truncated.get(i, b) as f64).sum() };
    for a in 0..k {
        assert!(truncated.get(0, a) > 0.0);
        for b in 0..a {
            assert!(gram(a, b).abs() < 1e-4 * gram(0, 0), "columns {a}, {b} not orthogonal");
        }
        if a > 0 {
            assert!(gram(a, a) <= gram(a - 1, a - 1) * (1.0 + 1e-5));
        }
    }
    assert_eq!(temporal_baseline(&[4], 2, 0.0, 0).unwrap_err(), SignalError::BadLengthScale(0.0));
}
