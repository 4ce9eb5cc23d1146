//! Training kinds (`train.topoformer`: topoformer.rs; `prototypes.rs`:
//! `train.prototypes` and `train.classifier` (CNNs on images); `ddpm.rs`:
//! `train.ddpm`, a class-conditional diffusion model). Here, `train.gpt`: a decoder-only transformer (GPT-2 layout)
//! trained with next-token cross-entropy, AdamW with warmup and cosine decay
//! and gradient clipping, on the token ids of a `corpus.text` stage.
//!
//! Input `corpus`: a `corpus.text` stage as a whole (its outputs `train`,
//! `valid` and `tokenizer`). Outputs: `step<N>` for each N in
//! `checkpoints` (directories in the layout `features.lm` and
//! `transformers.GPT2LMHeadModel` load: config.json, model.safetensors,
//! tokenizer.json) and `metrics` (Parquet, one row per step: step, loss, lr,
//! grad_norm, val_loss where validation ran). Timings (tokens/s) go to the
//! stage's log, not to the metrics, so that a rerun writes identical bytes.
//!
//! `spatial` (optional): TopoLM's spatial smoothness loss, e.g.
//! `spatial: {alpha: 2.5, neighborhoods: 5, radius: 5, positions: preoptimized}`
//! (those are the defaults; `spatial: {}` takes them all); n_embd must be a
//! square. The metrics then gain a column `spatial_loss` (the unweighted
//! loss; the training loss adds alpha times it) and the run a figure of it;
//! each checkpoint directory gains spatial.json (`side`, `radius`, and per
//! spatial output, block 0 attn, block 0 mlp, block 1 attn, ...: `cell`,
//! unit u's cell row * side + column, and `neighborhoods`, the fixed pool).
//! See [`SpatialParams`].
//!
//! Resumable: it runs in the worker with a work directory under its key
//! (`.voxflow/work/<key>/`) and saves its whole state there every
//! `save_every` steps (weights, AdamW moments, sampler position and RNG
//! state, metrics so far); a new attempt with the same key continues from
//! the last complete one. Deterministic on the CPU for a given seed and
//! `threads`; on CUDA it is not (the manifest says so). The libtorch part is
//! `voxflow_torch::kinds::train_gpt`.

pub mod ddpm;
pub mod prototypes;
pub mod topoformer;

use serde::{Deserialize, Serialize};

use crate::device::{Device, DeviceRequest};
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainGptParams {
    /// Transformer blocks.
    #[serde(default = "default_n_layer")]
    pub n_layer: usize,
    #[serde(default = "default_n_head")]
    pub n_head: usize,
    /// Width of the residual stream; a multiple of `n_head`.
    #[serde(default = "default_n_embd")]
    pub n_embd: usize,
    /// Tokens per training sequence (and the model's positions).
    #[serde(default = "default_context_length")]
    pub context_length: usize,
    #[serde(default)]
    pub dropout: f64,
    /// Rows of the embedding; default (none) the tokenizer's vocabulary.
    #[serde(default)]
    pub vocab_size: Option<usize>,
    /// Seeds the initialisation, the batches and dropout.
    #[serde(default)]
    pub seed: u64,
    pub steps: usize,
    /// Tokens per optimizer step: a multiple of `context_length` (sequences
    /// per step = batch_tokens / context_length).
    #[serde(default = "default_batch_tokens")]
    pub batch_tokens: usize,
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    #[serde(default)]
    pub warmup_steps: usize,
    /// Where the cosine decay ends; default learning_rate / 10.
    #[serde(default)]
    pub min_lr: Option<f64>,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Clip the global gradient norm to this; 0: no clipping.
    #[serde(default = "default_grad_clip")]
    pub grad_clip: f64,
    /// Validation loss every this many steps and after the last; 0: never.
    #[serde(default = "default_eval_every")]
    pub eval_every: usize,
    /// Batches of fixed validation windows per validation.
    #[serde(default = "default_eval_batches")]
    pub eval_batches: usize,
    /// Steps after which the model is an output (`step<N>`); 0 is the
    /// initial model.
    #[serde(default)]
    pub checkpoints: Vec<usize>,
    /// Save the whole training state (for a resume) every this many steps.
    #[serde(default = "default_save_every")]
    pub save_every: usize,
    #[serde(default = "default_device")]
    pub device: DeviceRequest,
    /// TopoLM's spatial smoothness loss ([`SpatialParams`]); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spatial: Option<SpatialParams>,
}

/// Neighbourhoods in each spatial output's fixed pool (the TopoLM reference
/// code's `num_neighborhoods`; `voxflow_torch::train::spatial::POOL`).
pub const SPATIAL_POOL: usize = 50;

