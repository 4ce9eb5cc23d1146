//! Diffusion models of images in libtorch, behind `train.prototypes`,
//! `train.classifier`, `train.ddpm` and `eval.samples` (ProtoDiffusion,
//! arXiv 2307.01924):
//!
//! - [`schedule`]: the DDPM noise schedule (linear betas), the closed form
//!   of q(x_t | x_0), one DDIM step, classifier-free guidance.
//! - [`unet`]: a small U-Net with time and class embeddings added in each
//!   residual block, and its checkpoint directory.
//! - [`classifier`]: the CNN with a prototype head (logits -s ||f - c_k||^2)
//!   or a linear head, and its checkpoint directory.
//!
//! Randomness: each training step seeds libtorch's generator from (seed,
//! step) ([`step_seed`]), so a run resumed from a saved state draws the
//! batches and noise of an uninterrupted one.

pub mod classifier;
pub mod schedule;
pub mod unet;

use tch::{Device, Kind, Tensor};
use voxflow::kinds::images::ImageSet;

/// libtorch's seed for step `step` of a run seeded `seed`.
pub fn step_seed(seed: u64, step: u64) -> i64 {
    (splitmix(seed ^ splitmix(step.wrapping_add(0x5eed))) >> 1) as i64
}

pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The images of `rows` as an [n, 1, size, size] float tensor, and their labels (int64).
pub fn images_tensor(set: &ImageSet, rows: &[usize], device: Device) -> (Tensor, Tensor) {
    let per = set.pixels_per_image();
    let mut pixels = Vec::with_capacity(rows.len() * per);
    for &row in rows {
        pixels.extend_from_slice(&set.pixels[row * per..(row + 1) * per]);
    }
    let size = set.size as i64;
    let images = Tensor::from_slice(&pixels).view([rows.len() as i64, 1, size, size]).to_device(device);
    let labels: Vec<i64> = rows.iter().map(|&r| set.labels[r] as i64).collect();
    (images, Tensor::from_slice(&labels).to_device(device))
}

/// The number of GroupNorm groups for `channels`: 8, 4, 2 or 1, the largest that divides it.
pub fn groups(channels: i64) -> i64 {
    [8, 4, 2, 1].into_iter().find(|g| channels % g == 0).unwrap_or(1)
}

/// A tensor's values as f32 on the CPU.
pub fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view([-1])).expect("float tensor")
}

/// Writes every variable of `vs` to a safetensors file, sorted by name (the
/// same bytes for the same weights).
pub fn save_variables(vs: &tch::nn::VarStore, path: &std::path::Path) -> Result<(), crate::train::TrainError> {
    let mut named: Vec<(String, Tensor)> =
        vs.variables().into_iter().map(|(name, t)| (name, t.to_device(Device::Cpu).contiguous())).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Tensor::write_safetensors(&named, path).map_err(|e| crate::train::TrainError::file(path, e))
}
