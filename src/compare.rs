//! `voxflow compare`: the summaries of a sweep as one table. Every stage whose
//! current result has an output named `summary` (one row of metrics) adds a
//! row; the matrix values become columns, so the table reads as "metric by
//! dataset x model x layer". Written as Parquet and CSV beside an SVG plot of
//! one metric against the first swept axis (the mean and sample sd over a
//! seed axis, with error bars, when the sweep has one and each stage gave
//! one row). Several pipelines' tables stack
//! into one with a `pipeline` column ([`concat`]); `--filter`, `--by`,
//! `--pivot` and `--sort` run on polars ([`query`]).

pub mod query;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Schema};

use crate::exec::{self, Force, Status};
use crate::plan::{display_value, Pipeline};
use crate::plot::{self, Series};
use crate::store::{write_atomic_with, Lookup, Store};

/// The gathered table and what was swept.
pub struct Comparison {
    pub table: RecordBatch,
    /// Matrix axes that appear as columns.
    pub axes: Vec<String>,
    /// Numeric metric columns, in first-seen order.
    pub metrics: Vec<String>,
    /// Stages that have a `summary` output but no current result.
    pub missing: Vec<String>,
}

/// Collects the summary rows of every stage with a current result.
pub fn gather(pipeline: &Pipeline, store: &Store) -> Result<Comparison, String> {
    gather_keys(pipeline, store, None)
}

/// Like [`gather`], with each stage's result taken from `keys` (a recorded
/// run's, by stage name) instead of the current plan when given.
pub fn gather_keys(
    pipeline: &Pipeline,
    store: &Store,
    keys: Option<&BTreeMap<String, String>>,
) -> Result<Comparison, String> {
    let plan = match keys {
        Some(_) => Vec::new(),
        None => exec::plan(pipeline, store, &Force::Nothing),
    };
    let mut stages = Vec::new();
    let mut bases = Vec::new();
    let mut axis_values: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    let mut metrics: Vec<String> = Vec::new();
    let mut metric_values: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    // Metrics that every summary gave as integers stay integers (counts).
    let mut integral: BTreeMap<String, bool> = BTreeMap::new();
    let mut missing = Vec::new();
    let mut row = 0usize;
    for (i, stage) in pipeline.stages.iter().enumerate() {
        if !stage.kind.outputs(&stage.params).iter().any(|o| o == "summary") {
            continue;
        }
        let current = match keys {
            Some(keys) => keys.get(&stage.name).cloned(),
            None => match (&plan[i].key, plan[i].status) {
                (Some(key), Status::Fresh) => Some(key.clone()),
                _ => None,
            },
        };
        let Some(key) = current else {
            missing.push(stage.name.clone());
            continue;
        };
        let Lookup::Fresh(manifest) = store.lookup(&key) else {
            missing.push(stage.name.clone());
            continue;
        };
        let Some(entry) = manifest.outputs.get("summary") else { continue };
        let batch =
            crate::artifact::read_batch(&store.object_dir(&key).join(&entry.file)).map_err(|e| e.to_string())?;
        for r in 0..batch.num_rows() {
            stages.push(stage.name.clone());
            bases.push(stage.base.clone());
            for axis in &pipeline.axes {
                let value = stage.matrix.iter().find(|(a, _)| a == axis).map(|(_, v)| display_value(v));
                axis_values.entry(axis.clone()).or_default().push(value);
            }
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                let name = field.name().clone();
                let Some(value) = numeric_at(column, r) else { continue };
                if !metrics.contains(&name) {
                    metrics.push(name.clone());
                }
                *integral.entry(name.clone()).or_insert(true) &= column.data_type().is_integer();
                let values = metric_values.entry(name).or_default();
                values.resize(row, None);
                values.push(value);
            }
            row += 1;
        }
    }
    let mut fields = vec![Field::new("stage", DataType::Utf8, false), Field::new("base", DataType::Utf8, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(stages)), Arc::new(StringArray::from(bases))];
    let axes: Vec<String> = pipeline
        .axes
        .iter()
        .filter(|a| axis_values.get(*a).is_some_and(|v| v.iter().any(Option::is_some)))
        .cloned()
        .collect();
    for axis in &axes {
        fields.push(Field::new(axis.as_str(), DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(axis_values[axis].clone())));
    }
    for metric in &metrics {
        let mut values = metric_values[metric].clone();
        values.resize(row, None);
        if integral[metric] {
            fields.push(Field::new(metric.as_str(), DataType::Int64, true));
            columns.push(Arc::new(values.into_iter().map(|v| v.map(|v| v as i64)).collect::<Int64Array>()));
        } else {
            fields.push(Field::new(metric.as_str(), DataType::Float64, true));
            columns.push(Arc::new(Float64Array::from(values)));
        }
    }
    let table = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())?;
    Ok(Comparison { table, axes, metrics, missing })
}

