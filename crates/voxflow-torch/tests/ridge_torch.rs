//! The libtorch ridge (`ridge` with a CUDA device) against the faer ridge on
//! the same random data and folds: the same score table (within float32
//! rounding), the same alphas except near ties, held-out prediction r within
//! 1e-4. Runs on libtorch's CPU device everywhere and on CUDA where there is one.

#[path = "../../../tests/common/mod.rs"]
mod common;

use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use voxflow::numeric::ridge::{folds_chunked, predict, ridge_cv, CvScore, RidgeConfig};
use voxflow::numeric::Matrix;
use voxflow_torch::ridge::ridge_cv_torch;

fn random(rng: &mut rand_chacha::ChaCha8Rng, rows: usize, cols: usize) -> Matrix {
    Matrix::from_vec(rows, cols, (0..rows * cols).map(|_| rng.sample::<f32, _>(StandardNormal)).collect())
}

fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().map(|&v| v as f64).sum::<f64>() / n, b.iter().map(|&v| v as f64).sum::<f64>() / n);
    let (mut c, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        c += (x as f64 - ma) * (y as f64 - mb);
        va += (x as f64 - ma).powi(2);
        vb += (y as f64 - mb).powi(2);
    }
    c / (va * vb).sqrt()
}

fn column(m: &Matrix, j: usize) -> Vec<f32> {
    (0..m.rows).map(|i| m.get(i, j)).collect()
}

fn compare(n: usize, p: usize, score: CvScore, device: tch::Device, seed: u64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let v = 70;
    let x = random(&mut rng, n + 40, p);
    let w = random(&mut rng, p, v);
    let mut y = predict(&x, &w);
    for t in 0..v {
        let noise = 10f32.powf(rng.random_range(-0.5..1.5)) * (p as f32).sqrt();
        for i in 0..y.rows {
            let e: f32 = rng.sample(StandardNormal);
            y.set(i, t, y.get(i, t) + noise * e);
        }
    }
    let train: Vec<usize> = (0..n).collect();
    let test: Vec<usize> = (n..n + 40).collect();
    let (x_train, y_train, x_test, y_test) =
        (x.select_rows(&train), y.select_rows(&train), x.select_rows(&test), y.select_rows(&test));
    let folds = folds_chunked(n, 4, 10, seed);
    let config = RidgeConfig {
        alphas: (0..12).map(|i| 10f64.powf(i as f64 * 0.5 - 1.0)).collect(),
        per_target_alpha: true,
        score,
        target_batch: 16,
    };
    let cpu = ridge_cv(&x_train, &y_train, &folds, &config).unwrap();
    let torch = ridge_cv_torch(&x_train, &y_train, &folds, &config, device).unwrap();
    let mut clear = 0;
    for t in 0..v {
        let scores: Vec<f64> = (0..config.alphas.len()).map(|a| cpu.cv_scores.get(a, t) as f64).collect();
        for (a, &s) in scores.iter().enumerate() {
            let other = torch.cv_scores.get(a, t) as f64;
            assert!((s - other).abs() <= 1e-5 * s.abs().max(0.1), "target {t} alpha {a}: {s} vs {other}");
        }
        let best = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let near = scores.iter().filter(|&&s| best - s < 1e-4 * best.abs().max(0.1)).count();
        if near == 1 {
            clear += 1;
            assert_eq!(cpu.best_alphas[t], torch.best_alphas[t], "target {t}");
            let (a, b) = (predict(&x_test, &cpu.weights), predict(&x_test, &torch.weights));
            let truth = column(&y_test, t);
            let (ra, rb) = (pearson(&column(&a, t), &truth), pearson(&column(&b, t), &truth));
            assert!((ra - rb).abs() < 1e-4, "target {t}: r {ra} (faer) vs {rb} (libtorch)");
        }
    }
    assert!(clear >= v / 2, "only {clear} of {v} targets had a clear best alpha");
}

#[test]
fn libtorch_ridge_equals_the_faer_ridge() {
    let seed = common::fresh_seed();
    let mut devices = vec![tch::Device::Cpu];
    if voxflow_torch::device::cuda_device_count() > 0 {
        devices.push(tch::Device::Cuda(0));
    }
    for device in devices {
        // SVD path (n >= p) and kernel path (p > n), both scores.
        compare(300, 40, CvScore::L2, device, seed);
        compare(120, 200, CvScore::Pearson, device, seed + 1);
        compare(200, 60, CvScore::Pearson, device, seed + 2);
    }
}
