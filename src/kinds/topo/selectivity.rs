//! `topo.selectivity`: each unit's Welch t for a contrast of two stimulus
//! labels (`positive` > `negative`, e.g. S > N on the language localizer),
//! as a grid map per layer and sublayer, and the selective units: the
//! `top_k` largest t over all units, or those with t above `threshold`.
//!
//! Inputs are topo.responses's outputs: `responses` (responses.arrow, one
//! row per item in stimulus order, one column per unit), `units`
//! (units.parquet: `column`, `layer`, `sublayer`, `unit`, `row`, `col`) and
//! `items` (items.parquet: `item`, `text`, `label`). Give the stage alone
//! (`inputs: {responses: resp}`) or the three outputs by name (`inputs:
//! {responses: resp.responses, units: resp.units, items: resp.items}`).
//! Items with other labels are left out. Each (layer, sublayer)'s units
//! must fill a rows x cols grid, one unit per cell.
//!
//! Outputs: `tmap` (tmap.parquet, one row per unit in column order:
//! `column`, `layer`, `sublayer`, `unit`, `row`, `col`, `t` (float64, as
//! `scipy.stats.ttest_ind(positive, negative, equal_var=False)`; NaN for a
//! unit that answers every item alike), `selective`) and `summary` (one
//! row: units, selective units, items per label, largest t, the smallest
//! selected t); for the report, each map as a heatmap with its scale.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch};
use arrow::array::{StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use serde::{Deserialize, Serialize};

use crate::numeric::spatial::{GridMap, QueenLattice, UnitResponses};
use crate::numeric::Matrix;
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectivityParams {
    /// The label whose items should drive a selective unit more.
    #[serde(default = "default_positive")]
    pub positive: String,
    /// The label it is contrasted with.
    #[serde(default = "default_negative")]
    pub negative: String,
    /// The number of selective units: the k largest t over all units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    /// Or: the units with t above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

/// Maps drawn for the report, at most.
pub(crate) const MAX_FIGURES: usize = 64;

/// The localizer's sentences.
pub(crate) fn default_positive() -> String {
    "S".into()
}

/// The localizer's non-word lists.
pub(crate) fn default_negative() -> String {
    "N".into()
}

pub struct TopoSelectivity;

impl Kind for TopoSelectivity {
    type Params = SelectivityParams;
    const NAME: &'static str = "topo.selectivity";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "per-unit Welch t of a label contrast (e.g. S > N) as grid maps per layer; top-k or thresholded selective units";
    const INPUTS: &'static [&'static str] = &["responses"];
    const OUTPUTS: &'static [&'static str] = &["tmap", "summary"];

    fn input_problems(&self, _params: &SelectivityParams, roles: &[&str]) -> Vec<(String, String)> {
        response_input_problems(roles)
    }

    fn validate(&self, params: &SelectivityParams) -> Vec<ParamError> {
        let mut errors = label_errors(&params.positive, &params.negative);
        match (params.top_k, params.threshold) {
            (Some(_), Some(_)) => errors.push(
                ParamError::new("threshold", "give `top_k` or `threshold`, not both")
                    .hint("`top_k: 100` selects the 100 largest t; `threshold: 3` those with t > 3"),
            ),
            (None, None) => errors.push(
                ParamError::new("", "topo.selectivity needs `top_k` or `threshold`")
                    .hint("`top_k: 100` selects the 100 largest t; `threshold: 3` those with t > 3"),
            ),
            (Some(0), None) => errors.push(ParamError::new("top_k", "top_k must be at least 1")),
            (None, Some(t)) if !t.is_finite() => errors.push(ParamError::new("threshold", "threshold must be finite")),
            _ => {}
        }
        errors
    }

    fn run(&self, params: &SelectivityParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let set = ResponseSet::read(ctx)?;
        let contrast = set.contrast(&params.positive, &params.negative)?;
        let t = contrast.responses.welch_t(&contrast.is_positive);
        let selective = select(&t, params.top_k, params.threshold);
        let units = &set.units;
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("column", Arc::new(UInt32Array::from((0..units.len() as u32).collect::<Vec<_>>()))),
            ("layer", Arc::new(Int32Array::from(units.iter().map(|u| u.layer).collect::<Vec<_>>()))),
            ("sublayer", Arc::new(StringArray::from(units.iter().map(|u| u.sublayer.as_str()).collect::<Vec<_>>()))),
            ("unit", Arc::new(UInt32Array::from(units.iter().map(|u| u.unit).collect::<Vec<_>>()))),
            ("row", Arc::new(UInt32Array::from(units.iter().map(|u| u.row).collect::<Vec<_>>()))),
            ("col", Arc::new(UInt32Array::from(units.iter().map(|u| u.col).collect::<Vec<_>>()))),
            ("t", Arc::new(Float64Array::from(t.clone()))),
            ("selective", Arc::new(BooleanArray::from(selective.clone()))),
        ];
        ctx.write_table("tmap", &table(columns))?;
        for m in set.maps()?.iter().take(MAX_FIGURES) {
            let grid = m.map.values(&t);
            let outlined: Vec<bool> = m.map.cells.iter().map(|&c| selective[c]).collect();
            let (rows, cols) = (m.map.lattice.rows, m.map.lattice.cols);
            let title = format!(
                "layer {} {}: t of {} > {} (outlined: selective)",
                m.layer, m.sublayer, params.positive, params.negative
            );
            let map = crate::plot::Map { title, rows, cols, values: grid, outlined, scale_label: "Welch t".into() };
            ctx.add_chart(&format!("tmap_layer{}_{}", m.layer, m.sublayer), &crate::plot::Chart::Heatmap(map))?;
        }

        let chosen: Vec<f64> = t.iter().zip(&selective).filter(|(_, s)| **s).map(|(t, _)| *t).collect();
        let n_positive = contrast.is_positive.iter().filter(|p| **p).count();
        let finite_max = t.iter().copied().filter(|v| v.is_finite()).fold(f64::NAN, f64::max);
        let summary: Vec<(&str, ArrayRef)> = vec![
            ("n_units", int(units.len())),
            ("n_selective", int(chosen.len())),
            ("n_positive_items", int(n_positive)),
            ("n_negative_items", int(contrast.is_positive.len() - n_positive)),
            ("t_max", float(finite_max)),
            ("t_min_selective", float(chosen.iter().copied().fold(f64::NAN, f64::min))),
        ];
        ctx.write_table("summary", &table(summary))
    }
}

