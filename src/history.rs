//! Run history: every `voxflow run` leaves one record in the store,
//! `runs/<pipeline>/<id>.json` (ids count up from 1 per pipeline), with
//! the time, the pipeline file's digest, the `--set` overrides, each stage's
//! key, status, params and summary metrics, and the run's outcome
//! ([`RunSummary`]). `voxflow runs` lists them, `voxflow diff` compares two
//! ([`diff`]), `report` and `compare` show one, and `gc` keeps the results
//! of the last few.
//!
//! A record is written once, with [`crate::store::write_atomic`], under the
//! pipeline's history lock (`locks/runs-<pipeline>.lock`), which also hands
//! out the ids, so two concurrent runs get two records. Growth is bounded:
//! only the newest [`KEPT_RECORDS`] records of a pipeline are kept.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::exec::{RunSummary, Status};
use crate::plan::{Pipeline, PlannedStage};
use crate::store::{Store, StoreError};

/// How many records of one pipeline the store keeps (the oldest go first).
pub const KEPT_RECORDS: usize = 100;

/// One run of a pipeline, as `runs/<pipeline>/<id>.json` holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// 1 for the first recorded run of the pipeline, then counting up.
    pub id: u64,
    pub started_at: String,
    /// The pipeline file, as an absolute path.
    pub file: PathBuf,
    /// BLAKE3 of the pipeline file's bytes when the run started.
    pub pipeline_digest: String,
    /// The `--set` overrides, as given.
    pub overrides: Vec<String>,
    /// What happened to each stage (keys, statuses, reasons, seconds).
    pub summary: RunSummary,
    /// Each stage's canonical params (defaults filled in), by stage name.
    pub params: BTreeMap<String, Value>,
    /// Each stage's summary metrics (its `summary` output's first row), by stage name.
    #[serde(default)]
    pub metrics: BTreeMap<String, BTreeMap<String, f64>>,
}

impl RunRecord {
    /// The key each stage of the run ended with (ran or cached), by stage name.
    pub fn result_keys(&self) -> BTreeMap<String, String> {
        self.summary
            .stages
            .iter()
            .filter(|s| matches!(s.status, Status::Ran | Status::Cached))
            .filter_map(|s| Some((s.name.clone(), s.key.clone()?)))
            .collect()
    }

    /// The overrides as one line: `--set a=1 --set b=2`, or `(none)`.
    pub fn overrides_text(&self) -> String {
        if self.overrides.is_empty() {
            "(none)".into()
        } else {
            self.overrides.iter().map(|o| format!("--set {o}")).collect::<Vec<_>>().join(" ")
        }
    }
}

/// Builds the record of a finished run (its id is set by [`save`]).
pub fn record(
    pipeline: &Pipeline,
    store: &Store,
    summary: &RunSummary,
    overrides: &[String],
    started_at: String,
) -> RunRecord {
    let pipeline_digest =
        fs::read(&pipeline.file).map(|bytes| blake3::hash(&bytes).to_hex()[..32].to_string()).unwrap_or_default();
    let mut params = BTreeMap::new();
    let mut metrics = BTreeMap::new();
    let stages: HashMap<&str, &PlannedStage> = pipeline.stages.iter().map(|s| (s.name.as_str(), s)).collect();
    for outcome in &summary.stages {
        let Some(stage) = stages.get(outcome.name.as_str()) else { continue };
        params.insert(stage.name.clone(), stage.params.clone());
        if !matches!(outcome.status, Status::Ran | Status::Cached) {
            continue;
        }
        // The run noted which results have a `summary` (no manifest read for the others).
        let (Some(key), Some(file)) = (outcome.key.as_deref(), outcome.summary.as_deref()) else { continue };
        if let Some(values) = summary_values(&store.object_dir(key).join(file)) {
            metrics.insert(stage.name.clone(), values);
        }
    }
    RunRecord {
        id: 0,
        started_at,
        file: fs::canonicalize(&pipeline.file).unwrap_or_else(|_| pipeline.file.clone()),
        pipeline_digest,
        overrides: overrides.to_vec(),
        summary: summary.clone(),
        params,
        metrics,
    }
}

