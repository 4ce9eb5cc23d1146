//! The DDPM noise schedule and the DDIM sampler's step.
//!
//! Betas are linear from `beta_start` to `beta_end` over T steps
//! (`torch.linspace`'s values, computed in float64), alpha_t = 1 - beta_t,
//! abar_t the cumulative product. The forward process in closed form:
//! x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps. One DDIM step (eta 0)
//! from t to the previous timestep p (abar_p = 1 after the last):
//! x0 = clip((x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), -1, 1), eps
//! recomputed from the clipped x0 as (x_t - sqrt(abar_t) x0) /
//! sqrt(1 - abar_t) (as OpenAI's guided-diffusion does), then
//! x_p = sqrt(abar_p) x0 + sqrt(1 - abar_p) eps. Classifier-free guidance
//! combines the conditional and unconditional predictions as
//! (1 + w) eps_c - w eps_u (Ho and Salimans), so w = 0 is the conditional one.

use tch::{Device, Kind, Tensor};

/// The schedule's values in float64.
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseSchedule {
    pub betas: Vec<f64>,
    pub alphas_cumprod: Vec<f64>,
}

impl NoiseSchedule {
    pub fn linear(timesteps: usize, beta_start: f64, beta_end: f64) -> NoiseSchedule {
        let step = if timesteps > 1 { (beta_end - beta_start) / (timesteps - 1) as f64 } else { 0.0 };
        let betas: Vec<f64> = (0..timesteps).map(|i| beta_start + step * i as f64).collect();
        let mut product = 1.0;
        let alphas_cumprod = betas
            .iter()
            .map(|beta| {
                product *= 1.0 - beta;
                product
            })
            .collect();
        NoiseSchedule { betas, alphas_cumprod }
    }

    pub fn timesteps(&self) -> usize {
        self.betas.len()
    }

    /// sqrt(abar_t) and sqrt(1 - abar_t) for the int64 timesteps `t`, shaped [B, 1, 1, 1].
    fn coefficients(&self, t: &Tensor, device: Device) -> (Tensor, Tensor) {
        let root: Vec<f32> = self.alphas_cumprod.iter().map(|a| a.sqrt() as f32).collect();
        let root_complement: Vec<f32> = self.alphas_cumprod.iter().map(|a| (1.0 - a).sqrt() as f32).collect();
        let pick = |values: &[f32]| Tensor::from_slice(values).to_device(device).index_select(0, t).view([-1, 1, 1, 1]);
        (pick(&root), pick(&root_complement))
    }

    /// x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise, per image.
    pub fn q_sample(&self, x0: &Tensor, t: &Tensor, noise: &Tensor) -> Tensor {
        let (a, b) = self.coefficients(t, x0.device());
        a * x0 + b * noise
    }

    /// The `steps` timesteps DDIM visits, from T - 1 down to 0, evenly
    /// spaced (rounded): t_i = round(i (T - 1) / (steps - 1)).
    pub fn ddim_timesteps(&self, steps: usize) -> Vec<usize> {
        let last = self.timesteps() - 1;
        if steps <= 1 {
            return vec![last];
        }
        let mut ts: Vec<usize> =
            (0..steps).map(|i| ((i as f64) * last as f64 / (steps - 1) as f64).round() as usize).collect();
        ts.dedup();
        ts.reverse();
        ts
    }

    /// One DDIM step (eta 0) from timestep `t` to `prev` (None: to x_0).
    pub fn ddim_step(&self, x_t: &Tensor, eps: &Tensor, t: usize, prev: Option<usize>) -> Tensor {
        let abar_t = self.alphas_cumprod[t];
        let abar_prev = prev.map_or(1.0, |p| self.alphas_cumprod[p]);
        let x0 = ((x_t - eps * (1.0 - abar_t).sqrt()) / abar_t.sqrt()).clamp(-1.0, 1.0);
        let eps = (x_t - &x0 * abar_t.sqrt()) / (1.0 - abar_t).sqrt();
        x0 * abar_prev.sqrt() + eps * (1.0 - abar_prev).sqrt()
    }
}

/// Classifier-free guidance: (1 + w) eps_c - w eps_u.
pub fn guide(eps_conditional: &Tensor, eps_unconditional: &Tensor, weight: f64) -> Tensor {
    eps_conditional * (1.0 + weight) - eps_unconditional * weight
}

/// Uniform timesteps in [0, T) for `n` images (libtorch's generator).
pub fn random_timesteps(n: i64, timesteps: usize, device: Device) -> Tensor {
    Tensor::randint(timesteps as i64, [n], (Kind::Int64, device))
}
