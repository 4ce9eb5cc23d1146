//! `eval.samples`: how good a `train.ddpm` stage's samples are at each of
//! its checkpoints (input `model`: the train.ddpm stage as a whole; every
//! `step<N>` output is scored, in step order).
//!
//! For each checkpoint: `samples_per_class` images of every class, drawn
//! with DDIM (eta 0, `ddim_steps` steps, classifier-free guidance weight
//! `guidance`: eps = (1 + w) eps(x, c) - w eps(x, null)) from the same seeded
//! starting noise at every checkpoint; the independent classifier (input
//! `classifier`: a `train.classifier` stage) labels them, and
//! - `accuracy`: the fraction labelled as the class they were drawn for;
//! - `fid`: the Frechet distance between Gaussians fitted to the
//!   classifier's features of the real test images (input `images`, the
//!   images stage the model was trained on) and of the samples:
//!   ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)), in float64
//!   (`voxflow::numeric::frechet`).
//!
//! Outputs `summary` (one row per checkpoint: step, mode, accuracy, fid;
//! `voxflow compare` reads it), `grids` (a directory of step<N>.png, one
//! row per class, `grid_columns` samples each, 8-bit grey) and a figure of
//! each grid and of accuracy and fid by step for the report.

use serde::{Deserialize, Serialize};

use crate::device::{Device, DeviceRequest};
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplesParams {
    #[serde(default = "default_samples_per_class")]
    pub samples_per_class: usize,
    #[serde(default = "default_ddim_steps")]
    pub ddim_steps: usize,
    /// Classifier-free guidance weight w (0: the conditional prediction).
    #[serde(default = "default_guidance")]
    pub guidance: f64,
    /// Samples per class shown in the grids.
    #[serde(default = "default_grid_columns")]
    pub grid_columns: usize,
    /// Seeds the starting noise (the same at every checkpoint).
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_device")]
    pub device: DeviceRequest,
}

fn default_samples_per_class() -> usize {
    50
}
fn default_ddim_steps() -> usize {
    50
}
fn default_guidance() -> f64 {
    2.0
}
fn default_grid_columns() -> usize {
    8
}
fn default_batch_size() -> usize {
    500
}
fn default_device() -> DeviceRequest {
    DeviceRequest::Auto
}

pub struct EvalSamples;

impl Kind for EvalSamples {
    type Params = SamplesParams;
    const NAME: &'static str = "eval.samples";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "samples a train.ddpm stage's checkpoints with DDIM: class accuracy by an independent classifier, Frechet distance, grids";
    const INPUTS: &'static [&'static str] = &["model", "classifier", "images"];
    const OUTPUTS: &'static [&'static str] = &["summary", "grids"];

    fn wants_gpu(&self, params: &SamplesParams) -> bool {
        params.device.wants_gpu()
    }
    fn in_worker(&self, _params: &SamplesParams, _assigned: Device) -> bool {
        true
    }
    fn validate(&self, p: &SamplesParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        for (name, value) in
            [("samples_per_class", p.samples_per_class), ("ddim_steps", p.ddim_steps), ("batch_size", p.batch_size)]
        {
            if value == 0 {
                errors.push(ParamError::new(name, format!("`{name}` is 0")).hint("give a positive number"));
            }
        }
        if p.samples_per_class < 2 {
            errors.push(
                ParamError::new("samples_per_class", "one sample per class gives no covariance").hint(
                    "draw at least 2 per class (the Frechet distance wants more samples than feature dimensions)",
                ),
            );
        }
        if p.grid_columns > p.samples_per_class {
            errors.push(
                ParamError::new(
                    "grid_columns",
                    format!(
                        "grid_columns ({}) is more than samples_per_class ({})",
                        p.grid_columns, p.samples_per_class
                    ),
                )
                .hint("show at most samples_per_class samples per class"),
            );
        }
        if !(p.guidance >= 0.0 && p.guidance.is_finite()) {
            errors.push(
                ParamError::new("guidance", format!("guidance is {}", p.guidance))
                    .hint("use 0 (no guidance) or a positive weight"),
            );
        }
        if let Err((message, hint)) = p.device.validate() {
            errors.push(ParamError::new("device", message).hint(hint));
        }
        errors
    }
    fn run(&self, params: &SamplesParams, ctx: &mut StageContext) -> Result<(), StageError> {
        crate::worker::runtime(Self::NAME)?.eval_samples(params, ctx)
    }
}
