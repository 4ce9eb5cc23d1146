//! `topo.smoothness`: how smooth a TopoLM's layers are on held-out text,
//! two ways: TopoLM's spatial loss, and the mean correlation between units
//! at each grid distance.
//!
//! Inputs: `model` (a `train.gpt` checkpoint directory, keyed by content)
//! and `tokens` (held-out token ids: the `valid` output of `corpus.text`,
//! column `id` uint32).
//!
//! The text: windows of `context_length` input tokens (plus the next token
//! as target) starting every `context_length` tokens from the start of
//! `tokens`, as train.gpt's validation windows, taken `batch_size` at a
//! time; `batches` full batches (fewer if the held-out tokens run out; at
//! least one is needed).
//!
//! Per chosen (layer, sublayer), with each unit on its cell (`positions`:
//! `preoptimized`, the checkpoint's spatial.json, or `grid`):
//! - `spatial_loss`: train.gpt's spatial loss for one spatial output,
//!   `0.5 (1 - corr(r, 1 / (1 + d)))` per neighbourhood, with r the
//!   units' Pearson correlations over a batch's B x T token positions;
//!   here averaged over ALL neighbourhoods of the layer's fixed pool (the 50
//!   train.gpt drew its per-step samples from; from spatial.json, or drawn
//!   from `seed` with `radius` for a checkpoint without one or when
//!   `radius` differs from the checkpoint's) and over the batches. An
//!   unorganised layer sits near 0.5.
//! - the correlation by distance: Pearson r of every pair of units over
//!   all held-out token positions (all batches together), grouped by the
//!   Chebyshev distance of their cells (ring 1 is the 8 neighbours of a
//!   cell, queen contiguity; ring d: max(|drow|, |dcol|) = d), d = 1 ..
//!   `distances`: the mean r and the number of pairs.
//!
//! Outputs: `smoothness` (layer int32, sublayer utf8, spatial_loss f64,
//! neighborhoods uint32, batches uint32, tokens uint64), `correlation`
//! (layer, sublayer, distance uint32, mean_correlation f64, n_pairs
//! uint64), `summary` (one row for `voxflow compare`: mean_spatial_loss
//! over the chosen sublayers, mean_correlation_d1 the mean over them of the
//! distance-1 correlation, val_loss the next-token cross-entropy on the
//! same windows, tokens).
//!
//! Runs in the worker: `voxflow_torch::kinds::topo`.

use serde::{Deserialize, Serialize};

use super::responses::{check_layers, default_sublayers, Positions, Sublayer};
use crate::device::{Device, DeviceRequest};
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopoSmoothnessParams {
    /// Blocks (0-based); default every block of the model.
    #[serde(default)]
    pub layers: Option<Vec<usize>>,
    #[serde(default = "default_sublayers")]
    pub sublayers: Vec<Sublayer>,
    #[serde(default)]
    pub positions: Positions,
    /// Batches of held-out windows.
    #[serde(default = "default_batches")]
    pub batches: usize,
    /// Windows per batch (the spatial loss correlates over one batch's tokens).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Input tokens per window; default the model's context length.
    #[serde(default)]
    pub context_length: Option<usize>,
    /// The largest Chebyshev distance of the correlation-by-distance table.
    #[serde(default = "default_distances")]
    pub distances: usize,
    /// Neighbourhood radius (units at Chebyshev distance below it from a
    /// centre); default the checkpoint's (train.gpt's `spatial.radius`), or 5.
    #[serde(default)]
    pub radius: Option<usize>,
    /// Seeds the neighbourhood pool when the checkpoint has none to give.
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_device")]
    pub device: DeviceRequest,
}

fn default_batches() -> usize {
    8
}
fn default_batch_size() -> usize {
    16
}
fn default_distances() -> usize {
    8
}
fn default_device() -> DeviceRequest {
    DeviceRequest::Auto
}

pub struct TopoSmoothness;

impl Kind for TopoSmoothness {
    type Params = TopoSmoothnessParams;
    const NAME: &'static str = "topo.smoothness";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "a TopoLM's spatial loss and unit correlation by grid distance on held-out text; one summary row (libtorch)";
    const INPUTS: &'static [&'static str] = &["model", "tokens"];
    const OUTPUTS: &'static [&'static str] = &["smoothness", "correlation", "summary"];
    const FILE_INPUTS: &'static [&'static str] = &["model"];

    fn wants_gpu(&self, params: &TopoSmoothnessParams) -> bool {
        params.device.wants_gpu()
    }
    fn in_worker(&self, _params: &TopoSmoothnessParams, _assigned: Device) -> bool {
        true
    }
    fn validate(&self, p: &TopoSmoothnessParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        check_layers(&p.layers, &p.sublayers, &mut errors);
        for (name, value) in [("batches", p.batches), ("batch_size", p.batch_size), ("distances", p.distances)] {
            if value == 0 {
                errors.push(ParamError::new(name, format!("`{name}` is 0")).hint("give a positive number"));
            }
        }
        if p.context_length.is_some_and(|t| t < 2) {
            errors.push(ParamError::new("context_length", "context_length is below 2").hint("use at least 2 tokens"));
        }
        if p.radius.is_some_and(|r| r < 2) {
            errors.push(
                ParamError::new("radius", "radius is below 2 (a neighbourhood of one unit has no pairs)")
                    .hint("use 2 or more, or leave it out for the checkpoint's"),
            );
        }
        if let Err((message, hint)) = p.device.validate() {
            errors.push(ParamError::new("device", message).hint(hint));
        }
        errors
    }
    fn run(&self, params: &TopoSmoothnessParams, ctx: &mut StageContext) -> Result<(), StageError> {
        crate::worker::runtime(Self::NAME)?.topo_smoothness(params, ctx)
    }
}
