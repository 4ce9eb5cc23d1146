//! `topo.responses`: the responses of every unit of chosen layers and
//! sublayers of a TopoLM (a `train.gpt` checkpoint) to a stimulus set, with
//! each unit's position on its layer's grid.
//!
//! Inputs: `model` (a checkpoint directory of `train.gpt`, e.g.
//! `train.step1500`; keyed by content, so the same directory given by path
//! or as an output has one key) and `stimuli` (Parquet: `item` uint32,
//! `text` utf8, `label` utf8, one row per item; `stimuli.langloc`,
//! `stimuli.contrast`, or a table of one's own).
//!
//! Each item's text is encoded with the checkpoint's tokenizer.json as the
//! training corpus was (`corpus.text`: no special tokens added) and run
//! through the model alone (no other item in its context). A unit's
//! response is its activation in a spatial output (TopoLM's: the block's
//! attention output after its residual add, `x + attn(ln_1(x))`, or its MLP
//! output after its residual add), averaged over the item's tokens
//! (`pool: mean`) or at its last token (`pool: last`).
//!
//! Params: `layers` (blocks, 0-based; default all), `sublayers` (`[attn,
//! mlp]`), `pool`, `positions` (`preoptimized`: the cells train.gpt's
//! `spatial` pre-optimisation gave, read from the checkpoint's
//! spatial.json; `grid`: unit u on cell u), `batch_size` (items per forward
//! pass; results do not depend on it beyond float rounding), `device`.
//!
//! Outputs:
//! - `responses` (responses.arrow, a matrix): one row per item in the
//!   stimulus table's order; columns the units of every chosen (layer,
//!   sublayer), layer-major, attn before mlp, then unit 0..n_embd.
//! - `units` (units.parquet): one row per matrix column: `column` uint32,
//!   `layer` int32, `sublayer` utf8 (`attn` | `mlp`), `unit` uint32, `row`
//!   and `col` uint32 (the unit's cell on the sqrt(n_embd) x sqrt(n_embd) grid).
//! - `items` (items.parquet): `item`, `text`, `label`, copied in row order.
//!
//! Runs in the worker: `voxflow_torch::kinds::topo`.

use serde::{Deserialize, Serialize};

use crate::device::{Device, DeviceRequest};
use crate::stage::{Kind, ParamError, StageContext, StageError};

/// A block's spatial output: its attention or its MLP output, each after
/// its residual add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sublayer {
    Attn,
    Mlp,
}

impl Sublayer {
    /// The name in tables (`attn`, `mlp`).
    pub fn name(self) -> &'static str {
        match self {
            Sublayer::Attn => "attn",
            Sublayer::Mlp => "mlp",
        }
    }
    /// Its index among a block's two spatial outputs (attn 0, mlp 1).
    pub fn index(self) -> usize {
        match self {
            Sublayer::Attn => 0,
            Sublayer::Mlp => 1,
        }
    }
}

/// Where each unit sits on its layer's grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Positions {
    /// The cells of train.gpt's `spatial` layout (after its pre-optimisation
    /// when it used `positions: preoptimized`), from the checkpoint's spatial.json.
    #[default]
    Preoptimized,
    /// Unit u on cell u: row u / side, column u % side.
    Grid,
}

/// How an item's tokens become one response per unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopoPool {
    /// The mean over the item's tokens.
    #[default]
    Mean,
    /// The item's last token.
    Last,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopoResponsesParams {
    /// Blocks (0-based); default every block of the model.
    #[serde(default)]
    pub layers: Option<Vec<usize>>,
    #[serde(default = "default_sublayers")]
    pub sublayers: Vec<Sublayer>,
    #[serde(default)]
    pub pool: TopoPool,
    #[serde(default)]
    pub positions: Positions,
    /// Items per forward pass.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_device")]
    pub device: DeviceRequest,
}

pub fn default_sublayers() -> Vec<Sublayer> {
    vec![Sublayer::Attn, Sublayer::Mlp]
}
fn default_batch_size() -> usize {
    32
}
fn default_device() -> DeviceRequest {
    DeviceRequest::Auto
}

/// Checks shared by the topo kinds: `layers` and `sublayers` each listed
/// once and not empty.
pub fn check_layers(layers: &Option<Vec<usize>>, sublayers: &[Sublayer], errors: &mut Vec<ParamError>) {
    if let Some(layers) = layers {
        let mut sorted = layers.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if layers.is_empty() {
            errors.push(ParamError::new("layers", "`layers` is empty").hint("leave it out for every block"));
        } else if sorted.len() != layers.len() {
            errors.push(ParamError::new("layers", "a layer is listed twice").hint("list each block once"));
        }
    }
    let mut sorted = sublayers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sublayers.is_empty() {
        errors.push(ParamError::new("sublayers", "`sublayers` is empty").hint("use [attn, mlp] (the default)"));
    } else if sorted.len() != sublayers.len() {
        errors
            .push(ParamError::new("sublayers", "a sublayer is listed twice").hint("use [attn], [mlp] or [attn, mlp]"));
    }
}

pub struct TopoResponses;

impl Kind for TopoResponses {
    type Params = TopoResponsesParams;
    const NAME: &'static str = "topo.responses";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "unit responses of a TopoLM checkpoint's layers to a stimulus table, with each unit's grid position (libtorch)";
    const INPUTS: &'static [&'static str] = &["model", "stimuli"];
    const OUTPUTS: &'static [&'static str] = &["responses", "units", "items"];
    const FILE_INPUTS: &'static [&'static str] = &["model"];

    fn wants_gpu(&self, params: &TopoResponsesParams) -> bool {
        params.device.wants_gpu()
    }
    fn in_worker(&self, _params: &TopoResponsesParams, _assigned: Device) -> bool {
        true
    }
    fn validate(&self, p: &TopoResponsesParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        check_layers(&p.layers, &p.sublayers, &mut errors);
        if p.batch_size == 0 {
            errors.push(ParamError::new("batch_size", "batch_size is 0").hint("run at least 1 item per forward pass"));
        }
        if let Err((message, hint)) = p.device.validate() {
            errors.push(ParamError::new("device", message).hint(hint));
        }
        errors
    }
    fn run(&self, params: &TopoResponsesParams, ctx: &mut StageContext) -> Result<(), StageError> {
        crate::worker::runtime(Self::NAME)?.topo_responses(params, ctx)
    }
}