/// The numeric columns of the first row of the table at `path`.
fn summary_values(path: &std::path::Path) -> Option<BTreeMap<String, f64>> {
    let batch = crate::artifact::read_batch(path).ok()?;
    if batch.num_rows() == 0 {
        return None;
    }
    let values = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter_map(|(field, column)| Some((field.name().clone(), crate::compare::numeric_at(column, 0)??)))
        .collect();
    Some(values)
}

fn history_dir(store: &Store, pipeline: &str) -> PathBuf {
    store.root().join("runs").join(pipeline)
}

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.display().to_string(), source }
}

/// Writes `record` as the pipeline's next run, sets its id and returns it;
/// removes the oldest records beyond [`KEPT_RECORDS`].
pub fn save(store: &Store, record: &mut RunRecord) -> Result<u64, StoreError> {
    let pipeline = record.summary.pipeline.clone();
    let dir = history_dir(store, &pipeline);
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let lock_path = store.root().join("locks").join(format!("runs-{pipeline}.lock"));
    let lock = File::create(&lock_path).map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;
    let ids = record_ids(store, &pipeline);
    record.id = ids.last().copied().unwrap_or(0) + 1;
    let text = serde_json::to_vec_pretty(record).expect("a run record serialises");
    crate::store::write_atomic(&dir.join(format!("{}.json", record.id)), &text)?;
    let excess = (ids.len() + 1).saturating_sub(KEPT_RECORDS);
    for id in ids.iter().take(excess) {
        let path = dir.join(format!("{id}.json"));
        fs::remove_file(&path).map_err(io(&path))?;
    }
    Ok(record.id)
}

/// The ids of the pipeline's records, oldest first.
fn record_ids(store: &Store, pipeline: &str) -> Vec<u64> {
    let Ok(entries) = fs::read_dir(history_dir(store, pipeline)) else { return Vec::new() };
    let mut ids: Vec<u64> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

/// The run `id` of the pipeline, if its record is there and reads.
pub fn load(store: &Store, pipeline: &str, id: u64) -> Option<RunRecord> {
    let bytes = fs::read(history_dir(store, pipeline).join(format!("{id}.json"))).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Every readable record of the pipeline, oldest first.
pub fn list(store: &Store, pipeline: &str) -> Vec<RunRecord> {
    record_ids(store, pipeline).into_iter().filter_map(|id| load(store, pipeline, id)).collect()
}

/// The pipeline's last recorded run.
pub fn last(store: &Store, pipeline: &str) -> Option<RunRecord> {
    record_ids(store, pipeline).into_iter().rev().find_map(|id| load(store, pipeline, id))
}

/// The last recorded run of the pipeline made from `file` (several pipeline
/// files can share a name and a store).
pub fn last_of_file(store: &Store, pipeline: &str, file: &std::path::Path) -> Option<RunRecord> {
    let file = fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    record_ids(store, pipeline).into_iter().rev().filter_map(|id| load(store, pipeline, id)).find(|r| r.file == file)
}

/// The run ids the store has for the pipeline, oldest first.
pub fn ids(store: &Store, pipeline: &str) -> Vec<u64> {
    record_ids(store, pipeline)
}

/// A param of one stage that differs between two runs (`None`: absent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamDiff {
    pub stage: String,
    /// Dotted path (`folds.k`).
    pub param: String,
    pub a: Option<Value>,
    pub b: Option<Value>,
}

/// A metric of one stage in two runs, and its change (`b - a`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricDiff {
    pub stage: String,
    pub metric: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub change: Option<f64>,
}

/// What differs between runs `a` and `b`: params (only those that differ)
/// and every summary metric side by side.
#[derive(Debug, Clone, Serialize)]
pub struct RunDiff {
    pub a: u64,
    pub b: u64,
    pub params: Vec<ParamDiff>,
    pub metrics: Vec<MetricDiff>,
}

