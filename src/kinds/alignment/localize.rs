//! `localize.units`: language-selective units of a language model by the
//! Fedorenko localizer, as in arXiv 2503.01830 (and TopoLM): the response of
//! every unit of every chosen hidden state to each localizer item
//! (sentences against non-word lists, `stimuli.langloc`), Welch's t of
//! sentences > non-words per unit, and the `k` units with the largest t
//! across all chosen layers together. `k` is a count, the same for every
//! model size, so that the feature size of what a benchmark regresses from
//! is controlled.
//!
//! Inputs: `model` (a directory in Hugging Face layout: a `train.gpt`
//! checkpoint, or BERT / GPT-2 / GPT-NeoX / Llama; keyed by content; or the
//! param `model`, a directory on disk) and
//! `stimuli` (Parquet: `item`, `text`, `label`; `stimuli.langloc`).
//!
//! Each item is tokenised alone without special tokens (BERT-family models
//! get `[CLS]` and `[SEP]` around it, which the pooling leaves out), run
//! through the model alone, and each hidden state is pooled over the
//! item's tokens (`pool: mean`) or taken at its last token (`pool: last`).
//! Hidden state 0 is the embeddings, `l` the output of block `l`, the last
//! one after the final norm (transformers' `output_hidden_states`).
//!
//! Params: `k` (default 128), `layers` (hidden states; default every block
//! output, 1..=n_layers), `pool`, `positive` / `negative` (the labels
//! compared, default `S` and `N`), `batch_size`, `device`.
//!
//! Outputs:
//! - `units` (units.parquet): the selected units, best first: `rank`
//!   uint32, `layer` int32 (hidden state), `unit` uint32 (index in that
//!   state), `t` float64, `pool` utf8 (how responses were pooled; the
//!   benchmark pools the same way).
//! - `tvalues` (tvalues.parquet): every unit of every chosen layer, layer
//!   by layer: `layer`, `unit`, `t`, `selected` (bool).
//! - `summary`: one row: `k`, `n_units`, `mean_t_selected`, and per layer
//!   how many units were selected is in `units`.
//!
//! Ties in t are broken by (layer, unit), so the selection is a function of
//! the t-values alone. A unit constant over all items has t NaN and is
//! never selected.
//!
//! Runs in the worker: `voxflow_torch::kinds::alignment`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray, UInt32Array};
use serde::{Deserialize, Serialize};

use super::{table, SentencePool};
use crate::device::{Device, DeviceRequest};
use crate::numeric::spatial::UnitResponses;
use crate::numeric::Matrix;
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalizeParams {
    /// A model directory on disk (relative to the pipeline file; hashed by
    /// content); or none, with the model as the input `model`.
    #[serde(default)]
    pub model: Option<String>,
    /// Units selected across all layers.
    #[serde(default = "default_k")]
    pub k: usize,
    /// Hidden states (0 = embeddings); default every block output.
    #[serde(default)]
    pub layers: Option<Vec<usize>>,
    #[serde(default)]
    pub pool: SentencePool,
    #[serde(default = "default_positive")]
    pub positive: String,
    #[serde(default = "default_negative")]
    pub negative: String,
    /// Items per forward pass.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_device")]
    pub device: DeviceRequest,
}

fn default_k() -> usize {
    128
}
fn default_positive() -> String {
    "S".into()
}
fn default_negative() -> String {
    "N".into()
}
pub(crate) fn default_batch_size() -> usize {
    32
}
pub(crate) fn default_device() -> DeviceRequest {
    DeviceRequest::Auto
}

pub struct LocalizeUnits;

