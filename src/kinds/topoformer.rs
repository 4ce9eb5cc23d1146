//! `topoformer.responses`: the responses of a `train.topoformer`
//! checkpoint's units to a stimulus set, per representation of each
//! block's attention: `query` (W_q x + b, before the spatial-querying mask,
//! where the reference code hooks `head.query`), `key`, `value`, and
//! `output` (the output projection's result, before the residual add).
//!
//! Inputs: `model` (a checkpoint directory, e.g. `train.step300`; keyed by
//! content) and `stimuli` (item, text, label). Each item runs alone (no
//! padding), tokenised with the checkpoint's tokenizer.json; a unit's
//! response is its mean over the item's tokens (the reference's
//! `output.mean(dim=1)`).
//!
//! Outputs, in topo.responses's layout so that topo.tgi, topo.selectivity
//! and topo.moran read them: `responses` (items x units, representation-major
//! within a layer), `units` (`column`, `layer`, `sublayer` = the
//! representation's name, `unit`, `row` = unit / side, `col` = unit % side:
//! the cell the masks were built on), `items`. Runs in the worker:
//! `voxflow_torch::kinds::train_topoformer`.

use serde::{Deserialize, Serialize};

use crate::device::{Device, DeviceRequest};
use crate::stage::{Kind, ParamError, StageContext, StageError};

/// A representation inside a Topoformer attention block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Representation {
    Query,
    Key,
    Value,
    Output,
}

impl Representation {
    pub const ALL: [Representation; 4] =
        [Representation::Query, Representation::Key, Representation::Value, Representation::Output];

    pub fn name(self) -> &'static str {
        match self {
            Representation::Query => "query",
            Representation::Key => "key",
            Representation::Value => "value",
            Representation::Output => "output",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopoformerResponsesParams {
    /// Blocks (0-based); default every block.
    #[serde(default)]
    pub layers: Option<Vec<usize>>,
    #[serde(default = "default_representations")]
    pub representations: Vec<Representation>,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_device")]
    pub device: DeviceRequest,
}

fn default_representations() -> Vec<Representation> {
    Representation::ALL.to_vec()
}
fn default_batch_size() -> usize {
    64
}
fn default_device() -> DeviceRequest {
    DeviceRequest::Auto
}

pub struct TopoformerResponses;

impl Kind for TopoformerResponses {
    type Params = TopoformerResponsesParams;
    const NAME: &'static str = "topoformer.responses";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "unit responses of a Topoformer checkpoint's queries, keys, values and attention outputs to a stimulus table (libtorch)";
    const INPUTS: &'static [&'static str] = &["model", "stimuli"];
    const OUTPUTS: &'static [&'static str] = &["responses", "units", "items"];
    const FILE_INPUTS: &'static [&'static str] = &["model"];

    fn wants_gpu(&self, params: &TopoformerResponsesParams) -> bool {
        params.device.wants_gpu()
    }
    fn in_worker(&self, _params: &TopoformerResponsesParams, _assigned: Device) -> bool {
        true
    }
    fn validate(&self, p: &TopoformerResponsesParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if let Some(layers) = &p.layers {
            let mut sorted = layers.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if layers.is_empty() || sorted.len() != layers.len() {
                errors.push(
                    ParamError::new("layers", "`layers` is empty or lists a block twice")
                        .hint("list each block once, or leave it out for every block"),
                );
            }
        }
        let mut sorted = p.representations.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if p.representations.is_empty() || sorted.len() != p.representations.len() {
            errors.push(
                ParamError::new("representations", "`representations` is empty or lists one twice")
                    .hint("e.g. [query, key, value, output] (the default)"),
            );
        }
        if p.batch_size == 0 {
            errors.push(ParamError::new("batch_size", "batch_size is 0").hint("run at least 1 item per forward pass"));
        }
        if let Err((message, hint)) = p.device.validate() {
            errors.push(ParamError::new("device", message).hint(hint));
        }
        errors
    }
    fn run(&self, params: &TopoformerResponsesParams, ctx: &mut StageContext) -> Result<(), StageError> {
        crate::worker::runtime(Self::NAME)?.topoformer_responses(params, ctx)
    }
}
