//! AdamW on plain tensors, the learning-rate schedule, and clipping by
//! global norm: the arithmetic of `torch.optim.AdamW` (its single-tensor
//! path, the CPU default) and `torch.nn.utils.clip_grad_norm_`, so that a
//! run matches PyTorch and the optimizer state is two tensors per parameter.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use super::TrainError;

/// Linear warmup, then cosine decay to `min_lr`.
///
/// Step `s` (0-based) of `steps`: `lr (s + 1) / warmup_steps` while
/// `s < warmup_steps`; then `min_lr + (lr - min_lr) (1 + cos(pi p)) / 2`
/// with `p = (s - warmup_steps) / (steps - warmup_steps)`, so the first step
/// after warmup runs at `lr` and the rate falls towards `min_lr` at `steps`;
/// steps past `steps` run at `min_lr`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub learning_rate: f64,
    pub min_lr: f64,
    pub warmup_steps: usize,
    pub steps: usize,
}

impl Schedule {
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.learning_rate * (step + 1) as f64 / self.warmup_steps as f64;
        }
        if step >= self.steps {
            return self.min_lr;
        }
        let progress = (step - self.warmup_steps) as f64 / (self.steps - self.warmup_steps) as f64;
        self.min_lr + 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()) * (self.learning_rate - self.min_lr)
    }
}

/// AdamW's hyperparameters (the learning rate comes per step from the schedule).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// AdamW (Loshchilov & Hutter): decoupled weight decay `p *= 1 - lr wd` on
/// the parameters marked to decay, then Adam with bias correction.
pub struct AdamW {
    pub config: AdamWConfig,
    /// Updates taken so far (the bias-correction exponent).
    pub step: u64,
    params: Vec<Slot>,
}

struct Slot {
    name: String,
    param: Tensor,
    decay: bool,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

impl AdamW {
    /// An optimizer over `params` (name, tensor, whether it decays), with zero moments.
    pub fn new(config: AdamWConfig, params: Vec<(String, Tensor, bool)>) -> AdamW {
        let params = params
            .into_iter()
            .map(|(name, param, decay)| {
                let exp_avg = param.detach().zeros_like();
                let exp_avg_sq = param.detach().zeros_like();
                Slot { name, param, decay, exp_avg, exp_avg_sq }
            })
            .collect();
        AdamW { config, step: 0, params }
    }

    /// Sets every gradient to zero (where defined).
    pub fn zero_grad(&mut self) {
        for slot in &mut self.params {
            slot.param.zero_grad();
        }
    }

    /// The global L2 norm of the gradients; when it exceeds `max_norm` (and
    /// `max_norm > 0`) scales them by `max_norm / (norm + 1e-6)`, as
    /// `clip_grad_norm_` does. Returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let _guard = tch::no_grad_guard();
        let grads: Vec<Tensor> = self.params.iter().map(|s| s.param.grad()).filter(|g| g.defined()).collect();
        if grads.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
        let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
        if max_norm > 0.0 {
            let coefficient = max_norm / (total + 1e-6);
            if coefficient < 1.0 {
                for mut g in grads {
                    let _ = g.g_mul_scalar_(coefficient);
                }
            }
        }
        total
    }

    /// One update at learning rate `lr` from the current gradients.
    pub fn step(&mut self, lr: f64) {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let AdamWConfig { beta1, beta2, eps, weight_decay } = self.config;
        let t = self.step as i32;
        let step_size = lr / (1.0 - beta1.powi(t));
        let bias_correction2_sqrt = (1.0 - beta2.powi(t)).sqrt();
        for slot in &mut self.params {
            let grad = slot.param.grad();
            if !grad.defined() {
                continue;
            }
            if slot.decay && weight_decay != 0.0 {
                let _ = slot.param.g_mul_scalar_(1.0 - lr * weight_decay);
            }
            let _ = slot.exp_avg.lerp_(&grad, 1.0 - beta1);
            let _ = slot.exp_avg_sq.g_mul_scalar_(beta2);
            let _ = slot.exp_avg_sq.addcmul_(&(&grad * (1.0 - beta2)), &grad);
            let denom = slot.exp_avg_sq.sqrt() / bias_correction2_sqrt + eps;
            let _ = slot.param.addcdiv_(&(&slot.exp_avg * -step_size), &denom);
        }
    }

