//! The libtorch twin: cross-validated ridge in libtorch, for `ridge` with a
//! CUDA device (the way himalaya's `torch_cuda` backend works). Same
//! convention, folds, scores and alpha choice as [`voxflow::numeric::ridge::ridge_cv`],
//! which stays the CPU path.
//!
//! Per fold, the training Gram matrix (`X^T X` when `n_train >= p`, else
//! `X X^T`) is decomposed once in f64, `G = Q diag(lambda) Q^T`, dropping
//! eigenvalues below `max(n, p) * f64::EPSILON * lambda_max` as the CPU path
//! does. Validation predictions at every alpha are then
//! `A diag(1 / (lambda + alpha)) B` with `A = X_val V` (or `K_val,train U`)
//! and `B = Q^T (X_train^T) Y_train`, in f32, targets in batches of
//! `target_batch` columns so that 100k voxels fit on the card. The refit
//! decomposes the full Gram matrix the same way. Only X, the decompositions
//! and one batch of Y live on the device at a time.

use tch::{Device, Kind, Tensor};

use voxflow::numeric::ridge::{
    best_alpha, check_alphas, check_batch, check_folds, check_inputs, CvScore, Fold, RidgeConfig,
};
use voxflow::numeric::ridge::{RidgeCvResult, RidgeError};
use voxflow::numeric::Matrix;

fn to_device(m: &Matrix, device: Device) -> Tensor {
    Tensor::from_slice(&m.data).view([m.rows as i64, m.cols as i64]).to_device(device)
}

fn rows_of(x: &Tensor, rows: &[usize]) -> Tensor {
    let index: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    x.index_select(0, &Tensor::from_slice(&index).to_device(x.device()))
}

/// Eigenvalues (descending order does not matter) and vectors of a symmetric
/// f64 matrix, with the directions f32 data cannot resolve dropped.
fn spectrum(gram: &Tensor, n: usize, p: usize) -> (Tensor, Tensor) {
    let (lambdas, vectors) = gram.linalg_eigh("L");
    let max = lambdas.max().double_value(&[]);
    let floor = (n.max(p) as f64) * f64::EPSILON * max;
    let keep = lambdas.gt(floor).nonzero().view([-1]);
    (lambdas.index_select(0, &keep), vectors.index_select(1, &keep))
}

