//! `train.ddpm`: a class-conditional DDPM (Ho et al. 2020) on the train
//! split of an `images.*` stage (input `images`), conditioned as in
//! ProtoDiffusion (arXiv 2307.01924) on class embeddings that are either
//! learned from scratch or a prototype network's prototypes (input
//! `prototypes`, a `train.prototypes` stage's `prototypes`).
//!
//! T = `timesteps` (1000) with betas linear from `beta_start` (1e-4) to
//! `beta_end` (0.02); the U-Net predicts the noise epsilon of
//! x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps and trains on its mean
//! squared error. Classifier-free guidance: the condition is replaced by a
//! learned null embedding with probability `cond_drop` (0.1); `eval.samples`
//! sets the guidance weight. The U-Net and the schedule are
//! `voxflow_torch::diffusion`.
//!
//! `mode` (the class embedding table, classes x d):
//! - `regular`: random N(0, 1), learned (d = `embed_dim`, or the
//!   prototypes' dimension when a `prototypes` input is given);
//! - `proto_frozen`: the prototypes, fixed;
//! - `proto_unfrozen`: the prototypes, learned from there;
//! - `random_rescaled`: N(0, 1) rows rescaled to the prototypes' norms, learned
//!   (a control: same scale, no class structure);
//! - `proto_shuffled`: the prototypes permuted across classes (a seeded
//!   permutation without fixed points), learned (a control: same vectors,
//!   wrong classes).
//!
//! Outputs `step<N>` for each N in `checkpoints` (directories: config.json,
//! model.safetensors) and `metrics` (step, loss, lr, grad_norm). Resumable:
//! the whole state (weights, AdamW moments, metrics) is saved every
//! `save_every` steps in the work directory; the noise, timesteps and
//! condition drops of step s come from a generator seeded by (seed, s), so a
//! resumed run is the same bytes on the CPU.

use serde::{Deserialize, Serialize};

use crate::device::{Device, DeviceRequest};
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DdpmParams {
    pub mode: ConditioningMode,
    /// Base width of the U-Net (the lower level has twice this).
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// The class embeddings' dimension in `regular` mode without a
    /// `prototypes` input.
    #[serde(default = "default_embed_dim")]
    pub embed_dim: usize,
    #[serde(default = "default_timesteps")]
    pub timesteps: usize,
    #[serde(default = "default_beta_start")]
    pub beta_start: f64,
    #[serde(default = "default_beta_end")]
    pub beta_end: f64,
    /// Probability that a training image's condition is the null embedding.
    #[serde(default = "default_cond_drop")]
    pub cond_drop: f64,
    pub steps: usize,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    #[serde(default)]
    pub warmup_steps: usize,
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default = "default_grad_clip")]
    pub grad_clip: f64,
    /// Steps after which the model is an output (`step<N>`).
    #[serde(default)]
    pub checkpoints: Vec<usize>,
    #[serde(default = "default_save_every")]
    pub save_every: usize,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_device")]
    pub device: DeviceRequest,
}

/// What the class embeddings start from and whether they learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditioningMode {
    Regular,
    ProtoFrozen,
    ProtoUnfrozen,
    RandomRescaled,
    ProtoShuffled,
}

impl ConditioningMode {
    pub fn name(self) -> &'static str {
        match self {
            ConditioningMode::Regular => "regular",
            ConditioningMode::ProtoFrozen => "proto_frozen",
            ConditioningMode::ProtoUnfrozen => "proto_unfrozen",
            ConditioningMode::RandomRescaled => "random_rescaled",
            ConditioningMode::ProtoShuffled => "proto_shuffled",
        }
    }
    pub fn needs_prototypes(self) -> bool {
        self != ConditioningMode::Regular
    }
    /// Whether the class table is trained.
    pub fn learned(self) -> bool {
        self != ConditioningMode::ProtoFrozen
    }
}

