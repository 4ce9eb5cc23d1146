//! `evaluate`: per-voxel scores on the held-out story and a one-row summary
//! (what `voxflow compare` gathers). Pearson r and R^2 against the test
//! responses, two-sided p-values with Benjamini-Hochberg FDR, the noise
//! ceiling from the test repeats (explainable variance, CC_max and the
//! normalised correlation r / CC_max), and, on generated data, the ground
//! truth ceiling. Figures for the report: histogram of r, r against the
//! ceiling, chosen alphas.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Float64Type, Schema};
use serde::{Deserialize, Serialize};

use crate::numeric::{stats, Matrix};
use crate::plot;
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateParams {
    /// False discovery rate for `significant`.
    #[serde(default = "default_fdr")]
    pub fdr: f64,
}

fn default_fdr() -> f64 {
    0.05
}

pub struct Evaluate;

struct Columns {
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
}

impl Columns {
    fn float(&mut self, name: &str, values: Vec<f64>) {
        self.fields.push(Field::new(name, DataType::Float64, false));
        self.arrays.push(Arc::new(Float64Array::from(values)));
    }
    fn int(&mut self, name: &str, value: i64) {
        self.fields.push(Field::new(name, DataType::Int64, false));
        self.arrays.push(Arc::new(Int64Array::from(vec![value])));
    }
    fn batch(self) -> Result<RecordBatch, StageError> {
        RecordBatch::try_new(Arc::new(Schema::new(self.fields)), self.arrays)
            .map_err(|e| StageError::failed(e.to_string()))
    }
}

fn mean(values: &[f64]) -> f64 {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        f64::NAN
    } else {
        finite.iter().sum::<f64>() / finite.len() as f64
    }
}

