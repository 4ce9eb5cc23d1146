//! `alignment.summary`: a checkpoint sweep as one table, model size x
//! checkpoint (tokens seen) x benchmark -> raw score, ceiling, normalised
//! score, formal and functional competence, next-token loss; and the R^2
//! of alignment against each competence across checkpoints, per size and
//! pooled over sizes.
//!
//! Its inputs gather whole sweeps (`stage[*]`, see `crate::plan`), each
//! expansion an input whose role carries the matrix values
//! (`scores[size=small,step=300]`):
//! - roles starting with `scores`: benchmark summaries, one row with
//!   `raw`, `ceiling`, `score` (`benchmark.sentences`'s `summary`), or
//!   `evaluate`'s summary of the story-listening path (the encoding model
//!   on synth.stories or LeBel-layout data, with repeats): raw = `mean_r`
//!   (mean Pearson r over voxels on the test story), ceiling =
//!   `mean_cc_max`, score = `mean_r_normalized` (the mean over voxels of r
//!   / CC_max); the benchmark is named after the stage (`sentences[*]` ->
//!   `sentences`);
//! - roles starting with `formal` or `functional` (optional): competence
//!   tables (`source`, `suite`, `n`, `correct`, `accuracy`; the row with
//!   suite `overall`). Several roles of one kind (`formal: "pairs[*]..."`,
//!   `formal_syntaxgym: "syntaxgym[*]..."`) are averaged: a checkpoint's
//!   formal competence is the mean of the overall accuracies of every
//!   `formal*` input that matches it, as the paper averages its formal
//!   benchmarks;
//! - `loss` (optional): train.gpt's `metrics` per size (`step`, `loss`,
//!   `val_loss`): the loss at a checkpoint is `val_loss` of the last row
//!   at or before its step that has one (null if none), and tokens seen
//!   are step x the training stage's `batch_tokens` (from its key record).
//!
//! A scores input is matched with the competence and loss inputs whose
//! matrix values agree on the axes they share. Params: `size_axis`
//! (default `size`), `step_axis` (default `step`) name the axes.
//!
//! Outputs:
//! - `alignment` (alignment.parquet): `benchmark`, `size` utf8, `step`
//!   int64, `tokens` int64 (null when unknown), `raw`, `ceiling`, `score`,
//!   `formal`, `functional`, `loss` float64 (null when not given), sorted
//!   by benchmark, size, step.
//! - `fits` (fits.parquet): per benchmark, per size and `all` (pooled),
//!   per competence (`formal`, `functional`): `n` int64, `r2` (squared
//!   Pearson r of score and competence across checkpoints, i.e. the R^2 of
//!   the least-squares line), `slope`, `intercept` float64.
//! - `summary`: one row per benchmark: `benchmark`, `checkpoints`,
//!   `r2_formal`, `r2_functional` (pooled).
//! - figures (the run report): per benchmark the score by tokens seen (a
//!   line per size) and against each competence given; the loss by tokens.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::table;
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryParams {
    #[serde(default = "default_size_axis")]
    pub size_axis: String,
    #[serde(default = "default_step_axis")]
    pub step_axis: String,
}

fn default_size_axis() -> String {
    "size".into()
}
fn default_step_axis() -> String {
    "step".into()
}

pub struct AlignmentSummary;

impl Kind for AlignmentSummary {
    type Params = SummaryParams;
    const NAME: &'static str = "alignment.summary";
    const VERSION: u32 = 2;
    const SUMMARY: &'static str =
        "a checkpoint sweep as one table (size x tokens x benchmark: score, competence, loss) and R^2 of alignment against competence";
    const INPUTS: &'static [&'static str] = &["scores"];
    const OUTPUTS: &'static [&'static str] = &["alignment", "fits", "summary"];

    fn validate(&self, p: &SummaryParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if p.size_axis == p.step_axis {
            errors.push(
                ParamError::new("step_axis", "`size_axis` and `step_axis` are the same").hint("name two matrix axes"),
            );
        }
        errors
    }
    fn run(&self, p: &SummaryParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let rows = gather(p, ctx)?;
        write(ctx, &rows)?;
        figures(ctx, &rows)
    }
}