fn default_channels() -> usize {
    32
}
fn default_embed_dim() -> usize {
    32
}
fn default_timesteps() -> usize {
    1000
}
fn default_beta_start() -> f64 {
    1e-4
}
fn default_beta_end() -> f64 {
    0.02
}
fn default_cond_drop() -> f64 {
    0.1
}
fn default_batch_size() -> usize {
    64
}
fn default_learning_rate() -> f64 {
    1e-3
}
fn default_grad_clip() -> f64 {
    1.0
}
fn default_save_every() -> usize {
    100
}
fn default_device() -> DeviceRequest {
    DeviceRequest::Auto
}

pub struct TrainDdpm;

impl Kind for TrainDdpm {
    type Params = DdpmParams;
    const NAME: &'static str = "train.ddpm";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "a class-conditional DDPM (U-Net, classifier-free guidance) with learned or prototype class embeddings; resumable";
    const INPUTS: &'static [&'static str] = &["images"];

    fn required_inputs(&self, params: &DdpmParams) -> Vec<&'static str> {
        if params.mode.needs_prototypes() {
            vec!["images", "prototypes"]
        } else {
            vec!["images"]
        }
    }
    fn outputs(&self, params: &DdpmParams) -> Vec<String> {
        let mut outputs: Vec<String> = params.checkpoints.iter().map(|step| format!("step{step}")).collect();
        outputs.push("metrics".into());
        outputs
    }
    fn wants_gpu(&self, params: &DdpmParams) -> bool {
        params.device.wants_gpu()
    }
    fn in_worker(&self, _params: &DdpmParams, _assigned: Device) -> bool {
        true
    }
    fn resumable(&self, _params: &DdpmParams) -> bool {
        true
    }
    fn validate(&self, p: &DdpmParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        let mut fail = |path: &str, message: String, hint: &str| {
            errors.push(ParamError::new(path, message).hint(hint.to_string()));
        };
        for (name, value) in [
            ("channels", p.channels),
            ("embed_dim", p.embed_dim),
            ("steps", p.steps),
            ("batch_size", p.batch_size),
            ("save_every", p.save_every),
        ] {
            if value == 0 {
                fail(name, format!("`{name}` is 0"), "give a positive number");
            }
        }
        if p.timesteps < 2 {
            fail("timesteps", format!("timesteps is {}", p.timesteps), "use at least 2 (1000 is the paper's)");
        }
        if !(0.0 < p.beta_start && p.beta_start <= p.beta_end && p.beta_end < 1.0) {
            fail(
                "beta_end",
                format!("betas from {} to {} are not an increasing range in (0, 1)", p.beta_start, p.beta_end),
                "use 0 < beta_start <= beta_end < 1 (1e-4 and 0.02 are the paper's)",
            );
        }
        if !(0.0..1.0).contains(&p.cond_drop) {
            fail("cond_drop", format!("cond_drop is {}", p.cond_drop), "use a probability in [0, 1), e.g. 0.1");
        }
        if !(p.learning_rate > 0.0 && p.learning_rate.is_finite()) {
            fail("learning_rate", format!("learning_rate is {}", p.learning_rate), "use a positive rate, e.g. 1e-3");
        }
        if p.warmup_steps > p.steps {
            fail(
                "warmup_steps",
                format!("warmup_steps ({}) is more than steps ({})", p.warmup_steps, p.steps),
                "lower warmup_steps",
            );
        }
        if !(p.weight_decay >= 0.0) {
            fail("weight_decay", format!("weight_decay is {}", p.weight_decay), "use 0 or more");
        }
        if !(p.grad_clip >= 0.0) {
            fail("grad_clip", format!("grad_clip is {}", p.grad_clip), "use 0 (off) or a positive norm");
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
        if let Err((message, hint)) = p.device.validate() {
            fail("device", message, &hint);
        }
        errors
    }
    fn run(&self, params: &DdpmParams, ctx: &mut StageContext) -> Result<(), StageError> {
        crate::worker::runtime(Self::NAME)?.train_ddpm(params, ctx)
    }
}
