//! `features.lm`: hidden states of a transformer language model per word
//! (pool `last` or `mean`) or per TR (pool `tr`: the mean over every token
//! whose word falls in the TR, LITcoder's finding that all tokens of a TR
//! beat the last one). One output per layer, `layer<N>` (0 = embeddings).
//!
//! Params: `model` (a directory with config.json, model.safetensors,
//! tokenizer.json; hashed by content; `model_type` bert, gpt2, gpt_neox,
//! voxflow-topoformer (train.topoformer checkpoints) or
//! llama), `layers`, `context` (fullcontext,
//! nocontext, halfcontext; see `lm::windows` for the exact definition),
//! `lookback` (tokens), `pool`, `word_time` (for `pool: tr`),
//! `batch_tokens` (padded tokens per forward pass), `device`.
//!
//! Runs in the worker process (`voxflow-worker`): the extraction is
//! `voxflow_torch::kinds::features_lm`.

use serde::{Deserialize, Serialize};

use crate::device::{Device, DeviceRequest};
use crate::kinds::tables::WordTime;
use crate::lm::windows::ContextMode;
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmParams {
    /// The model directory (Hugging Face layout), relative to the pipeline
    /// file; or none, with the model as the input `model` (a checkpoint
    /// output of `train.gpt`).
    #[serde(default)]
    pub model: Option<String>,
    pub layers: Vec<usize>,
    #[serde(default)]
    pub context: Context,
    #[serde(default = "default_lookback")]
    pub lookback: usize,
    #[serde(default)]
    pub pool: Pooling,
    #[serde(default)]
    pub word_time: WordTime,
    /// Padded tokens per forward pass; default 2048 on the CPU (larger
    /// batches of long windows run slower there) and 16384 on CUDA.
    #[serde(default)]
    pub batch_tokens: Option<usize>,
    #[serde(default = "default_device")]
    pub device: DeviceRequest,
}

/// How much context precedes each word (`lm::windows`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Context {
    #[default]
    FullContext,
    NoContext,
    HalfContext,
}

impl From<Context> for ContextMode {
    fn from(context: Context) -> ContextMode {
        match context {
            Context::FullContext => ContextMode::Full,
            Context::NoContext => ContextMode::None,
            Context::HalfContext => ContextMode::Half,
        }
    }
}

/// How tokens become rows: the word's last token, the mean of the word's
/// tokens, or the mean of every token in a TR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    #[default]
    Last,
    Mean,
    Tr,
}

fn default_lookback() -> usize {
    128
}
fn default_device() -> DeviceRequest {
    DeviceRequest::Auto
}

pub struct FeaturesLm;

impl Kind for FeaturesLm {
    type Params = LmParams;
    const NAME: &'static str = "features.lm";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "language-model hidden states per word or per TR (BERT, GPT-2, GPT-NeoX or Llama layout, libtorch, CPU or CUDA)";
    const INPUTS: &'static [&'static str] = &["words"];
    const FILE_INPUTS: &'static [&'static str] = &["model"];

    fn required_inputs(&self, params: &LmParams) -> Vec<&'static str> {
        // pool: tr averages the tokens of each TR of the `trs` grid.
        match params.pool {
            Pooling::Tr => vec!["words", "trs"],
            Pooling::Last | Pooling::Mean => vec!["words"],
        }
    }
    fn outputs(&self, params: &LmParams) -> Vec<String> {
        params.layers.iter().map(|l| format!("layer{l}")).collect()
    }
    fn input_problems(&self, params: &LmParams, roles: &[&str]) -> Vec<(String, String)> {
        match (&params.model, roles.contains(&"model")) {
            (None, false) => vec![(
                "kind `features.lm` needs a model: the param `model` or an input named `model`".into(),
                "add `params: {model: <directory with config.json, model.safetensors, tokenizer.json>}`, or `inputs: {model: <train.gpt stage>.step<N>}`".into(),
            )],
            (Some(_), true) => vec![(
                "features.lm has both the param `model` and an input `model`".into(),
                "keep one: the param for a model on disk, the input for a checkpoint another stage writes".into(),
            )],
            _ => Vec::new(),
        }
    }
    fn file_params(&self, params: &LmParams) -> Vec<(String, String)> {
        params.model.iter().map(|model| ("model".to_string(), model.clone())).collect()
    }
    fn wants_gpu(&self, params: &LmParams) -> bool {
        params.device.wants_gpu()
    }
    fn validate(&self, p: &LmParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if p.layers.is_empty() {
            errors.push(ParamError::new("layers", "give at least one layer (0 = embeddings)"));
        }
        let mut sorted = p.layers.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != p.layers.len() {
            errors.push(ParamError::new("layers", "a layer is listed twice"));
        }
        if p.lookback < 2 {
            errors.push(ParamError::new("lookback", "lookback must be at least 2 tokens"));
        }
        if p.batch_tokens == Some(0) {
            errors.push(ParamError::new("batch_tokens", "batch_tokens must be positive"));
        }
        if let Err((message, hint)) = p.device.validate() {
            errors.push(ParamError::new("device", message).hint(hint));
        }
        errors
    }
    fn in_worker(&self, _params: &LmParams, _assigned: Device) -> bool {
        true
    }
    fn run(&self, params: &LmParams, ctx: &mut StageContext) -> Result<(), StageError> {
        crate::worker::runtime(Self::NAME)?.features_lm(params, ctx)
    }
}