    /// The moments as named CPU tensors: `{name}.exp_avg`, `{name}.exp_avg_sq`.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for slot in &self.params {
            out.push((format!("{}.exp_avg", slot.name), slot.exp_avg.to_device(Device::Cpu).contiguous()));
            out.push((format!("{}.exp_avg_sq", slot.name), slot.exp_avg_sq.to_device(Device::Cpu).contiguous()));
        }
        out
    }

    /// Writes the moments to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        Tensor::write_safetensors(&self.state_tensors(), path).map_err(|e| TrainError::file(path, e))
    }

    /// Reads the moments written by [`AdamW::save`]; every parameter's must be there.
    pub fn load(&mut self, path: &Path, step: u64) -> Result<(), TrainError> {
        let mut tensors: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(path).map_err(|e| TrainError::file(path, e))?.into_iter().collect();
        let _guard = tch::no_grad_guard();
        for slot in &mut self.params {
            for (suffix, target) in [("exp_avg", &mut slot.exp_avg), ("exp_avg_sq", &mut slot.exp_avg_sq)] {
                let name = format!("{}.{suffix}", slot.name);
                let tensor = tensors.remove(&name).ok_or_else(|| {
                    TrainError::file(path, format!("no tensor `{name}`: the state does not belong to this model"))
                })?;
                if tensor.size() != target.size() {
                    return Err(TrainError::file(
                        path,
                        format!("`{name}` has shape {:?}, the model needs {:?}", tensor.size(), target.size()),
                    ));
                }
                target.copy_(&tensor);
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_follows_the_cosine() {
        let s = Schedule { learning_rate: 1.0, min_lr: 0.1, warmup_steps: 4, steps: 14 };
        let lrs: Vec<f64> = (0..16).map(|i| s.lr(i)).collect();
        assert_eq!(&lrs[..4], &[0.25, 0.5, 0.75, 1.0]);
        assert_eq!(lrs[4], 1.0);
        assert!((lrs[9] - 0.55).abs() < 1e-12, "half way: {}", lrs[9]);
        assert!(lrs.windows(2).skip(4).all(|w| w[1] <= w[0]));
        assert!(lrs[13] > 0.1 && lrs[13] < 0.13);
        assert_eq!(lrs[14], 0.1);
        let no_warmup = Schedule { warmup_steps: 0, ..s };
        assert_eq!(no_warmup.lr(0), 1.0);
    }

    #[test]
    fn adamw_matches_the_formula() {
        // One parameter, two steps, by hand in f64.
        let p = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let config = AdamWConfig { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1 };
        let mut opt = AdamW::new(config, vec![("w".into(), p.shallow_clone(), true)]);
        let (mut m, mut v, mut x) = ([0.0f64; 2], [0.0f64; 2], [1.0f64, -2.0]);
        for (t, lr) in [(1, 0.1), (2, 0.05)] {
            opt.zero_grad();
            (&p * &p).sum(tch::Kind::Float).backward(); // grad 2x
            let g = [2.0 * x[0], 2.0 * x[1]];
            opt.step(lr);
            for i in 0..2 {
                x[i] *= 1.0 - lr * 0.1;
                m[i] = 0.9 * m[i] + 0.1 * g[i];
                v[i] = 0.99 * v[i] + 0.01 * g[i] * g[i];
                let denom = (v[i] / (1.0 - 0.99f64.powi(t))).sqrt() + 1e-8;
                x[i] -= lr / (1.0 - 0.9f64.powi(t)) * m[i] / denom;
            }
        }
        let got: Vec<f32> = Vec::try_from(&p).unwrap();
        assert!((got[0] as f64 - x[0]).abs() < 1e-6 && (got[1] as f64 - x[1]).abs() < 1e-6, "{got:?} vs {x:?}");
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let p = Tensor::from_slice(&[3.0f32, 4.0]).set_requires_grad(true);
        let config = AdamWConfig { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.0 };
        let mut opt = AdamW::new(config, vec![("w".into(), p.shallow_clone(), false)]);
        (&p * &p).sum(tch::Kind::Float).backward(); // grad (6, 8), norm 10
        assert!((opt.clip_grad_norm(1.0) - 10.0).abs() < 1e-6);
        let g: Vec<f32> = Vec::try_from(&p.grad()).unwrap();
        assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6, "{g:?}");
    }
}