impl Kind for Evaluate {
    type Params = EvaluateParams;
    const NAME: &'static str = "evaluate";
    // 2: n_voxels and n_test_trs are Int64 counts (were Float64).
    // 3: provenance (stage, key, params) in the Parquet tables' metadata.
    const VERSION: u32 = 3;
    const SUMMARY: &'static str =
        "per-voxel r, R^2, FDR-corrected p, noise ceiling on the test story; one summary row for compare";
    const INPUTS: &'static [&'static str] = &["predictions", "actual"];
    const OUTPUTS: &'static [&'static str] = &["scores", "summary"];

    fn validate(&self, p: &EvaluateParams) -> Vec<ParamError> {
        if !(p.fdr > 0.0 && p.fdr < 1.0) {
            return vec![ParamError::new("fdr", "fdr must be between 0 and 1")];
        }
        Vec::new()
    }
    fn run(&self, params: &EvaluateParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let predictions = ctx.input_matrix("predictions")?.matrix;
        let actual = ctx.input_matrix("actual")?.matrix;
        if (predictions.rows, predictions.cols) != (actual.rows, actual.cols) {
            return Err(StageError::failed(format!(
                "predictions are {}x{} but the test responses are {}x{}",
                predictions.rows, predictions.cols, actual.rows, actual.cols
            )));
        }
        if actual.rows < 3 {
            return Err(StageError::failed(format!("the test set has {} TRs: too few to score", actual.rows)));
        }
        let n_voxels = actual.cols;
        let r = stats::pearson_columns(&predictions, &actual);
        let r2 = stats::r2_columns(&predictions, &actual);
        let p: Vec<f64> = r.iter().map(|&r| stats::pearson_p_value(r, actual.rows)).collect();
        let q = stats::benjamini_hochberg(&p);
        let significant: Vec<bool> = q.iter().map(|&q| q < params.fdr).collect();

        let mut columns = Columns {
            fields: vec![Field::new("voxel", DataType::Int32, false)],
            arrays: vec![Arc::new(Int32Array::from((0..n_voxels as i32).collect::<Vec<_>>()))],
        };
        columns.float("r", r.clone());
        columns.float("r2", r2.clone());
        columns.float("p", p);
        columns.float("q", q);
        columns.fields.push(Field::new("significant", DataType::Boolean, false));
        columns.arrays.push(Arc::new(BooleanArray::from(significant.clone())));

        let mut summary = Columns { fields: Vec::new(), arrays: Vec::new() };
        let finite_r: Vec<f64> = r.iter().copied().filter(|v| v.is_finite()).collect();
        summary.int("n_voxels", n_voxels as i64);
        summary.int("n_test_trs", actual.rows as i64);
        summary.float("mean_r", vec![mean(&r)]);
        summary.float("median_r", vec![stats::percentile(&finite_r, 50.0)]);
        summary.float("p90_r", vec![stats::percentile(&finite_r, 90.0)]);
        summary.float("p99_r", vec![stats::percentile(&finite_r, 99.0)]);
        summary.float("mean_r2", vec![mean(&r2)]);
        summary.float(
            "frac_significant",
            vec![significant.iter().filter(|s| **s).count() as f64 / n_voxels.max(1) as f64],
        );

        let mut ceiling_for_plot: Option<(Vec<f64>, &str)> = None;
        if ctx.has_input("repeats") {
            let repeats = ctx.input_matrix("repeats")?;
            let trials: Vec<Matrix> = repeats
                .segment_ranges()
                .into_iter()
                .map(|(_, range)| repeats.matrix.select_rows(&range.collect::<Vec<_>>()))
                .collect();
            if let Some(bad) = trials.iter().find(|t| t.rows != actual.rows || t.cols != actual.cols) {
                return Err(StageError::failed(format!(
                    "a test repeat is {}x{} but the test responses are {}x{}",
                    bad.rows, bad.cols, actual.rows, actual.cols
                )));
            }
            if trials.len() >= 2 {
                let refs: Vec<&Matrix> = trials.iter().collect();
                let ceiling = stats::noise_ceiling(&refs).map_err(|e| StageError::failed(e.to_string()))?;
                let normalized = ceiling.normalize(&r);
                let single: Vec<f64> = {
                    let per_trial: Vec<Vec<f64>> =
                        trials.iter().map(|t| stats::pearson_columns(&predictions, t)).collect();
                    (0..n_voxels)
                        .map(|v| per_trial.iter().map(|rs| rs[v]).sum::<f64>() / per_trial.len() as f64)
                        .collect()
                };
                columns.float("r_single_trial", single.clone());
                columns.float("explainable_variance", ceiling.explainable_variance.clone());
                columns.float("cc_max", ceiling.cc_max.clone());
                columns.float("r_normalized", normalized.clone());
                summary.float("mean_r_single_trial", vec![mean(&single)]);
                summary.float("mean_cc_max", vec![mean(&ceiling.cc_max)]);
                summary.float("mean_r_normalized", vec![mean(&normalized)]);
                ceiling_for_plot = Some((ceiling.cc_max.clone(), "noise ceiling CC_max"));
            }
        }
        if ctx.has_input("truth") {
            let truth = ctx.input_table("truth")?;
            let column = |name: &str| -> Result<Vec<f64>, StageError> {
                let c = truth
                    .column_by_name(name)
                    .ok_or_else(|| StageError::failed(format!("the truth table has no `{name}`")))?;
                let c = arrow::compute::cast(c, &DataType::Float64).map_err(|e| StageError::failed(e.to_string()))?;
                Ok(c.as_primitive::<Float64Type>().values().to_vec())
            };
            let ceiling = column("ceiling_mean")?;
            let snr = column("snr")?;
            if ceiling.len() != n_voxels {
                return Err(StageError::failed(format!(
                    "the truth table has {} voxels, the predictions {n_voxels}",
                    ceiling.len()
                )));
            }
            let signal: Vec<usize> = (0..n_voxels).filter(|&v| snr[v] > 0.0).collect();
            let noise: Vec<usize> = (0..n_voxels).filter(|&v| snr[v] <= 0.0).collect();
            let pick = |idx: &[usize], values: &[f64]| idx.iter().map(|&v| values[v]).collect::<Vec<f64>>();
            let error: Vec<f64> = signal.iter().map(|&v| (r[v] - ceiling[v]).abs()).collect();
            columns.float("truth_ceiling", ceiling.clone());
            summary.float("mean_abs_r_minus_ceiling", vec![mean(&error)]);
            summary.float("mean_r_signal_voxels", vec![mean(&pick(&signal, &r))]);
            summary.float("mean_r_noise_voxels", vec![mean(&pick(&noise, &r))]);
            ceiling_for_plot = Some((ceiling, "ground-truth ceiling"));
        }
        if ctx.has_input("alphas") {
            let alphas = ctx.input_table("alphas")?;
            if let Some(column) = alphas.column_by_name("alpha").and_then(|c| c.as_primitive_opt::<Float64Type>()) {
                if column.len() == n_voxels {
                    let values: Vec<f64> = column.values().to_vec();
                    let logs: Vec<f64> = values.iter().map(|a| a.log10()).collect();
                    columns.float("alpha", values);
                    ctx.add_figure("alphas", &plot::histogram("chosen alphas", "log10 alpha", &logs, 20))?;
                }
            }
        }
        ctx.add_figure("r_histogram", &plot::histogram("test correlation per voxel", "r", &r, 40))?;
        if let Some((ceiling, label)) = ceiling_for_plot {
            ctx.add_figure("r_vs_ceiling", &plot::scatter("r against the ceiling", label, "r", &ceiling, &r, true))?;
        }
        ctx.write_table("scores", &columns.batch()?)?;
        ctx.write_table("summary", &summary.batch()?)
    }
}