/// Stacks the tables of several pipelines into one, with a `pipeline` column
/// first; axes and metrics are the union (null where a pipeline lacks one),
/// and a metric that is an integer in one table and a float in another
/// becomes a float.
pub fn concat(parts: Vec<(String, Comparison)>) -> Result<Comparison, String> {
    let mut labels: Vec<String> = vec!["stage".into(), "base".into()];
    let mut axes: Vec<String> = Vec::new();
    let mut metrics: Vec<String> = Vec::new();
    let mut missing = Vec::new();
    for (name, part) in &parts {
        for axis in &part.axes {
            if !axes.contains(axis) {
                axes.push(axis.clone());
            }
        }
        for metric in &part.metrics {
            if !metrics.contains(metric) {
                metrics.push(metric.clone());
            }
        }
        missing.extend(part.missing.iter().map(|m| format!("{name}:{m}")));
    }
    // A name that is an axis in one pipeline and a metric in another stays a metric.
    axes.retain(|a| !metrics.contains(a));
    labels.extend(axes.iter().cloned());
    let kind = |name: &str| -> DataType {
        if !metrics.iter().any(|m| m == name) {
            return DataType::Utf8;
        }
        let integral = parts.iter().all(|(_, p)| {
            p.table.schema().field_with_name(name).map(|f| f.data_type() == &DataType::Int64).unwrap_or(true)
        });
        if integral {
            DataType::Int64
        } else {
            DataType::Float64
        }
    };
    let mut fields = vec![Field::new("pipeline", DataType::Utf8, false)];
    for name in labels.iter().chain(&metrics) {
        fields.push(Field::new(name.as_str(), kind(name), !matches!(name.as_str(), "stage" | "base")));
    }
    let schema = Arc::new(Schema::new(fields));
    let mut columns: Vec<ArrayRef> = Vec::new();
    for field in schema.fields() {
        let mut pieces: Vec<ArrayRef> = Vec::new();
        for (name, part) in &parts {
            let rows = part.table.num_rows();
            let piece: ArrayRef = if field.name() == "pipeline" {
                Arc::new(StringArray::from(vec![name.as_str(); rows]))
            } else {
                match part.table.column_by_name(field.name()) {
                    Some(column) => arrow::compute::cast(column, field.data_type()).map_err(|e| e.to_string())?,
                    None => arrow::array::new_null_array(field.data_type(), rows),
                }
            };
            pieces.push(piece);
        }
        let refs: Vec<&dyn Array> = pieces.iter().map(|p| p.as_ref()).collect();
        columns.push(arrow::compute::concat(&refs).map_err(|e| e.to_string())?);
    }
    let table = RecordBatch::try_new(schema, columns).map_err(|e| e.to_string())?;
    Ok(Comparison { table, axes, metrics, missing })
}

pub(crate) fn numeric_at(column: &ArrayRef, row: usize) -> Option<Option<f64>> {
    let cast = arrow::compute::cast(column, &DataType::Float64).ok()?;
    if !matches!(
        column.data_type(),
        DataType::Float64
            | DataType::Float32
            | DataType::Int64
            | DataType::Int32
            | DataType::UInt64
            | DataType::UInt32
            | DataType::Int16
            | DataType::UInt16
            | DataType::Int8
            | DataType::UInt8
    ) {
        return None;
    }
    let values = cast.as_primitive::<Float64Type>();
    Some(if values.is_null(row) { None } else { Some(values.value(row)) })
}

/// Writes `table` (the query's result) as `compare.parquet` and
/// `compare.csv`, and the chart of `rows` (the gathered rows after
/// `--filter`) as `compare.svg`, into `dir`, each to a temporary name first
/// and renamed into place, so an interrupted `compare` leaves the previous
/// files whole.
pub fn write_table(
    table: &RecordBatch,
    rows: &Comparison,
    dir: &Path,
    metric: Option<&str>,
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let parquet = dir.join("compare.parquet");
    write_atomic_with(&parquet, |tmp| crate::artifact::write_table(tmp, table).map_err(|e| e.to_string()))?;
    let csv = dir.join("compare.csv");
    write_atomic_with(&csv, |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(file);
        writer.write(table).map_err(|e| format!("{}: {e}", tmp.display()))
    })?;
    let mut written = vec![parquet, csv];
    if let Some(svg) = chart(rows, metric) {
        let path = dir.join("compare.svg");
        crate::store::write_atomic(&path, svg.as_bytes()).map_err(|e| e.to_string())?;
        written.push(path);
    }
    Ok(written)
}

/// The metric the plot shows: the one asked for, else a correlation summary.
pub fn default_metric(comparison: &Comparison) -> Option<String> {
    for preferred in ["mean_r", "median_r", "r"] {
        if comparison.metrics.iter().any(|m| m == preferred) {
            return Some(preferred.to_string());
        }
    }
    comparison.metrics.first().cloned()
}

