//! `ridge` on CUDA (libtorch) against the CPU path (faer) on the same data:
//! wall time of each, and how far apart their held-out predictions' r are.
//! scripts/gpu-check runs it.
//!
//! ```text
//! cargo run --release --example ridge_gpu_bench -- --n 3000 --p 3072 --v 20000 --device cuda
//! ```
//! Options: `--alphas 10 --folds 5 --target-batch 4096 --skip-cpu`. The last
//! line is JSON for scripts.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use voxflow::numeric::ridge::{folds_contiguous, predict, ridge_cv, CvScore, RidgeConfig};
use voxflow::numeric::Matrix;
use voxflow_torch::ridge::ridge_cv_torch;

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // Before any libtorch call: loads libtorch's CUDA backend.
    voxflow_torch::device::init_torch();
    let args: Vec<String> = std::env::args().collect();
    let (n, p, v) = (arg(&args, "--n", 3000), arg(&args, "--p", 3072), arg(&args, "--v", 20000));
    let n_alphas = arg(&args, "--alphas", 10);
    let n_folds = arg(&args, "--folds", 5);
    let target_batch = arg(&args, "--target-batch", 4096);
    let skip_cpu = args.iter().any(|a| a == "--skip-cpu");
    let device = match args.iter().position(|a| a == "--device").and_then(|i| args.get(i + 1)).map(String::as_str) {
        Some("cpu") => tch::Device::Cpu,
        _ => tch::Device::Cuda(0),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut normal = |count: usize| -> Vec<f32> { (0..count).map(|_| rng.sample::<f32, _>(StandardNormal)).collect() };
    let n_test = 300;
    let x = Matrix::from_vec(n + n_test, p, normal((n + n_test) * p));
    let k = p.min(32);
    let w = Matrix::from_vec(p, v, {
        let mut w = normal(k * v);
        w.resize(p * v, 0.0);
        w
    });
    let mut y = predict(&x, &w);
    let noise = normal((n + n_test) * v);
    y.data.iter_mut().zip(&noise).for_each(|(y, e)| *y = 0.2 * *y + e);
    let train: Vec<usize> = (0..n).collect();
    let test: Vec<usize> = (n..n + n_test).collect();
    let (x_train, y_train, x_test, y_test) =
        (x.select_rows(&train), y.select_rows(&train), x.select_rows(&test), y.select_rows(&test));
    let config = RidgeConfig {
        alphas: (0..n_alphas).map(|i| 10f64.powf(i as f64 * 0.5)).collect(),
        per_target_alpha: true,
        score: CvScore::L2,
        target_batch,
    };
    let folds = folds_contiguous(n, n_folds);
    if let tch::Device::Cuda(i) = device {
        // Warm-up: CUDA context and kernels.
        let small = Matrix::from_vec(200, 20, x_train.data[..4000].to_vec());
        let _ = ridge_cv_torch(
            &small,
            &y_train.select_rows(&(0..200).collect::<Vec<_>>()),
            &folds_contiguous(200, 2),
            &config,
            device,
        );
        tch::Cuda::synchronize(i as i64);
    }
    let started = Instant::now();
    let gpu = ridge_cv_torch(&x_train, &y_train, &folds, &config, device).unwrap();
    let gpu_s = started.elapsed().as_secs_f64();
    let r = |weights: &Matrix| -> Vec<f64> {
        let pred = predict(&x_test, weights);
        (0..v)
            .map(|t| {
                let a: Vec<f64> = (0..n_test).map(|i| pred.get(i, t) as f64).collect();
                let b: Vec<f64> = (0..n_test).map(|i| y_test.get(i, t) as f64).collect();
                let (ma, mb) = (a.iter().sum::<f64>() / n_test as f64, b.iter().sum::<f64>() / n_test as f64);
                let c: f64 = a.iter().zip(&b).map(|(x, y)| (x - ma) * (y - mb)).sum();
                let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
                let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
                c / (va * vb).sqrt()
            })
            .collect()
    };
    let (cpu_s, max_r_diff, same_alpha) = if skip_cpu {
        (f64::NAN, f64::NAN, f64::NAN)
    } else {
        let started = Instant::now();
        let cpu = ridge_cv(&x_train, &y_train, &folds, &config).unwrap();
        let cpu_s = started.elapsed().as_secs_f64();
        let (ra, rb) = (r(&cpu.weights), r(&gpu.weights));
        let diff = ra.iter().zip(&rb).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let same = cpu.best_alphas.iter().zip(&gpu.best_alphas).filter(|(a, b)| a == b).count() as f64 / v as f64;
        (cpu_s, diff, same)
    };
    println!("ridge CV n={n} p={p} v={v}, {n_alphas} alphas, {n_folds} folds, target batch {target_batch}");
    println!("libtorch on {device:?}: {gpu_s:.2} s; faer on the CPU: {cpu_s:.2} s; speed-up {:.1}x", cpu_s / gpu_s);
    println!(
        "max |r_gpu - r_cpu| on {n_test} held-out rows: {max_r_diff:.2e}; same alpha for {:.1}% of targets",
        same_alpha * 100.0
    );
    println!(
        "{}",
        serde_json::json!({"n": n, "p": p, "v": v, "device": format!("{device:?}"), "torch_s": gpu_s, "cpu_s": cpu_s,
            "max_r_diff": max_r_diff, "same_alpha_fraction": same_alpha})
    );
}