/// `ridge_cv` on `device` (any libtorch device; the CPU works too, which the
/// tests use where no GPU is present).
pub fn ridge_cv_torch(
    x: &Matrix,
    y: &Matrix,
    folds: &[Fold],
    config: &RidgeConfig,
    device: Device,
) -> Result<RidgeCvResult, RidgeError> {
    check_inputs(&[("X", x)], y)?;
    check_folds(folds, x.rows)?;
    check_alphas(&config.alphas)?;
    check_batch(config.target_batch)?;
    crate::device::init_torch();
    let _guard = tch::no_grad_guard();
    let (n, p, v) = (x.rows, x.cols, y.cols);
    let n_alphas = config.alphas.len();
    let alphas = Tensor::from_slice(&config.alphas).to_device(device); // f64
    let x64 = to_device(x, device).to_kind(Kind::Double);
    let y_host = Tensor::from_slice(&y.data).view([n as i64, v as i64]);
    let fold_weight = 1.0 / folds.len() as f64;
    // Scores, target-major like the CPU path: [v, n_alphas] in f64 on the host.
    let mut table = vec![0.0f64; v * n_alphas];
    for fold in folds {
        let train = rows_of(&x64, &fold.train);
        let val = rows_of(&x64, &fold.validation);
        let n_train = fold.train.len();
        // A (n_val x r) and the operator O (r x n_train) with B = O Y_train.
        let (lambdas, a, operator) = if n_train >= p {
            let (l, q) = spectrum(&train.transpose(0, 1).matmul(&train), n_train, p);
            (l, val.matmul(&q), q.transpose(0, 1).matmul(&train.transpose(0, 1)))
        } else {
            let (l, u) = spectrum(&train.matmul(&train.transpose(0, 1)), n_train, p);
            (l, val.matmul(&train.transpose(0, 1)).matmul(&u), u.transpose(0, 1))
        };
        let a = a.to_kind(Kind::Float);
        let operator = operator.to_kind(Kind::Float);
        // [n_alphas, r]: 1 / (lambda + alpha).
        let inverse = (lambdas.unsqueeze(0) + alphas.unsqueeze(1)).reciprocal().to_kind(Kind::Float);
        let train_index = Tensor::from_slice(&fold.train.iter().map(|&r| r as i64).collect::<Vec<_>>());
        let val_index = Tensor::from_slice(&fold.validation.iter().map(|&r| r as i64).collect::<Vec<_>>());
        for start in (0..v).step_by(config.target_batch) {
            let end = (start + config.target_batch).min(v);
            let batch = y_host.narrow(1, start as i64, (end - start) as i64);
            let y_train = batch.index_select(0, &train_index).to_device(device);
            let y_val = batch.index_select(0, &val_index).to_device(device).to_kind(Kind::Double);
            let b = operator.matmul(&y_train); // r x t
                                               // [n_alphas, n_val, t]
            let predictions = (a.unsqueeze(0) * inverse.unsqueeze(1)).matmul(&b.unsqueeze(0)).to_kind(Kind::Double);
            let scores = match config.score {
                CvScore::L2 => -(predictions - y_val.unsqueeze(0)).square().mean_dim(&[1i64][..], false, Kind::Double),
                CvScore::Pearson => {
                    let yc = &y_val - y_val.mean_dim(&[0i64][..], true, Kind::Double);
                    let pc = &predictions - predictions.mean_dim(&[1i64][..], true, Kind::Double);
                    let cross = (&pc * yc.unsqueeze(0)).sum_dim_intlist(&[1i64][..], false, Kind::Double);
                    let norms = pc.square().sum_dim_intlist(&[1i64][..], false, Kind::Double).sqrt()
                        * yc.square().sum_dim_intlist(&[0i64][..], false, Kind::Double).sqrt().unsqueeze(0);
                    // 0 where either side is constant, as on the CPU.
                    let positive = norms.gt(0.0);
                    cross.divide(&norms.where_scalarother(&positive, 1.0)).where_scalarother(&positive, 0.0)
                }
            }; // [n_alphas, t]
            let scores = Vec::<f64>::try_from(scores.transpose(0, 1).contiguous().to_device(Device::Cpu).view([-1]))
                .map_err(|e| RidgeError::Decomposition(e.to_string()))?;
            for (k, s) in scores.iter().enumerate() {
                table[start * n_alphas + k] += fold_weight * s;
            }
        }
    }
    let choice: Vec<usize> = if config.per_target_alpha {
        (0..v).map(|t| best_alpha(&table[t * n_alphas..(t + 1) * n_alphas], &config.alphas).0).collect()
    } else {
        let mut mean = vec![0.0; n_alphas];
        for t in 0..v {
            for (a, m) in mean.iter_mut().enumerate() {
                *m += table[t * n_alphas + a] / v as f64;
            }
        }
        vec![best_alpha(&mean, &config.alphas).0; v]
    };
    let best_alphas: Vec<f64> = choice.iter().map(|&a| config.alphas[a]).collect();
    let mut cv_scores = Matrix::zeros(n_alphas, v);
    for t in 0..v {
        for a in 0..n_alphas {
            cv_scores.set(a, t, table[t * n_alphas + a] as f32);
        }
    }

    // Refit: w_t = R diag(1 / (lambda + alpha_t)) L^T y_t.
    let (lambdas, left_t, right) = if n >= p {
        let (l, q) = spectrum(&x64.transpose(0, 1).matmul(&x64), n, p);
        (l, q.transpose(0, 1).matmul(&x64.transpose(0, 1)), q)
    } else {
        let (l, u) = spectrum(&x64.matmul(&x64.transpose(0, 1)), n, p);
        (l, u.transpose(0, 1), x64.transpose(0, 1).matmul(&u))
    };
    let left_t = left_t.to_kind(Kind::Float);
    let right = right.to_kind(Kind::Float);
    let chosen = Tensor::from_slice(&best_alphas).to_device(device);
    let mut weights = Matrix::zeros(p, v);
    for start in (0..v).step_by(config.target_batch) {
        let end = (start + config.target_batch).min(v);
        let width = (end - start) as i64;
        let batch = y_host.narrow(1, start as i64, width).to_device(device);
        let scale = (lambdas.unsqueeze(1) + chosen.narrow(0, start as i64, width).unsqueeze(0))
            .reciprocal()
            .to_kind(Kind::Float);
        let w = right.matmul(&(left_t.matmul(&batch) * scale)); // p x t
        let w = Vec::<f32>::try_from(w.to_device(Device::Cpu).contiguous().view([-1]))
            .map_err(|e| RidgeError::Decomposition(e.to_string()))?;
        for i in 0..p {
            weights.data[i * v + start..i * v + end].copy_from_slice(&w[i * (end - start)..(i + 1) * (end - start)]);
        }
    }
    Ok(RidgeCvResult { best_alphas, cv_scores, weights })
}
