//! Times voxflow's `ridge_cv` on generated data, then the f32 products that
//! its algorithm cannot avoid and its factorisations (Gram matrix, fold
//! operators, the refit's operators; f64, or f32 where ridge_cv takes f32),
//! each run alone on the same shapes (the factorisations through the ridge
//! module's own functions, `ridge::bench_api`). benches/ridge_vs_himalaya.sh runs it
//! beside himalaya.
//!
//! ```text
//! cargo run --release --example ridge_bench -- --n 3000 --p 3072 --v 20000
//! ```
//! Options: `--alphas 10 --folds 5 --target-batch 1024 --seed 0`,
//! `--skip-gemm` (only the fit, without timing the products and the
//! factorisations alone), `--stream` (weights handed over batch by
//! batch, as the ridge stage writes them, instead of one p x v matrix). The last line is JSON for scripts.

use std::time::Instant;

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use voxflow::numeric::ridge::{
    bench_api, factorises_in_f32, folds_contiguous, largest_eigenvalue_estimate, ridge_cv, ridge_cv_streaming, CvScore,
    RidgeConfig,
};
use voxflow::numeric::Matrix;

struct Options {
    n: usize,
    p: usize,
    v: usize,
    n_alphas: usize,
    n_folds: usize,
    target_batch: usize,
    seed: u64,
    skip_gemm: bool,
    /// Refit weights handed over batch by batch (`ridge_cv_streaming`, what
    /// the ridge stage does) instead of returned as one p x v matrix.
    stream: bool,
}

fn parse_options() -> Options {
    let mut options = Options {
        n: 3000,
        p: 3072,
        v: 20000,
        n_alphas: 10,
        n_folds: 5,
        target_batch: voxflow::numeric::ridge::DEFAULT_TARGET_BATCH,
        seed: 0,
        skip_gemm: false,
        stream: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--skip-gemm" {
            options.skip_gemm = true;
            continue;
        }
        if flag == "--stream" {
            options.stream = true;
            continue;
        }
        let value = args.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let number = || value.parse::<usize>().unwrap_or_else(|_| panic!("{flag} takes a number"));
        match flag.as_str() {
            "--n" => options.n = number(),
            "--p" => options.p = number(),
            "--v" => options.v = number(),
            "--alphas" => options.n_alphas = number(),
            "--folds" => options.n_folds = number(),
            "--target-batch" => options.target_batch = number(),
            "--seed" => options.seed = number() as u64,
            other => panic!("unknown option {other}"),
        }
    }
    options
}

/// X ~ N(0, 1); Y = a 32-feature signal plus noise (cheap to generate at any v).
fn generate(options: &Options) -> (Matrix, Matrix) {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut normal = |count: usize| -> Vec<f32> { (0..count).map(|_| rng.sample::<f32, _>(StandardNormal)).collect() };
    let x = Matrix::from_vec(options.n, options.p, normal(options.n * options.p));
    let k = options.p.min(32);
    let weights = normal(k * options.v);
    let mut y = Matrix::from_vec(options.n, options.v, normal(options.n * options.v));
    for i in 0..options.n {
        let features = &x.row(i)[..k];
        let row = y.row_mut(i);
        for (f, &value) in features.iter().enumerate() {
            let w = &weights[f * options.v..(f + 1) * options.v];
            row.iter_mut().zip(w).for_each(|(y, &w)| *y += 0.2 * value * w);
        }
    }
    (x, y)
}