/// `train.gpt`'s `spatial` param: TopoLM (arXiv 2410.11516). Each layer's
/// units sit on a sqrt(n_embd) x sqrt(n_embd) grid; the loss adds, for each
/// block's attention and MLP outputs (after their residual adds),
/// 0.5 (1 - corr(r, D)) averaged over `neighborhoods` neighbourhoods drawn
/// each step from a fixed pool of 50 (r: the units' activation
/// correlations over the batch's tokens, D: 1 / (1 + grid distance)),
/// weighted by `alpha`. Details and where the paper and the authors' code
/// differ: `voxflow_torch::train::spatial`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpatialParams {
    /// Weight of the spatial loss; 0 is the control (the loss is computed
    /// for the metrics, not trained on).
    #[serde(default = "default_spatial_alpha")]
    pub alpha: f64,
    /// Neighbourhoods drawn per layer output and step (1 to 50).
    #[serde(default = "default_spatial_neighborhoods")]
    pub neighborhoods: usize,
    /// A neighbourhood: the units at Chebyshev distance below `radius` from
    /// its centre, (2 radius - 1)^2 units.
    #[serde(default = "default_spatial_radius")]
    pub radius: usize,
    /// `grid` (unit u on cell u, row-major) or `preoptimized` (the grid,
    /// then swaps within neighbourhoods that lower the loss on the initial
    /// model, as the reference code does before training).
    #[serde(default = "default_spatial_positions")]
    pub positions: SpatialPositions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpatialPositions {
    Grid,
    Preoptimized,
}

fn default_spatial_alpha() -> f64 {
    2.5
}
fn default_spatial_neighborhoods() -> usize {
    5
}
fn default_spatial_radius() -> usize {
    5
}
fn default_spatial_positions() -> SpatialPositions {
    SpatialPositions::Preoptimized
}

fn default_n_layer() -> usize {
    2
}
fn default_n_head() -> usize {
    2
}
fn default_n_embd() -> usize {
    64
}
fn default_context_length() -> usize {
    64
}
fn default_batch_tokens() -> usize {
    1024
}
fn default_learning_rate() -> f64 {
    1e-3
}
fn default_weight_decay() -> f64 {
    0.1
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.95
}
fn default_eps() -> f64 {
    1e-8
}
fn default_grad_clip() -> f64 {
    1.0
}
fn default_eval_every() -> usize {
    50
}
fn default_eval_batches() -> usize {
    4
}
fn default_save_every() -> usize {
    50
}
fn default_device() -> DeviceRequest {
    DeviceRequest::Auto
}

impl TrainGptParams {
    /// Sequences per step.
    pub fn batch_size(&self) -> usize {
        self.batch_tokens / self.context_length.max(1)
    }
    pub fn min_lr(&self) -> f64 {
        self.min_lr.unwrap_or(self.learning_rate / 10.0)
    }
}

pub struct TrainGpt;