/// The selective units: the `top_k` largest t (ties to the lower column;
/// NaN never), or those with t > `threshold`.
pub fn select(t: &[f64], top_k: Option<usize>, threshold: Option<f64>) -> Vec<bool> {
    let mut selective = vec![false; t.len()];
    if let Some(k) = top_k {
        let mut order: Vec<usize> = (0..t.len()).filter(|&c| !t[c].is_nan()).collect();
        order.sort_by(|&a, &b| t[b].total_cmp(&t[a]).then(a.cmp(&b)));
        for &c in order.iter().take(k) {
            selective[c] = true;
        }
    } else if let Some(cut) = threshold {
        for (s, &v) in selective.iter_mut().zip(t) {
            *s = v > cut;
        }
    }
    selective
}

pub(crate) fn table(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> =
        columns.iter().map(|(name, array)| Field::new(*name, array.data_type().clone(), true)).collect();
    let arrays = columns.into_iter().map(|(_, array)| array).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("columns of one length")
}

pub(crate) fn int(value: usize) -> ArrayRef {
    Arc::new(Int64Array::from(vec![value as i64]))
}

pub(crate) fn float(value: f64) -> ArrayRef {
    Arc::new(Float64Array::from(vec![value]))
}

/// The label params' problems (shared with topo.moran).
pub(crate) fn label_errors(positive: &str, negative: &str) -> Vec<ParamError> {
    if positive == negative {
        return vec![ParamError::new("negative", format!("positive and negative are both `{positive}`"))
            .hint("contrast two labels of the stimuli, e.g. `positive: S`, `negative: N`")];
    }
    Vec::new()
}

/// The input roles' problems (shared with topo.moran): `units` and `items`
/// come together.
pub(crate) fn response_input_problems(roles: &[&str]) -> Vec<(String, String)> {
    if roles.contains(&"units") != roles.contains(&"items") {
        return vec![(
            "give both `units` and `items` inputs, or neither (then `responses` names the topo.responses stage)".into(),
            "`inputs: {responses: resp}`, or `inputs: {responses: resp.responses, units: resp.units, items: resp.items}`"
                .into(),
        )];
    }
    Vec::new()
}

/// One column of the responses: a unit and its place on its sublayer's grid.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Unit {
    pub layer: i32,
    pub sublayer: String,
    pub unit: u32,
    pub row: u32,
    pub col: u32,
}

/// topo.responses's outputs, read and checked against each other.
pub(crate) struct ResponseSet {
    /// Items x units.
    pub matrix: Matrix,
    /// By column.
    pub units: Vec<Unit>,
    /// By item.
    pub labels: Vec<String>,
}

/// The items of a contrast and their labels.
pub(crate) struct ContrastData {
    pub responses: UnitResponses,
    pub is_positive: Vec<bool>,
}