/// The f32 products of ridge_cv's algorithm alone, on random operands of
/// the same shapes, laid out as ridge_cv lays them out: targets in batches
/// of `target_batch`, the batches in parallel on rayon's pool with one
/// sequential product each and a result buffer per thread (measured here
/// about 9% faster than one parallel product over all targets, median of 12
/// alternating runs; the faster layout is the fair reference). Per fold,
/// with `r = min(n_train, p)`: on the SVD path (`n_train >= p`) the
/// projection `X_train^T Y_train` (r x n_train x v), and the validation
/// predictions of all alphas, stacked: (n_alphas * n_val) x r x v. Then the
/// refit's one product, the weights `A Y` (p x n x v; the refit through the
/// spectrum, taken when many alphas are chosen, adds `L^T Y` to that).
/// Returns (seconds, CPU seconds, flops).
fn time_products(options: &Options) -> (f64, f64, f64) {
    let (n, p, v) = (options.n, options.p, options.v);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed + 1);
    let mut random = |rows: usize, cols: usize| Mat::<f32>::from_fn(rows, cols, |_, _| rng.random());
    let y = random(n, v);
    let batch = options.target_batch;
    let n_batches = v.div_ceil(batch);
    // As ridge_cv: sequential products when the batches keep every thread busy.
    let par = voxflow::numeric::ridge::inner_parallelism(v, batch);
    let columns = |b: usize| (b * batch, batch.min(v - b * batch));
    let mut flops = 0.0;
    let (mut seconds, mut cpu) = (0.0, 0.0);
    for fold in 0..options.n_folds {
        let n_val = n / options.n_folds + usize::from(fold < n % options.n_folds);
        let n_train = n - n_val;
        let rank = n_train.min(p);
        let stacked = random(options.n_alphas * n_val, rank);
        let left = (n_train >= p).then(|| random(n_train, rank));
        let y_train = y.subrows(0, n_train);
        let (start, cpu_start) = (Instant::now(), cpu_seconds());
        (0..n_batches).into_par_iter().for_each_init(
            || (Mat::<f32>::zeros(options.n_alphas * n_val, batch), Mat::<f32>::zeros(rank, batch)),
            |(predictions, projected), b| {
                let (first, width) = columns(b);
                let targets = y_train.subcols(first, width);
                let rhs = match &left {
                    Some(left) => {
                        matmul(projected.subcols_mut(0, width), Accum::Replace, left.transpose(), targets, 1.0, par);
                        projected.subcols(0, width)
                    }
                    None => targets,
                };
                matmul(predictions.subcols_mut(0, width), Accum::Replace, stacked.as_ref(), rhs, 1.0, par);
                std::hint::black_box(&predictions);
            },
        );
        seconds += start.elapsed().as_secs_f64();
        cpu += cpu_seconds() - cpu_start;
        if left.is_some() {
            flops += 2.0 * (rank * n_train * v) as f64;
        }
        flops += 2.0 * (options.n_alphas * n_val * rank * v) as f64;
    }
    let operator = random(p, n);
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    (0..n_batches).into_par_iter().for_each_init(
        || Mat::<f32>::zeros(p, batch),
        |weights, b| {
            let (first, width) = columns(b);
            matmul(weights.subcols_mut(0, width), Accum::Replace, operator.as_ref(), y.subcols(first, width), 1.0, par);
            std::hint::black_box(&weights);
        },
    );
    seconds += start.elapsed().as_secs_f64();
    cpu += cpu_seconds() - cpu_start;
    flops += 2.0 * (p * n * v) as f64;
    (seconds, cpu, flops)
}

/// The factorisation work of ridge_cv's algorithm alone, on random data of
/// the same shapes, alphas in parallel as ridge_cv runs them, in the
/// precision ridge_cv picks for each (`factorises_in_f32`, with ridge_cv's
/// estimate of the largest eigenvalue), each step through the ridge
/// module's own functions (`bench_api`): the Gram matrix of X; the fold
/// operators: on the kernel path (`n < p`) with 4 folds or more the
/// shared-inverse route (`shared_inverse_alpha`), otherwise the per-fold
/// route (`per_fold_alpha`, always f64); and the refit's direct operators
/// for the alphas ridge_cv chose (`direct_operator`). Returns (Gram
/// seconds, fold seconds, refit seconds, alphas in f32 among the fold's and
/// the refit's).
fn time_decompositions(options: &Options, refit_alphas: &[f64]) -> (f64, f64, f64, usize, usize) {
    let (n, p) = (options.n, options.p);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed + 2);
    let x = Matrix::from_vec(n, p, (0..n * p).map(|_| rng.sample::<f32, _>(StandardNormal)).collect());
    let x64 = Mat::<f64>::from_fn(n, p, |i, j| x.get(i, j) as f64);
    let start = Instant::now();
    let gram = if n < p { bench_api::gram_of_rows(x64.as_ref()) } else { bench_api::gram_of_rows(x64.transpose()) };
    let gram_seconds = start.elapsed().as_secs_f64();
    let largest = largest_eigenvalue_estimate(gram.as_ref());
    let mean = (0..gram.nrows()).map(|k| gram[(k, k)]).sum::<f64>() / gram.nrows() as f64;
    let single = |alpha: f64| factorises_in_f32(largest, mean, alpha);
    let alphas: Vec<f64> = (0..options.n_alphas).map(|i| 10f64.powf(-2.0 + 9.0 * i as f64 / 9.0)).collect();
    let folds = folds_contiguous(n, options.n_folds);
    let start = Instant::now();
    let schur = n < p && options.n_folds >= 4;
    if schur {
        alphas.par_iter().for_each(|&alpha| {
            let operators = bench_api::shared_inverse_alpha(gram.as_ref(), &folds, alpha, single(alpha), Par::Seq);
            std::hint::black_box(operators.expect("a kernel plus alpha is positive definite"));
        });
    } else {
        for fold in &folds {
            let n_val = fold.validation.len();
            let d = (n - n_val).min(p);
            let system = gram.submatrix(0, 0, d, d).to_owned();
            let rhs = Mat::<f64>::from_fn(d, n_val, |i, j| gram[(i, (j + d) % gram.ncols())]);
            alphas.par_iter().for_each(|&alpha| {
                let solution = bench_api::per_fold_alpha(system.as_ref(), rhs.as_ref(), alpha, Par::Seq);
                std::hint::black_box(solution.expect("a Gram matrix plus alpha is positive definite"));
            });
        }
    }
    let fold_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    refit_alphas.par_iter().for_each(|&alpha| {
        let operator = bench_api::direct_operator(&x, gram.as_ref(), alpha, single(alpha), Par::Seq);
        std::hint::black_box(operator.expect("a Gram matrix plus alpha is positive definite"));
    });
    let fold_single = if schur { alphas.iter().filter(|&&a| single(a)).count() } else { 0 };
    let refit_single = refit_alphas.iter().filter(|&&a| single(a)).count();
    (gram_seconds, fold_seconds, start.elapsed().as_secs_f64(), fold_single, refit_single)
}