/// The metric against the first axis, one line per value of the others.
pub fn chart(comparison: &Comparison, metric: Option<&str>) -> Option<String> {
    let metric = metric.map(str::to_string).or_else(|| default_metric(comparison))?;
    // A sweep over seeds: the mean and sample sd over them, as the report
    // draws it; only where each stage gave one row (summaries of several
    // rows, one per checkpoint, would be averaged over their rows too).
    let one_row_per_stage = comparison.table.column_by_name("stage").is_some_and(|stages| {
        let stages = stages.as_string::<i32>();
        let mut seen = std::collections::HashSet::new();
        stages.iter().all(|stage| seen.insert(stage))
    });
    if one_row_per_stage {
        if let Some((svg, _)) = crate::report::seed_chart(&comparison.table, &comparison.axes, Some(metric.clone())) {
            return Some(svg);
        }
    }
    let table = &comparison.table;
    let values = arrow::compute::cast(table.column_by_name(&metric)?, &DataType::Float64).ok()?;
    let values = values.as_primitive_opt::<Float64Type>()?.clone();
    let string_column = |name: &str| table.column_by_name(name).map(|c| c.as_string::<i32>().clone());
    let base = string_column("base")?;
    let (x_axis, x_labels, x_numeric): (String, Vec<String>, bool) = match comparison.axes.first() {
        Some(axis) => {
            let column = string_column(axis)?;
            let mut labels: Vec<String> = Vec::new();
            for i in 0..column.len() {
                if !column.is_null(i) && !labels.contains(&column.value(i).to_string()) {
                    labels.push(column.value(i).to_string());
                }
            }
            let numeric = labels.iter().all(|l| l.parse::<f64>().is_ok());
            if numeric {
                labels.sort_by(|a, b| a.parse::<f64>().unwrap().total_cmp(&b.parse::<f64>().unwrap()));
            }
            (axis.clone(), labels, numeric)
        }
        None => (
            "stage".into(),
            (0..table.num_rows())
                .map(|i| string_column("stage").map(|c| c.value(i).to_string()).unwrap_or_default())
                .collect(),
            false,
        ),
    };
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for i in 0..table.num_rows() {
        if values.is_null(i) {
            continue;
        }
        let (x, group) = match comparison.axes.first() {
            Some(axis) => {
                let label = string_column(axis)?.value(i).to_string();
                let x = if x_numeric {
                    label.parse::<f64>().ok()?
                } else {
                    x_labels.iter().position(|l| *l == label)? as f64
                };
                let others: Vec<String> = comparison.axes[1..]
                    .iter()
                    .filter_map(|a| {
                        string_column(a).map(|c| format!("{a}={}", if c.is_null(i) { "-" } else { c.value(i) }))
                    })
                    .collect();
                let group = std::iter::once(base.value(i).to_string()).chain(others).collect::<Vec<_>>().join(" ");
                (x, group)
            }
            None => (i as f64, base.value(i).to_string()),
        };
        series.entry(group).or_default().push((x, values.value(i)));
    }
    let series: Vec<Series> = series
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { name, points }
        })
        .collect();
    let ticks = if x_numeric { None } else { Some(x_labels.as_slice()) };
    Some(plot::line_chart(&format!("{metric} by {x_axis}"), &x_axis, &metric, &series, ticks))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(axes: &[&str]) -> Comparison {
        // Two layers x two seeds of one stage, mean_r made up.
        let rows = [("1", "0", 0.2), ("1", "1", 0.4), ("2", "0", 0.5), ("2", "1", 0.7)];
        let mut fields = vec![Field::new("stage", DataType::Utf8, false), Field::new("base", DataType::Utf8, false)];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| format!("fit[layer={},seed={}]", r.0, r.1)))),
            Arc::new(StringArray::from(vec!["fit"; 4])),
        ];
        for (k, axis) in axes.iter().enumerate() {
            fields.push(Field::new(*axis, DataType::Utf8, true));
            columns.push(Arc::new(StringArray::from_iter_values(rows.iter().map(|r| if k == 0 { r.0 } else { r.1 }))));
        }
        fields.push(Field::new("mean_r", DataType::Float64, true));
        columns.push(Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))));
        let table = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        Comparison {
            table,
            axes: axes.iter().map(|a| a.to_string()).collect(),
            metrics: vec!["mean_r".into()],
            missing: Vec::new(),
        }
    }

    #[test]
    fn the_chart_of_a_seed_sweep_has_error_bars_and_others_do_not() {
        let with_seeds = chart(&sweep(&["layer", "seed"]), Some("mean_r")).unwrap();
        assert!(with_seeds.contains("sample sd"), "a seed axis: mean and sd over seeds");
        assert!(with_seeds.contains("mean_r by layer"), "the seed axis is averaged, layer is the x axis");
        let mut repeated = sweep(&["layer", "seed"]);
        let stage = StringArray::from(vec!["fit[seed=0]", "fit[seed=0]", "fit[seed=1]", "fit[seed=1]"]);
        let mut columns = repeated.table.columns().to_vec();
        columns[0] = Arc::new(stage);
        repeated.table = RecordBatch::try_new(repeated.table.schema(), columns).unwrap();
        let rows = chart(&repeated, Some("mean_r")).unwrap();
        assert!(!rows.contains("sample sd"), "several rows per stage: not averaged over seeds");
        let renamed = chart(&sweep(&["layer", "rep"]), Some("mean_r")).unwrap();
        assert!(!renamed.contains("sample sd"), "no seed axis: the plain line chart");
        assert!(renamed.contains("mean_r by layer"));
    }
}