impl Kind for LocalizeUnits {
    type Params = LocalizeParams;
    const NAME: &'static str = "localize.units";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "language-selective units by the Fedorenko localizer: Welch t of sentences > non-words per unit, top k across layers (libtorch)";
    const INPUTS: &'static [&'static str] = &["stimuli"];
    const OUTPUTS: &'static [&'static str] = &["units", "tvalues", "summary"];
    const FILE_INPUTS: &'static [&'static str] = &["model"];

    fn input_problems(&self, params: &LocalizeParams, roles: &[&str]) -> Vec<(String, String)> {
        model_problems(Self::NAME, &params.model, roles)
    }
    fn file_params(&self, params: &LocalizeParams) -> Vec<(String, String)> {
        params.model.iter().map(|model| ("model".to_string(), model.clone())).collect()
    }
    fn wants_gpu(&self, params: &LocalizeParams) -> bool {
        params.device.wants_gpu()
    }
    fn in_worker(&self, _params: &LocalizeParams, _assigned: Device) -> bool {
        true
    }
    fn validate(&self, p: &LocalizeParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if p.k == 0 {
            errors.push(ParamError::new("k", "k is 0").hint("select at least one unit (the study uses 128 and more)"));
        }
        check_layers(&p.layers, &mut errors);
        if p.positive == p.negative {
            errors.push(
                ParamError::new("negative", format!("`positive` and `negative` are both `{}`", p.positive))
                    .hint("compare two labels of the stimulus table, e.g. S and N"),
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
    fn run(&self, params: &LocalizeParams, ctx: &mut StageContext) -> Result<(), StageError> {
        crate::worker::runtime(Self::NAME)?.localize_units(params, ctx)
    }
}

/// A model kind needs the param `model` or the input `model`, not both.
pub(crate) fn model_problems(kind: &str, model: &Option<String>, roles: &[&str]) -> Vec<(String, String)> {
    match (model, roles.contains(&"model")) {
        (None, false) => vec![(
            format!("kind `{kind}` needs a model: the param `model` or an input named `model`"),
            "add `params: {model: <directory with config.json, model.safetensors, tokenizer.json>}`, or `inputs: {model: <train.gpt stage>.step<N>}`".into(),
        )],
        (Some(_), true) => vec![(
            format!("{kind} has both the param `model` and an input `model`"),
            "keep one: the param for a model on disk, the input for a checkpoint another stage writes".into(),
        )],
        _ => Vec::new(),
    }
}

/// `layers` listed once each and not empty.
pub(crate) fn check_layers(layers: &Option<Vec<usize>>, errors: &mut Vec<ParamError>) {
    if let Some(layers) = layers {
        let mut sorted = layers.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if layers.is_empty() {
            errors.push(ParamError::new("layers", "`layers` is empty").hint("leave it out for every block output"));
        } else if sorted.len() != layers.len() {
            errors.push(ParamError::new("layers", "a layer is listed twice").hint("list each hidden state once"));
        }
    }
}

/// The t-values of every unit and the top-k selection.
#[derive(Debug, Clone)]
pub struct Localized {
    /// Per column of the responses: its layer and unit.
    pub layer: Vec<usize>,
    pub unit: Vec<usize>,
    pub t: Vec<f64>,
    /// Columns selected, best first.
    pub selected: Vec<usize>,
}

/// Welch's t per column of `responses` (items x units, columns `layer[c]`,
/// `unit[c]`), items with `is_positive` against the others, and the `k`
/// columns with the largest finite t (ties by layer, then unit).
pub fn localize(responses: &Matrix, is_positive: &[bool], layer: Vec<usize>, unit: Vec<usize>, k: usize) -> Localized {
    let items: Vec<usize> = (0..responses.rows).collect();
    let t = UnitResponses::from_rows(responses, &items).welch_t(is_positive);
    let mut order: Vec<usize> = (0..t.len()).filter(|&c| t[c].is_finite()).collect();
    order.sort_by(|&a, &b| t[b].total_cmp(&t[a]).then((layer[a], unit[a]).cmp(&(layer[b], unit[b]))));
    order.truncate(k);
    Localized { layer, unit, t, selected: order }
}

/// Writes `units`, `tvalues` and `summary`.
pub fn write_outputs(ctx: &mut StageContext, localized: &Localized, pool: SentencePool) -> Result<(), StageError> {
    let l = localized;
    let sel = &l.selected;
    let units = table(vec![
        ("rank", Arc::new(UInt32Array::from_iter_values(0..sel.len() as u32)) as ArrayRef),
        ("layer", Arc::new(Int32Array::from_iter_values(sel.iter().map(|&c| l.layer[c] as i32)))),
        ("unit", Arc::new(UInt32Array::from_iter_values(sel.iter().map(|&c| l.unit[c] as u32)))),
        ("t", Arc::new(Float64Array::from_iter_values(sel.iter().map(|&c| l.t[c])))),
        ("pool", Arc::new(StringArray::from(vec![pool.name(); sel.len()]))),
    ]);
    ctx.write_table("units", &units)?;
    let mut is_selected = vec![false; l.t.len()];
    for &c in sel {
        is_selected[c] = true;
    }
    let tvalues = table(vec![
        ("layer", Arc::new(Int32Array::from_iter_values(l.layer.iter().map(|&v| v as i32))) as ArrayRef),
        ("unit", Arc::new(UInt32Array::from_iter_values(l.unit.iter().map(|&v| v as u32)))),
        ("t", Arc::new(Float64Array::from(l.t.clone()))),
        ("selected", Arc::new(BooleanArray::from(is_selected))),
    ]);
    ctx.write_table("tvalues", &tvalues)?;
    let mean_t = sel.iter().map(|&c| l.t[c]).sum::<f64>() / sel.len().max(1) as f64;
    let summary = table(vec![
        ("k", Arc::new(Int64Array::from(vec![sel.len() as i64])) as ArrayRef),
        ("n_units", Arc::new(Int64Array::from(vec![l.t.len() as i64]))),
        ("mean_t_selected", Arc::new(Float64Array::from(vec![mean_t]))),
    ]);
    ctx.write_table("summary", &summary)
}

/// The selected units as a localize.units table gives them: (layer, unit)
/// per rank, and the pooling they were localized with.
#[derive(Debug, Clone)]
pub struct SelectedUnits {
    pub layer: Vec<usize>,
    pub unit: Vec<usize>,
    pub pool: SentencePool,
}

/// Reads input `role` as localize.units's `units` table.
pub fn read_selected(ctx: &StageContext, role: &str, kind: &str) -> Result<SelectedUnits, StageError> {
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Int64Type};
    let stage = ctx.input(role)?.stage.clone();
    let batch = ctx.input_table(role)?;
    let hint = "give the `units` output of a localize.units stage (columns layer, unit, pool)";
    let fail =
        |what: String| StageError::failed(format!("{kind}: input `{role}` (stage `{stage}`): {what}")).with_hint(hint);
    let ints = |name: &str| -> Result<Vec<usize>, StageError> {
        let column = batch.column_by_name(name).ok_or_else(|| fail(format!("no column `{name}`")))?;
        let cast = arrow::compute::cast(column, &DataType::Int64).map_err(|e| fail(format!("column `{name}`: {e}")))?;
        cast.as_primitive::<Int64Type>()
            .iter()
            .map(|v| match v {
                Some(v) if v >= 0 => Ok(v as usize),
                other => Err(fail(format!("column `{name}` has {other:?}, not a non-negative integer"))),
            })
            .collect()
    };
    let layer = ints("layer")?;
    let unit = ints("unit")?;
    if layer.is_empty() {
        return Err(fail("no units".into()));
    }
    let column = batch.column_by_name("pool").ok_or_else(|| fail("no column `pool`".into()))?;
    let cast = arrow::compute::cast(column, &DataType::Utf8).map_err(|e| fail(format!("column `pool`: {e}")))?;
    let text = cast.as_string::<i32>().value(0).to_string();
    let pool = SentencePool::parse(&text).ok_or_else(|| fail(format!("pool `{text}` is neither mean nor last")))?;
    Ok(SelectedUnits { layer, unit, pool })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_takes_the_largest_t_across_layers() {
        // Units 0 and 3 respond to positives; unit 2 is constant (NaN t).
        let rows = [[1.0, 0.1, 5.0, 2.0], [1.2, 0.3, 5.0, 2.5], [0.0, 0.2, 5.0, 0.1], [0.1, 0.25, 5.0, 0.0]];
        let data: Vec<f32> = rows.iter().flatten().copied().collect();
        let matrix = Matrix::from_vec(4, 4, data);
        let positive = [true, true, false, false];
        let l = localize(&matrix, &positive, vec![1, 1, 2, 2], vec![0, 1, 0, 1], 3);
        assert!(l.t[2].is_nan());
        let want_t0 = crate::numeric::spatial::welch_t(&[1.0, 1.2], &[0.0, 0.1]);
        assert!((l.t[0] - want_t0).abs() < 1e-4 * want_t0.abs());
        assert_eq!(l.selected.len(), 3);
        assert!(!l.selected.contains(&2));
        let mut sorted = l.selected.iter().map(|&c| l.t[c]).collect::<Vec<_>>();
        sorted.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(sorted, l.selected.iter().map(|&c| l.t[c]).collect::<Vec<_>>());
    }
}