/// CPU seconds used by this process, all threads (Linux `/proc/self/stat`,
/// 100 ticks per second); NaN elsewhere.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    match (fields.get(11).and_then(|f| f.parse::<f64>().ok()), fields.get(12).and_then(|f| f.parse::<f64>().ok())) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

fn main() {
    let options = parse_options();
    // VOXFLOW_LOG=voxflow=debug prints ridge_cv's phase timings.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("VOXFLOW_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let (x, y) = generate(&options);
    let folds = folds_contiguous(options.n, options.n_folds);
    let config = RidgeConfig {
        alphas: (0..options.n_alphas).map(|i| 10f64.powf(-2.0 + 9.0 * i as f64 / 9.0)).collect(),
        per_target_alpha: true,
        score: CvScore::L2,
        target_batch: options.target_batch,
    };
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    let chosen = if options.stream {
        let mut checksum = 0.0f64;
        let (alphas, _) = ridge_cv_streaming(&x, &y, &folds, &config, &mut |_, block| {
            checksum += block.data.iter().map(|&w| w as f64).sum::<f64>();
        })
        .expect("ridge_cv_streaming on generated data");
        std::hint::black_box(checksum);
        alphas
    } else {
        let result = ridge_cv(&x, &y, &folds, &config).expect("ridge_cv on generated data");
        std::hint::black_box(&result.weights);
        result.best_alphas
    };
    let fit_seconds = start.elapsed().as_secs_f64();
    let fit_cpu = cpu_seconds() - cpu_start;
    let input_bytes = 4 * (x.data.len() + y.data.len());
    println!(
        "voxflow ridge_cv n={} p={} v={} alphas={} folds={}: {fit_seconds:.2} s, {fit_cpu:.1} s CPU \
         (X+Y {:.0} MB)",
        options.n,
        options.p,
        options.v,
        options.n_alphas,
        options.n_folds,
        input_bytes as f64 / 1e6
    );
    drop((x, y));
    let (gemm_seconds, gemm_cpu, gemm_flops) =
        if options.skip_gemm { (f64::NAN, f64::NAN, f64::NAN) } else { time_products(&options) };
    let mut distinct = chosen.clone();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    let (gram_seconds, folds_seconds, refit_seconds, folds_single, refit_single) =
        if options.skip_gemm { (f64::NAN, f64::NAN, f64::NAN, 0, 0) } else { time_decompositions(&options, &distinct) };
    if !options.skip_gemm {
        println!(
            "faer products alone: {gemm_seconds:.2} s ({:.0} GFLOP, {:.0} GFLOP/s), \
             {gemm_cpu:.1} s CPU",
            gemm_flops / 1e9,
            gemm_flops / gemm_seconds / 1e9
        );
        println!(
            "factorisations alone: Gram {gram_seconds:.2} s, fold operators {folds_seconds:.2} s \
             ({folds_single} of {} alphas in f32), refit operators for the {} alphas chosen \
             {refit_seconds:.2} s ({refit_single} in f32)",
            options.n_alphas,
            distinct.len()
        );
    }
    let or_null = |value: f64| if value.is_nan() { "null".to_string() } else { format!("{value:.3}") };
    println!(
        "{{\"fit_seconds\": {fit_seconds:.3}, \"fit_cpu_seconds\": {}, \"gemm_seconds\": {}, \
         \"gemm_cpu_seconds\": {}, \"gemm_gflop\": {}, \"gram_seconds\": {}, \"folds_factor_seconds\": {}, \
         \"refit_factor_seconds\": {}, \"alphas_chosen\": {}, \"input_bytes\": {input_bytes}}}",
        or_null(fit_cpu),
        or_null(gemm_seconds),
        or_null(gemm_cpu),
        or_null(gemm_flops / 1e9),
        or_null(gram_seconds),
        or_null(folds_seconds),
        or_null(refit_seconds),
        distinct.len()
    );
}