/// One row of the alignment table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub benchmark: String,
    pub size: String,
    pub step: i64,
    pub tokens: Option<i64>,
    pub raw: f64,
    pub ceiling: f64,
    pub score: f64,
    pub formal: Option<f64>,
    pub functional: Option<f64>,
    pub loss: Option<f64>,
}

/// `role[a=1,b=x]` -> ("role", {a: "1", b: "x"}).
pub fn parse_role(role: &str) -> (&str, BTreeMap<String, String>) {
    let Some((base, rest)) = role.split_once('[') else { return (role, BTreeMap::new()) };
    let inner = rest.strip_suffix(']').unwrap_or(rest);
    let values = inner
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(axis, value)| (axis.to_string(), value.to_string()))
        .collect();
    (base, values)
}

fn agrees(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    a.iter().all(|(axis, value)| b.get(axis).is_none_or(|v| v == value))
}

fn failed(role: &str, stage: &str, what: String, hint: &str) -> StageError {
    StageError::failed(format!("alignment.summary: input `{role}` (stage `{stage}`): {what}"))
        .with_hint(hint.to_string())
}

fn float_column(batch: &RecordBatch, name: &str) -> Option<Vec<Option<f64>>> {
    let column = batch.column_by_name(name)?;
    let cast = arrow::compute::cast(column, &DataType::Float64).ok()?;
    Some(cast.as_primitive::<Float64Type>().iter().collect())
}

fn gather(p: &SummaryParams, ctx: &StageContext) -> Result<Vec<Row>, StageError> {
    let mut formal = Vec::new();
    let mut functional = Vec::new();
    let mut losses = Vec::new();
    let mut scores = Vec::new();
    for (role, input) in ctx.inputs.iter() {
        let (base, values) = parse_role(role);
        match base {
            b if b.starts_with("formal") => formal.push((values, competence(ctx, role)?)),
            b if b.starts_with("functional") => functional.push((values, competence(ctx, role)?)),
            "loss" => losses.push((values, role.clone())),
            b if b.starts_with("scores") => {
                let benchmark = input.stage.split('[').next().unwrap_or(&input.stage).to_string();
                scores.push((values, role.clone(), benchmark));
            }
            other => {
                return Err(StageError::failed(format!("alignment.summary: unknown input role `{other}`"))
                    .with_hint("roles: scores* (benchmark summaries), formal*, functional* (competence), loss"))
            }
        }
    }
    let mut rows = Vec::new();
    for (values, role, benchmark) in scores {
        let stage = &ctx.input(&role)?.stage;
        let hint = "give a benchmark's one-row summary with raw, ceiling and score (benchmark.sentences's `summary`), or evaluate's `summary` with repeats (mean_r, mean_cc_max, mean_r_normalized)";
        let (size, step) = match (values.get(&p.size_axis), values.get(&p.step_axis)) {
            (Some(size), Some(step)) => (size.clone(), step.clone()),
            _ => {
                return Err(failed(
                    &role,
                    stage,
                    format!("its matrix values {values:?} lack the axis `{}` or `{}`", p.size_axis, p.step_axis),
                    "gather with `scores: <stage>[*]` from a stage expanded over the size and step axes, or set size_axis / step_axis",
                ))
            }
        };
        let step: i64 = step.parse().map_err(|_| {
            failed(&role, stage, format!("step `{step}` is not an integer"), "the step axis lists checkpoint steps")
        })?;
        let batch = ctx.input_table(&role)?;
        let one = |name: &str| -> Result<f64, StageError> {
            float_column(&batch, name)
                .and_then(|v| v.first().copied().flatten())
                .ok_or_else(|| failed(&role, stage, format!("no value in column `{name}`"), hint))
        };
        let (raw, ceiling, score) = if batch.column_by_name("raw").is_none() && batch.column_by_name("mean_r").is_some()
        {
            // The story-listening path: evaluate's summary.
            (one("mean_r")?, one("mean_cc_max")?, one("mean_r_normalized")?)
        } else {
            (one("raw")?, one("ceiling")?, one("score")?)
        };
        // The mean over every matching input (e.g. minimal pairs and SyntaxGym).
        let find = |list: &Vec<(BTreeMap<String, String>, f64)>| {
            let matching: Vec<f64> = list.iter().filter(|(v, _)| agrees(v, &values)).map(|(_, a)| *a).collect();
            (!matching.is_empty()).then(|| matching.iter().sum::<f64>() / matching.len() as f64)
        };
        let mut loss = None;
        let mut tokens = None;
        if let Some((_, loss_role)) = losses.iter().find(|(v, _)| agrees(v, &values)) {
            let (l, per_step) = loss_at(ctx, loss_role, step)?;
            loss = l;
            tokens = per_step.map(|t| t * step);
        }
        rows.push(Row {
            benchmark,
            size,
            step,
            tokens,
            raw,
            ceiling,
            score,
            formal: find(&formal),
            functional: find(&functional),
            loss,
        });
    }
    rows.sort_by(|a, b| (&a.benchmark, &a.size, a.step).cmp(&(&b.benchmark, &b.size, b.step)));
    Ok(rows)
}