/// Compares two runs stage by stage (stages matched by name).
pub fn diff(a: &RunRecord, b: &RunRecord) -> RunDiff {
    let mut params = Vec::new();
    let stages: std::collections::BTreeSet<&String> = a.params.keys().chain(b.params.keys()).collect();
    for stage in stages {
        let (mut flat_a, mut flat_b) = (BTreeMap::new(), BTreeMap::new());
        if let Some(value) = a.params.get(stage) {
            flatten("", value, &mut flat_a);
        }
        if let Some(value) = b.params.get(stage) {
            flatten("", value, &mut flat_b);
        }
        let names: std::collections::BTreeSet<&String> = flat_a.keys().chain(flat_b.keys()).collect();
        for name in names {
            let (x, y) = (flat_a.get(name), flat_b.get(name));
            if x != y {
                params.push(ParamDiff { stage: stage.clone(), param: name.clone(), a: x.cloned(), b: y.cloned() });
            }
        }
    }
    let mut metrics = Vec::new();
    let stages: std::collections::BTreeSet<&String> = a.metrics.keys().chain(b.metrics.keys()).collect();
    for stage in stages {
        let empty = BTreeMap::new();
        let (ma, mb) = (a.metrics.get(stage).unwrap_or(&empty), b.metrics.get(stage).unwrap_or(&empty));
        let names: std::collections::BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
        for name in names {
            let (x, y) = (ma.get(name).copied(), mb.get(name).copied());
            let change = x.zip(y).map(|(x, y)| y - x);
            metrics.push(MetricDiff { stage: stage.clone(), metric: name.clone(), a: x, b: y, change });
        }
    }
    RunDiff { a: a.id, b: b.id, params, metrics }
}

/// Nested objects as dotted paths; arrays and scalars are leaves.
fn flatten(path: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                flatten(&child_path, child, out);
            }
        }
        other => {
            out.insert(path.to_string(), other.clone());
        }
    }
}

/// A number with 4 significant digits (`0.5946`, `1234`, `1.235e+05`).
pub fn significant(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    // Counts read as counts.
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{}", value as i64);
    }
    let magnitude = value.abs().log10().floor() as i32;
    if !(-4..6).contains(&magnitude) {
        return format!("{value:.3e}");
    }
    let decimals = (3 - magnitude).max(0) as usize;
    format!("{value:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(id: u64, params: Value, mean_r: f64) -> RunRecord {
        RunRecord {
            id,
            started_at: String::new(),
            file: PathBuf::from("p.yaml"),
            pipeline_digest: String::new(),
            overrides: Vec::new(),
            summary: RunSummary {
                pipeline: "p".into(),
                file: PathBuf::from("p.yaml"),
                finished_at: String::new(),
                seconds: 0.0,
                stages: Vec::new(),
                cancelled: false,
            },
            params: BTreeMap::from([("fit".to_string(), params)]),
            metrics: BTreeMap::from([("score".to_string(), BTreeMap::from([("mean_r".to_string(), mean_r)]))]),
        }
    }

    #[test]
    fn diff_lists_changed_params_by_path_and_every_metric_with_its_change() {
        let a = run(1, json!({"alphas": [1, 10], "folds": {"by": "story", "k": 5}}), 0.5);
        let b = run(2, json!({"alphas": [10], "folds": {"by": "story", "k": 6}}), 0.25);
        let d = diff(&a, &b);
        assert_eq!(
            d.params.iter().map(|p| (p.param.as_str(), p.b.clone())).collect::<Vec<_>>(),
            [("alphas", Some(json!([10]))), ("folds.k", Some(json!(6)))]
        );
        assert_eq!(d.metrics.len(), 1);
        assert_eq!((d.metrics[0].a, d.metrics[0].b, d.metrics[0].change), (Some(0.5), Some(0.25), Some(-0.25)));
    }

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(significant(0.594_612_3), "0.5946");
        assert_eq!(significant(-0.001_423_9), "-0.001424");
        assert_eq!(significant(1234.56), "1235");
        assert_eq!(significant(12.0), "12");
        assert_eq!(significant(12.5), "12.50");
        assert_eq!(significant(1.5e7), "15000000");
        assert_eq!(significant(1.25e-7), "1.250e-7");
        assert_eq!(significant(0.0), "0");
    }
}