impl Kind for TrainGpt {
    type Params = TrainGptParams;
    const NAME: &'static str = "train.gpt";
    // 2: with `spatial`, each checkpoint holds spatial.json (the unit cells
    // and neighbourhood pools). 3: provenance (stage, params) in the Parquet
    // tables' metadata.
    const VERSION: u32 = 3;
    const SUMMARY: &'static str =
        "trains a GPT-2-layout language model (libtorch, CPU or CUDA); checkpoints and a metrics table; resumable";
    const INPUTS: &'static [&'static str] = &["corpus"];

    fn outputs(&self, params: &TrainGptParams) -> Vec<String> {
        let mut outputs: Vec<String> = params.checkpoints.iter().map(|step| format!("step{step}")).collect();
        outputs.push("metrics".into());
        outputs
    }
    fn wants_gpu(&self, params: &TrainGptParams) -> bool {
        params.device.wants_gpu()
    }
    fn in_worker(&self, _params: &TrainGptParams, _assigned: Device) -> bool {
        true
    }
    fn resumable(&self, _params: &TrainGptParams) -> bool {
        true
    }
    fn validate(&self, p: &TrainGptParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        let mut fail = |path: &str, message: String, hint: &str| {
            errors.push(ParamError::new(path, message).hint(hint.to_string()));
        };
        for (name, value) in [("n_layer", p.n_layer), ("n_head", p.n_head), ("n_embd", p.n_embd)] {
            if value == 0 {
                fail(name, format!("`{name}` is 0"), "give a positive number");
            }
        }
        if p.n_head > 0 && p.n_embd % p.n_head != 0 {
            fail(
                "n_embd",
                format!("n_embd ({}) is not divisible by n_head ({})", p.n_embd, p.n_head),
                "each head gets n_embd / n_head dimensions: make n_embd a multiple of n_head (e.g. 64 with 2, 4 or 8 heads)",
            );
        }
        if p.context_length < 2 {
            fail("context_length", format!("context_length is {}", p.context_length), "use at least 2 tokens");
        }
        if !(0.0..1.0).contains(&p.dropout) {
            fail("dropout", format!("dropout is {}", p.dropout), "use a probability in [0, 1)");
        }
        if p.steps == 0 {
            fail("steps", "steps is 0".into(), "train for at least 1 step");
        }
        if p.context_length >= 2 && (p.batch_tokens < p.context_length || p.batch_tokens % p.context_length != 0) {
            fail(
                "batch_tokens",
                format!("batch_tokens ({}) is not a multiple of context_length ({})", p.batch_tokens, p.context_length),
                "a step trains on whole sequences: use a multiple of context_length",
            );
        }
        if !(p.learning_rate > 0.0 && p.learning_rate.is_finite()) {
            fail("learning_rate", format!("learning_rate is {}", p.learning_rate), "use a positive rate, e.g. 1e-3");
        }
        if !(0.0..=p.learning_rate).contains(&p.min_lr()) {
            fail("min_lr", format!("min_lr ({}) is outside [0, learning_rate]", p.min_lr()), "lower min_lr");
        }
        if p.warmup_steps > p.steps {
            fail(
                "warmup_steps",
                format!("warmup_steps ({}) is more than steps ({})", p.warmup_steps, p.steps),
                "lower warmup_steps",
            );
        }
        for (name, value) in [("beta1", p.beta1), ("beta2", p.beta2)] {
            if !(0.0..1.0).contains(&value) {
                fail(name, format!("{name} is {value}"), "use a value in [0, 1)");
            }
        }
        if !(p.eps > 0.0) {
            fail("eps", format!("eps is {}", p.eps), "use a small positive number, e.g. 1e-8");
        }
        if !(p.weight_decay >= 0.0) {
            fail("weight_decay", format!("weight_decay is {}", p.weight_decay), "use 0 or more");
        }
        if !(p.grad_clip >= 0.0) {
            fail("grad_clip", format!("grad_clip is {}", p.grad_clip), "use 0 (off) or a positive norm");
        }
        if p.eval_every > 0 && p.eval_batches == 0 {
            fail(
                "eval_batches",
                "eval_batches is 0 while eval_every is set".into(),
                "give at least 1, or eval_every: 0",
            );
        }
        if p.save_every == 0 {
            fail("save_every", "save_every is 0".into(), "save the training state every N > 0 steps");
        }
        if let Some(beyond) = p.checkpoints.iter().find(|&&step| step > p.steps) {
            fail(
                "checkpoints",
                format!("checkpoint step {beyond} is beyond `steps` ({})", p.steps),
                "list steps between 0 and `steps`, or raise `steps`",
            );
        }
        let mut sorted = p.checkpoints.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != p.checkpoints.len() {
            fail("checkpoints", "a checkpoint step is listed twice".into(), "list each step once");
        }
        if p.vocab_size == Some(0) {
            fail("vocab_size", "vocab_size is 0".into(), "leave it out to use the tokenizer's vocabulary");
        }
        if let Some(spatial) = &p.spatial {
            let side = (p.n_embd as f64).sqrt().round() as usize;
            if p.n_embd > 0 && side * side != p.n_embd {
                let floor = (p.n_embd as f64).sqrt().floor() as usize;
                let (below, above) = (floor * floor, (floor + 1) * (floor + 1));
                fail(
                    "n_embd",
                    format!("spatial: n_embd ({}) is not a square number, so the units do not fill a grid", p.n_embd),
                    &format!("use a square n_embd (e.g. {below} or {above}) that n_head divides"),
                );
            } else if p.n_embd > 0 && (spatial.radius < 2 || 2 * spatial.radius > side + 1) {
                fail(
                    "spatial.radius",
                    format!(
                        "spatial.radius {} does not fit the {side} x {side} grid (a neighbourhood is 2 radius - 1 units wide)",
                        spatial.radius
                    ),
                    &format!("use a radius from 2 to {}, or a larger n_embd", (side + 1) / 2),
                );
            }
            if spatial.neighborhoods == 0 || spatial.neighborhoods > SPATIAL_POOL {
                fail(
                    "spatial.neighborhoods",
                    format!("spatial.neighborhoods is {}", spatial.neighborhoods),
                    &format!("draw 1 to {SPATIAL_POOL} neighbourhoods per step (5 is the paper's)"),
                );
            }
            if !(spatial.alpha >= 0.0 && spatial.alpha.is_finite()) {
                fail(
                    "spatial.alpha",
                    format!("spatial.alpha is {}", spatial.alpha),
                    "use 0 (the control) or a positive weight (2.5 is the paper's)",
                );
            }
        }
        if let Err((message, hint)) = p.device.validate() {
            fail("device", message, &hint);
        }
        errors
    }
    fn run(&self, params: &TrainGptParams, ctx: &mut StageContext) -> Result<(), StageError> {
        crate::worker::runtime(Self::NAME)?.train_gpt(params, ctx)
    }
}