/// The `overall` accuracy of a competence table.
fn competence(ctx: &StageContext, role: &str) -> Result<f64, StageError> {
    let stage = ctx.input(role)?.stage.clone();
    let hint = "give a competence stage's `accuracy` table: source, suite, n, correct, accuracy, with a row of suite `overall`";
    let batch = ctx.input_table(role)?;
    let suite = batch.column_by_name("suite").ok_or_else(|| failed(role, &stage, "no column `suite`".into(), hint))?;
    let suite = arrow::compute::cast(suite, &DataType::Utf8).map_err(|e| failed(role, &stage, e.to_string(), hint))?;
    let accuracy =
        float_column(&batch, "accuracy").ok_or_else(|| failed(role, &stage, "no column `accuracy`".into(), hint))?;
    let row = suite
        .as_string::<i32>()
        .iter()
        .position(|s| s == Some("overall"))
        .ok_or_else(|| failed(role, &stage, "no row with suite `overall`".into(), hint))?;
    accuracy[row].ok_or_else(|| failed(role, &stage, "the overall accuracy is missing".into(), hint))
}

/// The validation loss at `step` and the tokens per step of a train.gpt
/// metrics input.
fn loss_at(ctx: &StageContext, role: &str, step: i64) -> Result<(Option<f64>, Option<i64>), StageError> {
    let input = ctx.input(role)?;
    let hint = "give train.gpt's `metrics` (`loss: <train stage>[*].metrics`)";
    let batch = ctx.input_table(role)?;
    let steps =
        batch.column_by_name("step").ok_or_else(|| failed(role, &input.stage, "no column `step`".into(), hint))?;
    let steps =
        arrow::compute::cast(steps, &DataType::Int64).map_err(|e| failed(role, &input.stage, e.to_string(), hint))?;
    let steps = steps.as_primitive::<Int64Type>();
    let val = float_column(&batch, "val_loss")
        .ok_or_else(|| failed(role, &input.stage, "no column `val_loss`".into(), hint))?;
    let mut loss = None;
    let mut best_step = i64::MIN;
    for (i, v) in val.iter().enumerate() {
        if steps.is_valid(i) && steps.value(i) <= step && steps.value(i) >= best_step {
            if let Some(v) = v {
                best_step = steps.value(i);
                loss = Some(*v);
            }
        }
    }
    let per_step = input.manifest.record.params.get("batch_tokens").and_then(Value::as_i64);
    Ok((loss, per_step))
}