/// One (layer, sublayer)'s grid.
pub(crate) struct SublayerMap {
    pub layer: i32,
    pub sublayer: String,
    pub map: GridMap,
}

impl ResponseSet {
    pub fn read(ctx: &StageContext) -> Result<ResponseSet, StageError> {
        let [responses_path, units_path, items_path] = input_paths(ctx)?;
        let matrix = crate::artifact::read_matrix(&responses_path)?.matrix;
        let units = read_units(&units_path, matrix.cols)?;
        let items = crate::artifact::read_batch(&items_path)?;
        let labels = string_column(&items, "label", &items_path)?;
        if labels.len() != matrix.rows {
            return Err(StageError::failed(format!(
                "{} has {} items but {} has {} rows",
                items_path.display(),
                labels.len(),
                responses_path.display(),
                matrix.rows
            ))
            .with_hint("`responses`, `units` and `items` must come from one topo.responses stage"));
        }
        Ok(ResponseSet { matrix, units, labels })
    }

    /// The items labelled `positive` or `negative` (at least 2 of each).
    pub fn contrast(&self, positive: &str, negative: &str) -> Result<ContrastData, StageError> {
        let chosen: Vec<usize> =
            (0..self.labels.len()).filter(|&k| self.labels[k] == positive || self.labels[k] == negative).collect();
        let is_positive: Vec<bool> = chosen.iter().map(|&k| self.labels[k] == positive).collect();
        let n_positive = is_positive.iter().filter(|p| **p).count();
        for (label, count) in [(positive, n_positive), (negative, chosen.len() - n_positive)] {
            if count < 2 {
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                for label in &self.labels {
                    *counts.entry(label.as_str()).or_default() += 1;
                }
                let found: Vec<String> = counts.iter().map(|(l, n)| format!("{l} ({n})")).collect();
                return Err(StageError::failed(format!(
                    "label `{label}` has {count} items, a t needs at least 2; the items' labels are {}",
                    found.join(", ")
                ))
                .with_hint("set `positive` and `negative` to labels of the stimuli (stimuli.langloc: S, N)"));
            }
        }
        Ok(ContrastData { responses: UnitResponses::from_rows(&self.matrix, &chosen), is_positive })
    }

    /// The grid of each (layer, sublayer), in the order of their first column.
    pub fn maps(&self) -> Result<Vec<SublayerMap>, StageError> {
        let mut groups: Vec<(i32, String, Vec<usize>)> = Vec::new();
        for (column, unit) in self.units.iter().enumerate() {
            match groups.iter_mut().find(|(l, s, _)| *l == unit.layer && *s == unit.sublayer) {
                Some((_, _, columns)) => columns.push(column),
                None => groups.push((unit.layer, unit.sublayer.clone(), vec![column])),
            }
        }
        groups
            .into_iter()
            .map(|(layer, sublayer, columns)| {
                let fail = |message: String| {
                    StageError::failed(format!("units of layer {layer} {sublayer}: {message}"))
                        .with_hint("each (layer, sublayer)'s units must fill a rows x cols grid, one unit per cell")
                };
                let rows = columns.iter().map(|&c| self.units[c].row).max().unwrap_or(0) as usize + 1;
                let cols = columns.iter().map(|&c| self.units[c].col).max().unwrap_or(0) as usize + 1;
                if rows * cols != columns.len() {
                    return Err(fail(format!("{} units on a {rows} x {cols} grid", columns.len())));
                }
                if rows * cols < 2 {
                    return Err(fail("one unit: Moran's I needs a grid of at least 2 cells".into()));
                }
                let mut cells = vec![usize::MAX; rows * cols];
                for &c in &columns {
                    let (row, col) = (self.units[c].row as usize, self.units[c].col as usize);
                    let cell = &mut cells[row * cols + col];
                    if *cell != usize::MAX {
                        return Err(fail(format!("columns {} and {c} are both at row {row}, col {col}", *cell)));
                    }
                    *cell = c;
                }
                Ok(SublayerMap { layer, sublayer, map: GridMap { lattice: QueenLattice::new(rows, cols), cells } })
            })
            .collect()
    }
}

