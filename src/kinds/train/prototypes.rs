//! `train.prototypes` and `train.classifier`: a small CNN on the images of
//! an `images.*` stage (input `images`, its train split), trained with AdamW
//! on shuffled minibatches, evaluated on the test split.
//!
//! `train.prototypes` (ProtoDiffusion's prototype network): the CNN maps an
//! image to a feature f (`feature_dim`); each class k has a learned
//! prototype c_k; logits are -scale ||f - c_k||^2 (scale 2), trained with
//! cross-entropy plus `prototype_weight` times the mean ||f - c_y||^2 (the
//! prototype loss pulling features to their class's prototype). Outputs
//! `prototypes` (prototypes.arrow: classes x feature_dim, row label `class`,
//! metadata `voxflow.class_names`), the network (`model`, a directory:
//! config.json, model.safetensors) and `metrics`.
//!
//! `train.classifier`: the same CNN with a linear head (logits W f + b),
//! cross-entropy only: the independent classifier `eval.samples` scores
//! generated images with (seed it apart from the prototype network).
//! Outputs `model` and `metrics`.
//!
//! `metrics` (Parquet): step, loss, ce_loss, proto_loss (0 for the linear
//! head), accuracy (of the step's batch), and test_accuracy (null except in
//! the last row: the whole test split). The CNN, in
//! `voxflow_torch::diffusion::classifier`: three 3x3 convolutions
//! (channels, 2 channels stride 2, 2 channels stride 2) with GroupNorm and
//! SiLU, global average pooling, a linear map to feature_dim.

use serde::{Deserialize, Serialize};

use crate::device::{Device, DeviceRequest};
use crate::stage::{Kind, ParamError, StageContext, StageError};

/// The common params of both kinds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierParams {
    /// Width of the first convolution (the next two have twice this).
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// Dimension of the feature f (and of the prototypes).
    #[serde(default = "default_feature_dim")]
    pub feature_dim: usize,
    #[serde(default = "default_steps")]
    pub steps: usize,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Seeds the initialisation and the batches.
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_device")]
    pub device: DeviceRequest,
}

/// `train.prototypes`'s params: [`ClassifierParams`] and the prototype head's two.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrototypesParams {
    #[serde(default = "default_channels")]
    pub channels: usize,
    #[serde(default = "default_feature_dim")]
    pub feature_dim: usize,
    #[serde(default = "default_steps")]
    pub steps: usize,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_device")]
    pub device: DeviceRequest,
    /// s in logits = -s ||f - c_k||^2.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Weight of the prototype loss mean ||f - c_y||^2.
    #[serde(default = "default_prototype_weight")]
    pub prototype_weight: f64,
}

/// The classifier's head.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "head")]
pub enum Head {
    Linear,
    Prototype { scale: f64, prototype_weight: f64 },
}

impl PrototypesParams {
    pub fn common(&self) -> ClassifierParams {
        ClassifierParams {
            channels: self.channels,
            feature_dim: self.feature_dim,
            steps: self.steps,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            weight_decay: self.weight_decay,
            seed: self.seed,
            device: self.device,
        }
    }
    pub fn head(&self) -> Head {
        Head::Prototype { scale: self.scale, prototype_weight: self.prototype_weight }
    }
}

fn default_channels() -> usize {
    32
}
fn default_feature_dim() -> usize {
    32
}
fn default_steps() -> usize {
    500
}
fn default_batch_size() -> usize {
    64
}
fn default_learning_rate() -> f64 {
    2e-3
}
fn default_weight_decay() -> f64 {
    1e-4
}
fn default_scale() -> f64 {
    2.0
}
fn default_prototype_weight() -> f64 {
    0.1
}
fn default_device() -> DeviceRequest {
    DeviceRequest::Auto
}

fn common_errors(p: &ClassifierParams) -> Vec<ParamError> {
    let mut errors = Vec::new();
    for (name, value) in
        [("channels", p.channels), ("feature_dim", p.feature_dim), ("steps", p.steps), ("batch_size", p.batch_size)]
    {
        if value == 0 {
            errors.push(ParamError::new(name, format!("`{name}` is 0")).hint("give a positive number"));
        }
    }
    if !(p.learning_rate > 0.0 && p.learning_rate.is_finite()) {
        errors.push(
            ParamError::new("learning_rate", format!("learning_rate is {}", p.learning_rate))
                .hint("use a positive rate, e.g. 2e-3"),
        );
    }
    if !(p.weight_decay >= 0.0) {
        errors
            .push(ParamError::new("weight_decay", format!("weight_decay is {}", p.weight_decay)).hint("use 0 or more"));
    }
    if let Err((message, hint)) = p.device.validate() {
        errors.push(ParamError::new("device", message).hint(hint));
    }
    errors
}

pub struct TrainPrototypes;

impl Kind for TrainPrototypes {
    type Params = PrototypesParams;
    const NAME: &'static str = "train.prototypes";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "a prototype network (CNN, logits -s||f - c_k||^2, prototype loss) on an image set: class prototypes and the network";
    const INPUTS: &'static [&'static str] = &["images"];
    const OUTPUTS: &'static [&'static str] = &["prototypes", "model", "metrics"];

    fn wants_gpu(&self, params: &PrototypesParams) -> bool {
        params.device.wants_gpu()
    }
    fn in_worker(&self, _params: &PrototypesParams, _assigned: Device) -> bool {
        true
    }
    fn validate(&self, p: &PrototypesParams) -> Vec<ParamError> {
        let mut errors = common_errors(&p.common());
        if !(p.scale > 0.0 && p.scale.is_finite()) {
            errors.push(
                ParamError::new("scale", format!("scale is {}", p.scale)).hint("use a positive s (2 is the paper's)"),
            );
        }
        if !(p.prototype_weight >= 0.0 && p.prototype_weight.is_finite()) {
            errors.push(
                ParamError::new("prototype_weight", format!("prototype_weight is {}", p.prototype_weight))
                    .hint("use 0 (cross-entropy only) or a positive weight"),
            );
        }
        errors
    }
    fn run(&self, params: &PrototypesParams, ctx: &mut StageContext) -> Result<(), StageError> {
        crate::worker::runtime(Self::NAME)?.train_classifier(&params.common(), params.head(), ctx)
    }
}

pub struct TrainClassifier;

impl Kind for TrainClassifier {
    type Params = ClassifierParams;
    const NAME: &'static str = "train.classifier";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "a plain CNN classifier (linear head) on an image set: the independent judge of generated samples";
    const INPUTS: &'static [&'static str] = &["images"];
    const OUTPUTS: &'static [&'static str] = &["model", "metrics"];

    fn wants_gpu(&self, params: &ClassifierParams) -> bool {
        params.device.wants_gpu()
    }
    fn in_worker(&self, _params: &ClassifierParams, _assigned: Device) -> bool {
        true
    }
    fn validate(&self, p: &ClassifierParams) -> Vec<ParamError> {
        common_errors(p)
    }
    fn run(&self, params: &ClassifierParams, ctx: &mut StageContext) -> Result<(), StageError> {
        crate::worker::runtime(Self::NAME)?.train_classifier(params, Head::Linear, ctx)
    }
}