/// Per benchmark: score against tokens seen (a line per size), and score
/// against formal and functional competence where given; the loss against
/// tokens seen once.
fn figures(ctx: &mut StageContext, rows: &[Row]) -> Result<(), StageError> {
    use crate::plot::{line_chart, Series};
    let x_of = |r: &Row| r.tokens.unwrap_or(r.step) as f64;
    let x_label = if rows.iter().all(|r| r.tokens.is_some()) { "tokens seen" } else { "step" };
    let mut sizes: Vec<&str> = rows.iter().map(|r| r.size.as_str()).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut benchmarks: Vec<&str> = rows.iter().map(|r| r.benchmark.as_str()).collect();
    benchmarks.dedup();
    let lines = |benchmark: &str, x: &dyn Fn(&Row) -> Option<f64>, y: &dyn Fn(&Row) -> Option<f64>| -> Vec<Series> {
        sizes
            .iter()
            .map(|&size| {
                let mut points: Vec<(f64, f64)> = rows
                    .iter()
                    .filter(|r| r.benchmark == benchmark && r.size == size)
                    .filter_map(|r| Some((x(r)?, y(r)?)))
                    .filter(|(a, b)| a.is_finite() && b.is_finite())
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series { name: format!("size {size}"), points }
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    };
    for &benchmark in &benchmarks {
        let series = lines(benchmark, &|r| Some(x_of(r)), &|r| Some(r.score));
        let svg =
            line_chart(&format!("{benchmark}: alignment by {x_label}"), x_label, "score / ceiling", &series, None);
        ctx.add_figure(&format!("{benchmark}_score"), &svg)?;
        for (name, get) in
            [("formal", (|r: &Row| r.formal) as fn(&Row) -> Option<f64>), ("functional", |r: &Row| r.functional)]
        {
            let series = lines(benchmark, &get, &|r| Some(r.score));
            if !series.is_empty() {
                let title = format!("{benchmark}: alignment against {name} competence");
                let svg =
                    line_chart(&title, &format!("{name} competence (accuracy)"), "score / ceiling", &series, None);
                ctx.add_figure(&format!("{benchmark}_{name}"), &svg)?;
            }
        }
    }
    if let Some(&first) = benchmarks.first() {
        let series = lines(first, &|r| Some(x_of(r)), &|r| r.loss);
        if !series.is_empty() {
            let svg = line_chart(&format!("validation loss by {x_label}"), x_label, "loss", &series, None);
            ctx.add_figure("loss", &svg)?;
        }
    }
    Ok(())
}

/// Least-squares line of y on x: (n, r^2, slope, intercept); NaN where
/// fewer than 2 points or x is constant.
pub fn fit_line(points: &[(f64, f64)]) -> (usize, f64, f64, f64) {
    let n = points.len();
    if n < 2 {
        return (n, f64::NAN, f64::NAN, f64::NAN);
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n as f64;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n as f64;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 0.0 {
        return (n, f64::NAN, f64::NAN, f64::NAN);
    }
    let slope = sxy / sxx;
    let r2 = if syy > 0.0 { sxy * sxy / (sxx * syy) } else { f64::NAN };
    (n, r2, slope, my - slope * mx)
}

fn write(ctx: &mut StageContext, rows: &[Row]) -> Result<(), StageError> {
    let strings = |f: fn(&Row) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as ArrayRef;
    let floats = |f: fn(&Row) -> Option<f64>| Arc::new(Float64Array::from_iter(rows.iter().map(f))) as ArrayRef;
    let alignment = table(vec![
        ("benchmark", strings(|r| &r.benchmark)),
        ("size", strings(|r| &r.size)),
        ("step", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.step)))),
        ("tokens", Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.tokens)))),
        ("raw", floats(|r| Some(r.raw))),
        ("ceiling", floats(|r| Some(r.ceiling))),
        ("score", floats(|r| Some(r.score))),
        ("formal", floats(|r| r.formal)),
        ("functional", floats(|r| r.functional)),
        ("loss", floats(|r| r.loss)),
    ]);
    ctx.write_table("alignment", &alignment)?;

    let mut benchmarks: Vec<&str> = rows.iter().map(|r| r.benchmark.as_str()).collect();
    benchmarks.dedup();
    let mut sizes: Vec<&str> = rows.iter().map(|r| r.size.as_str()).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let (mut f_bench, mut f_size, mut f_comp, mut f_n, mut f_r2, mut f_slope, mut f_icpt) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut s_bench, mut s_count, mut s_formal, mut s_functional) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let competences: [(&str, fn(&Row) -> Option<f64>); 2] =
        [("formal", |r| r.formal), ("functional", |r| r.functional)];
    for &benchmark in &benchmarks {
        let of_benchmark: Vec<&Row> = rows.iter().filter(|r| r.benchmark == benchmark).collect();
        s_bench.push(benchmark.to_string());
        s_count.push(of_benchmark.len() as i64);
        for (name, get) in competences {
            for size in sizes.iter().copied().chain(std::iter::once("all")) {
                let points: Vec<(f64, f64)> = of_benchmark
                    .iter()
                    .filter(|r| size == "all" || r.size == size)
                    .filter_map(|r| get(r).map(|c| (c, r.score)))
                    .filter(|(c, s)| c.is_finite() && s.is_finite())
                    .collect();
                if points.is_empty() {
                    continue;
                }
                let (n, r2, slope, intercept) = fit_line(&points);
                f_bench.push(benchmark.to_string());
                f_size.push(size.to_string());
                f_comp.push(name);
                f_n.push(n as i64);
                f_r2.push(r2);
                f_slope.push(slope);
                f_icpt.push(intercept);
                if size == "all" {
                    if name == "formal" {
                        s_formal.push(r2);
                    } else {
                        s_functional.push(r2);
                    }
                }
            }
        }
        if s_formal.len() < s_bench.len() {
            s_formal.push(f64::NAN);
        }
        if s_functional.len() < s_bench.len() {
            s_functional.push(f64::NAN);
        }
    }
    let fits = table(vec![
        ("benchmark", Arc::new(StringArray::from(f_bench)) as ArrayRef),
        ("size", Arc::new(StringArray::from(f_size))),
        ("competence", Arc::new(StringArray::from(f_comp))),
        ("n", Arc::new(Int64Array::from(f_n))),
        ("r2", Arc::new(Float64Array::from(f_r2))),
        ("slope", Arc::new(Float64Array::from(f_slope))),
        ("intercept", Arc::new(Float64Array::from(f_icpt))),
    ]);
    ctx.write_table("fits", &fits)?;
    let summary = table(vec![
        ("benchmark", Arc::new(StringArray::from(s_bench)) as ArrayRef),
        ("checkpoints", Arc::new(Int64Array::from(s_count))),
        ("r2_formal", Arc::new(Float64Array::from(s_formal))),
        ("r2_functional", Arc::new(Float64Array::from(s_functional))),
    ]);
    ctx.write_table("summary", &summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_carry_matrix_values() {
        let (base, values) = parse_role("scores[size=small,step=300]");
        assert_eq!(base, "scores");
        assert_eq!(values["size"], "small");
        assert_eq!(values["step"], "300");
        assert_eq!(parse_role("loss").0, "loss");
    }

    #[test]
    fn line_fit_matches_closed_form() {
        let points = [(0.0, 1.0), (1.0, 3.0), (2.0, 5.0), (3.0, 7.5)];
        let (n, r2, slope, intercept) = fit_line(&points);
        assert_eq!(n, 4);
        assert!((slope - 2.15).abs() < 1e-12 && (intercept - 0.9).abs() < 1e-12, "{slope} {intercept}");
        assert!(r2 > 0.99 && r2 < 1.0);
    }
}