/// The files of `responses`, `units` and `items`: each role's own output,
/// else the output of that name of the `responses` stage.
fn input_paths(ctx: &StageContext) -> Result<[PathBuf; 3], StageError> {
    let stage = ctx.input("responses")?;
    let responses = match stage.output {
        None => stage.output_path("responses")?,
        Some(_) => stage.single_output()?.1,
    };
    let other = |role: &str| -> Result<PathBuf, StageError> {
        if ctx.has_input(role) {
            return Ok(ctx.input(role)?.single_output()?.1);
        }
        if stage.output.is_none() {
            return stage.output_path(role);
        }
        Err(StageError::failed(format!("input `responses` names one output of `{}`: `{role}` is missing", stage.stage))
            .with_hint(format!(
                "add `{role}: {}.{role}` to `inputs`, or give the stage alone: `inputs: {{responses: {}}}`",
                stage.stage, stage.stage
            )))
    };
    Ok([responses, other("units")?, other("items")?])
}

fn string_column(batch: &RecordBatch, name: &str, path: &std::path::Path) -> Result<Vec<String>, StageError> {
    let array = column(batch, name, path)?;
    let strings = arrow::compute::cast(array, &DataType::Utf8)
        .map_err(|e| StageError::failed(format!("{}: column `{name}`: {e}", path.display())))?;
    let strings = strings.as_string::<i32>();
    if let Some(row) = (0..strings.len()).find(|&k| strings.is_null(k)) {
        return Err(StageError::failed(format!("{}: row {row}: `{name}` is null", path.display())));
    }
    Ok((0..strings.len()).map(|k| strings.value(k).to_string()).collect())
}

fn column<'a>(batch: &'a RecordBatch, name: &str, path: &std::path::Path) -> Result<&'a ArrayRef, StageError> {
    batch.column_by_name(name).ok_or_else(|| {
        let names: Vec<&str> = batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
        StageError::failed(format!("{}: no `{name}` column; it has {}", path.display(), names.join(", ")))
            .with_hint("topo.responses writes units.parquet (column, layer, sublayer, unit, row, col) and items.parquet (item, text, label)")
    })
}

fn int_column(batch: &RecordBatch, name: &str, path: &std::path::Path) -> Result<Vec<i64>, StageError> {
    let array = column(batch, name, path)?;
    let ints = arrow::compute::cast(array, &DataType::Int64)
        .map_err(|e| StageError::failed(format!("{}: column `{name}`: {e}", path.display())))?;
    let ints = ints.as_primitive::<Int64Type>();
    if let Some(row) = (0..ints.len()).find(|&k| ints.is_null(k) || ints.value(k) < 0 && name != "layer") {
        return Err(StageError::failed(format!(
            "{}: row {row}: `{name}` is {}",
            path.display(),
            if ints.is_null(row) { "null".to_string() } else { ints.value(row).to_string() }
        )));
    }
    Ok(ints.values().to_vec())
}

/// units.parquet, by column; every column of the responses exactly once.
fn read_units(path: &std::path::Path, n_columns: usize) -> Result<Vec<Unit>, StageError> {
    let batch = crate::artifact::read_batch(path)?;
    let columns = int_column(&batch, "column", path)?;
    let layers = int_column(&batch, "layer", path)?;
    let sublayers = string_column(&batch, "sublayer", path)?;
    let units = int_column(&batch, "unit", path)?;
    let rows = int_column(&batch, "row", path)?;
    let cols = int_column(&batch, "col", path)?;
    if columns.len() != n_columns {
        return Err(StageError::failed(format!(
            "{} lists {} units but the responses have {n_columns} columns",
            path.display(),
            columns.len()
        ))
        .with_hint("`responses` and `units` must come from one topo.responses stage"));
    }
    let mut by_column: Vec<Option<Unit>> = vec![None; n_columns];
    for k in 0..columns.len() {
        let column = columns[k] as usize;
        let slot = by_column.get_mut(column).ok_or_else(|| {
            StageError::failed(format!(
                "{}: row {k}: column {column} is beyond the responses' {n_columns} columns",
                path.display()
            ))
        })?;
        if slot.is_some() {
            return Err(StageError::failed(format!("{}: row {k}: column {column} is listed twice", path.display())));
        }
        let sublayer = sublayers[k].clone();
        *slot = Some(Unit {
            layer: layers[k] as i32,
            sublayer,
            unit: units[k] as u32,
            row: rows[k] as u32,
            col: cols[k] as u32,
        });
    }
    Ok(by_column.into_iter().map(|u| u.expect("n columns, each once")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_and_threshold_choose_the_largest_t_and_never_nan() {
        let t = [1.0, f64::NAN, 3.0, 3.0, -2.0, f64::INFINITY];
        assert_eq!(select(&t, Some(2), None), [false, false, true, false, false, true]);
        assert_eq!(select(&t, Some(9), None), [true, false, true, true, true, true]);
        assert_eq!(select(&t, None, Some(2.0)), [false, false, true, true, false, true]);
    }
}
