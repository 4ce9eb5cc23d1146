//! Export of recorded runs to an MLflow tracking server
//! (`voxflow export mlflow`), through MLflow's REST API (`/api/2.0/mlflow/`),
//! so that runs land in whatever backend the server has (its default is now
//! a SQLite database; the old `./mlruns` file store is not written).
//!
//! One voxflow run becomes one MLflow run (the parent, named `<pipeline>
//! run N`, with the `--set` overrides as params) and one nested MLflow run
//! per stage instance (tag `mlflow.parentRunId`), named after the stage,
//! with:
//! - params: the stage's canonical params flattened by dotted path (`fit.alphas`
//!   style paths inside the stage: `alphas`, `spatial.alpha`), and its matrix
//!   values as `matrix.<axis>`;
//! - metrics: its summary metrics (step 0) and, for a stage with a `metrics`
//!   table that has a `step` column (the training kinds), every other
//!   numeric column as a curve over `step`;
//! - tags: `voxflow.pipeline`, `voxflow.file`, `voxflow.run`, `voxflow.stage`,
//!   `voxflow.kind`, `voxflow.key`, `voxflow.status`, `voxflow.export`.
//!
//! Exporting twice does not duplicate: every MLflow run of one voxflow run
//! carries the same `voxflow.export` tag (a digest of the store, pipeline,
//! run id and start time), the export first searches for it and creates only
//! the stage runs that are missing. A stage run left `RUNNING` by an export
//! that was killed half-way is deleted and written again.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::exec::Status;
use crate::history::RunRecord;
use crate::store::{Lookup, Store};

/// MLflow's limits on one `log-batch` request and on a param value
/// (mlflow/utils/validation.py).
const BATCH_METRICS: usize = 1000;
const BATCH_PARAMS: usize = 100;
const MAX_PARAM_VALUE: usize = 6000;
const MAX_KEY: usize = 250;

#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach the MLflow server at {uri}: {message}")]
    Unreachable { uri: String, message: String },
    #[error("MLflow answered {status} to {endpoint}: {message}")]
    Server { endpoint: String, status: u16, message: String },
}

/// Where and how to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// `http(s)://host:port` of the tracking server.
    pub tracking_uri: String,
    /// The MLflow experiment (created when missing).
    pub experiment: String,
}

/// What an export did, for the CLI to print.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExportSummary {
    pub experiment_id: String,
    pub parent_run_id: String,
    /// Stage runs created by this export.
    pub created: Vec<String>,
    /// Stage runs that an earlier export had already written.
    pub existing: Vec<String>,
    /// Stage runs an interrupted export had left half-written, written again.
    pub replaced: Vec<String>,
    /// Values MLflow cannot hold (non-finite metrics, over-long params), skipped or cut.
    pub warnings: Vec<String>,
}

/// A checked tracking URI: `http://` or `https://`, without a trailing slash.
pub fn check_uri(uri: &str) -> Result<String, MlflowError> {
    let trimmed = uri.trim().trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return Ok(trimmed.to_string());
    }
    let what = if trimmed.starts_with("databricks") {
        "a Databricks workspace URI"
    } else if trimmed.starts_with("file:") || !trimmed.contains("://") {
        "a local directory (MLflow's legacy file store)"
    } else {
        "not an http(s) URI"
    };
    Err(MlflowError::Usage(format!(
        "tracking URI `{uri}` is {what}; voxflow exports through an MLflow tracking server's REST API"
    )))
}

/// A client of one tracking server.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
}

impl Client {
    /// Authentication as MLflow's own clients read it: `MLFLOW_TRACKING_TOKEN`
    /// (bearer), else `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD` (basic).
    pub fn new(uri: &str) -> Result<Client, MlflowError> {
        let base = check_uri(uri)?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let auth = match (
            std::env::var("MLFLOW_TRACKING_TOKEN").ok().filter(|t| !t.is_empty()),
            std::env::var("MLFLOW_TRACKING_USERNAME").ok(),
            std::env::var("MLFLOW_TRACKING_PASSWORD").ok(),
        ) {
            (Some(token), _, _) => Some(format!("Bearer {token}")),
            (None, Some(user), Some(password)) => {
                use base64::Engine;
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                ))
            }
            _ => None,
        };
        Ok(Client { agent, base, auth })
    }

    fn url(&self, endpoint: &str) -> String {
        format!("{}/api/2.0/mlflow/{endpoint}", self.base)
    }

    fn answer(
        &self,
        endpoint: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, MlflowError> {
        let mut response =
            result.map_err(|e| MlflowError::Unreachable { uri: self.base.clone(), message: e.to_string() })?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message =
            match (parsed.get("error_code").and_then(Value::as_str), parsed.get("message").and_then(Value::as_str)) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                _ => text.chars().take(300).collect(),
            };
        Err(MlflowError::Server { endpoint: endpoint.to_string(), status, message })
    }

    fn post(&self, endpoint: &str, body: &Value) -> Result<Value, MlflowError> {
        let mut request = self.agent.post(&self.url(endpoint));
        if let Some(auth) = &self.auth {
            request = request.header("Authorization", auth);
        }
        self.answer(endpoint, request.send_json(body))
    }

    /// The experiment's id, creating it when the server has none of that name.
    pub fn experiment_id(&self, name: &str) -> Result<String, MlflowError> {
        let endpoint = "experiments/get-by-name";
        let mut request = self.agent.get(&self.url(endpoint)).query("experiment_name", name);
        if let Some(auth) = &self.auth {
            request = request.header("Authorization", auth);
        }
        match self.answer(endpoint, request.call()) {
            Ok(found) => {
                let experiment = &found["experiment"];
                if experiment["lifecycle_stage"].as_str() == Some("deleted") {
                    return Err(MlflowError::Usage(format!(
                        "MLflow experiment `{name}` is deleted; restore it (`mlflow experiments restore`) or export to another with --experiment"
                    )));
                }
                Ok(experiment["experiment_id"].as_str().unwrap_or_default().to_string())
            }
            Err(MlflowError::Server { status: 404, .. }) => {
                let created = self.post("experiments/create", &json!({ "name": name }))?;
                Ok(created["experiment_id"].as_str().unwrap_or_default().to_string())
            }
            Err(other) => Err(other),
        }
    }

    /// Every active run of the experiment with tag `key` = `value`.
    pub fn runs_tagged(&self, experiment_id: &str, key: &str, value: &str) -> Result<Vec<Value>, MlflowError> {
        let mut runs = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut body = json!({
                "experiment_ids": [experiment_id],
                "filter": format!("tags.`{key}` = '{value}'"),
                "max_results": 1000,
            });
            if let Some(token) = &page_token {
                body["page_token"] = json!(token);
            }
            let page = self.post("runs/search", &body)?;
            runs.extend(page["runs"].as_array().cloned().unwrap_or_default());
            match page["next_page_token"].as_str() {
                Some(token) if !token.is_empty() => page_token = Some(token.to_string()),
                _ => return Ok(runs),
            }
        }
    }

    fn create_run(
        &self,
        experiment_id: &str,
        name: &str,
        start_ms: i64,
        tags: &[(String, String)],
    ) -> Result<String, MlflowError> {
        let tags: Vec<Value> = tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        let created = self.post(
            "runs/create",
            &json!({"experiment_id": experiment_id, "run_name": name, "start_time": start_ms, "tags": tags}),
        )?;
        Ok(created["run"]["info"]["run_id"].as_str().unwrap_or_default().to_string())
    }

    /// Params and metrics in batches within MLflow's per-request limits.
    fn log(&self, run_id: &str, params: &[(String, String)], metrics: &[Metric]) -> Result<(), MlflowError> {
        for chunk in params.chunks(BATCH_PARAMS) {
            let params: Vec<Value> = chunk.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
            self.post("runs/log-batch", &json!({"run_id": run_id, "params": params}))?;
        }
        for chunk in metrics.chunks(BATCH_METRICS) {
            let metrics: Vec<Value> = chunk
                .iter()
                .map(|m| json!({"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step}))
                .collect();
            self.post("runs/log-batch", &json!({"run_id": run_id, "metrics": metrics}))?;
        }
        Ok(())
    }

    fn finish(&self, run_id: &str, status: &str, end_ms: i64) -> Result<(), MlflowError> {
        self.post("runs/update", &json!({"run_id": run_id, "status": status, "end_time": end_ms})).map(|_| ())
    }

    fn delete(&self, run_id: &str) -> Result<(), MlflowError> {
        self.post("runs/delete", &json!({"run_id": run_id})).map(|_| ())
    }
}

/// One metric value.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
}

/// The id every MLflow run of this voxflow run is tagged with.
pub fn export_id(store: &Store, record: &RunRecord) -> String {
    let root = std::fs::canonicalize(store.root()).unwrap_or_else(|_| store.root().to_path_buf());
    let text = format!("{}\n{}\n{}\n{}", root.display(), record.summary.pipeline, record.id, record.started_at);
    blake3::hash(text.as_bytes()).to_hex()[..24].to_string()
}

/// `params` flattened by dotted path; arrays and scalars as compact JSON
/// (strings as they are).
pub fn flatten_params(params: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, value) in map {
                    let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    walk(&path, value, out);
                }
            }
            Value::String(s) => out.push((prefix.to_string(), s.clone())),
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", params, &mut out);
    out.retain(|(k, _)| !k.is_empty());
    out
}

fn millis(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn mlflow_status(status: Status) -> &'static str {
    match status {
        Status::Ran | Status::Cached | Status::Fresh => "FINISHED",
        Status::Failed => "FAILED",
        Status::Skipped | Status::Cancelled | Status::Dirty => "KILLED",
    }
}

/// The curves of a stage's `metrics` table: every numeric column but `step`
/// against `step`, one point per row.
pub fn training_curves(store: &Store, key: &str, timestamp: i64) -> Vec<Metric> {
    let Lookup::Fresh(manifest) = store.lookup(key) else { return Vec::new() };
    let Some(entry) = manifest.outputs.get("metrics") else { return Vec::new() };
    let Ok(batch) = crate::artifact::read_batch(&store.object_dir(key).join(&entry.file)) else { return Vec::new() };
    let Some(step_index) = batch.schema().index_of("step").ok() else { return Vec::new() };
    let steps = batch.column(step_index);
    let mut out = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if field.name() == "step" {
            continue;
        }
        for row in 0..batch.num_rows() {
            let (Some(Some(step)), Some(Some(value))) =
                (crate::compare::numeric_at(steps, row), crate::compare::numeric_at(column, row))
            else {
                continue;
            };
            out.push(Metric { key: field.name().clone(), value, timestamp, step: step as i64 });
        }
    }
    out
}

/// MLflow's rules for a key: at most 250 characters of letters, digits,
/// `_ - . / space`; anything else becomes `_`.
fn clean_key(key: &str) -> String {
    let cleaned: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() || "_-./ ".contains(c) { c } else { '_' }).collect();
    cleaned.chars().take(MAX_KEY).collect()
}

/// Exports `record` (a run of `pipeline`'s store) to the server.
pub fn export(store: &Store, record: &RunRecord, options: &ExportOptions) -> Result<ExportSummary, MlflowError> {
    let client = Client::new(&options.tracking_uri)?;
    let experiment_id = client.experiment_id(&options.experiment)?;
    let export = export_id(store, record);
    let pipeline = &record.summary.pipeline;
    let start = millis(&record.started_at);
    let end = millis(&record.summary.finished_at).max(start);
    let mut summary = ExportSummary { experiment_id: experiment_id.clone(), ..Default::default() };

    let existing = client.runs_tagged(&experiment_id, "voxflow.export", &export)?;
    let tag = |run: &Value, key: &str| -> Option<String> {
        run["data"]["tags"]
            .as_array()?
            .iter()
            .find(|t| t["key"].as_str() == Some(key))
            .and_then(|t| t["value"].as_str().map(str::to_string))
    };
    let mut parent_id = None;
    let mut stage_runs: BTreeMap<String, (String, String)> = BTreeMap::new();
    for run in &existing {
        let id = run["info"]["run_id"].as_str().unwrap_or_default().to_string();
        let status = run["info"]["status"].as_str().unwrap_or_default().to_string();
        match tag(run, "voxflow.stage") {
            Some(stage) => {
                stage_runs.insert(stage, (id, status));
            }
            None => parent_id = Some(id),
        }
    }

    let common = vec![
        ("voxflow.export".to_string(), export.clone()),
        ("voxflow.pipeline".to_string(), pipeline.clone()),
        ("voxflow.file".to_string(), record.file.display().to_string()),
        ("voxflow.run".to_string(), record.id.to_string()),
        ("mlflow.source.name".to_string(), record.file.display().to_string()),
    ];
    let parent_id = match parent_id {
        Some(id) => id,
        None => {
            let mut tags = common.clone();
            tags.push(("voxflow.overrides".into(), record.overrides_text()));
            tags.push(("voxflow.pipeline_digest".into(), record.pipeline_digest.clone()));
            let id = client.create_run(&experiment_id, &format!("{pipeline} run {}", record.id), start, &tags)?;
            let params: Vec<(String, String)> = record
                .overrides
                .iter()
                .filter_map(|o| o.split_once('='))
                .map(|(k, v)| (clean_key(&format!("set.{k}")), v.to_string()))
                .collect();
            let metrics = vec![
                Metric { key: "seconds".into(), value: record.summary.seconds, timestamp: end, step: 0 },
                Metric {
                    key: "stages_ran".into(),
                    value: record.summary.count(Status::Ran) as f64,
                    timestamp: end,
                    step: 0,
                },
                Metric {
                    key: "stages_failed".into(),
                    value: record.summary.count(Status::Failed) as f64,
                    timestamp: end,
                    step: 0,
                },
            ];
            client.log(&id, &params, &metrics)?;
            id
        }
    };
    summary.parent_run_id = parent_id.clone();

    for stage in &record.summary.stages {
        if let Some((id, status)) = stage_runs.get(&stage.name) {
            if status != "RUNNING" {
                summary.existing.push(stage.name.clone());
                continue;
            }
            client.delete(id)?;
            summary.replaced.push(stage.name.clone());
        } else {
            summary.created.push(stage.name.clone());
        }
        let mut tags = common.clone();
        tags.push(("mlflow.parentRunId".into(), parent_id.clone()));
        tags.push(("voxflow.stage".into(), stage.name.clone()));
        tags.push(("voxflow.kind".into(), stage.kind.clone()));
        tags.push(("voxflow.status".into(), format!("{:?}", stage.status).to_lowercase()));
        if let Some(key) = &stage.key {
            tags.push(("voxflow.key".into(), key.clone()));
        }
        if !stage.reason.is_empty() {
            tags.push(("voxflow.reason".into(), stage.reason.chars().take(5000).collect()));
        }
        let id = client.create_run(&experiment_id, &stage.name, start, &tags)?;

        let mut params = Vec::new();
        if let Some(stage_params) = record.params.get(&stage.name) {
            params.extend(flatten_params(stage_params));
        }
        for (axis, value) in &stage.matrix {
            params.push((format!("matrix.{axis}"), crate::plan::display_value(value)));
        }
        let params: Vec<(String, String)> = params
            .into_iter()
            .map(|(k, v)| {
                let k = clean_key(&k);
                if v.chars().count() > MAX_PARAM_VALUE {
                    summary.warnings.push(format!("{}: param `{k}` cut to {MAX_PARAM_VALUE} characters", stage.name));
                    (k, v.chars().take(MAX_PARAM_VALUE).collect())
                } else {
                    (k, v)
                }
            })
            .collect();

        let stage_end = start + (stage.seconds * 1000.0) as i64;
        let mut metrics: Vec<Metric> = record
            .metrics
            .get(&stage.name)
            .into_iter()
            .flatten()
            .map(|(k, v)| Metric { key: clean_key(k), value: *v, timestamp: stage_end, step: 0 })
            .collect();
        if let Some(key) = &stage.key {
            metrics.extend(training_curves(store, key, stage_end).into_iter().map(|mut m| {
                m.key = clean_key(&format!("train.{}", m.key));
                m
            }));
        }
        let before = metrics.len();
        metrics.retain(|m| m.value.is_finite());
        if metrics.len() < before {
            summary.warnings.push(format!(
                "{}: {} non-finite metric values left out",
                stage.name,
                before - metrics.len()
            ));
        }
        client.log(&id, &params, &metrics)?;
        client.finish(&id, mlflow_status(stage.status), stage_end)?;
    }
    let status = if record.summary.failed() {
        "FAILED"
    } else if record.summary.cancelled {
        "KILLED"
    } else {
        "FINISHED"
    };
    client.finish(&parent_id, status, end)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_flatten_by_dotted_path() {
        let params =
            json!({"alphas": [1, 10], "spatial": {"alpha": 2.5, "radius": 5}, "method": "lanczos", "empty": {}});
        let flat: BTreeMap<String, String> = flatten_params(&params).into_iter().collect();
        assert_eq!(flat["alphas"], "[1,10]");
        assert_eq!(flat["spatial.alpha"], "2.5");
        assert_eq!(flat["spatial.radius"], "5");
        assert_eq!(flat["method"], "lanczos");
        assert_eq!(flat["empty"], "{}");
        assert_eq!(flat.len(), 5);
    }

    #[test]
    fn only_server_uris_are_taken() {
        assert_eq!(check_uri("http://127.0.0.1:5000/").unwrap(), "http://127.0.0.1:5000");
        assert!(check_uri("https://mlflow.lab.org").is_ok());
        for bad in ["./mlruns", "file:///tmp/mlruns", "databricks", "sqlite:///mlflow.db"] {
            let error = check_uri(bad).unwrap_err().to_string();
            assert!(error.contains(bad) && error.contains("REST API"), "{error}");
        }
    }

    #[test]
    fn keys_follow_mlflow_rules() {
        assert_eq!(clean_key("matrix.layer"), "matrix.layer");
        assert_eq!(clean_key("r[0]:mean"), "r_0__mean");
        assert_eq!(clean_key(&"x".repeat(300)).len(), MAX_KEY);
    }

    #[test]
    fn rfc3339_times_become_milliseconds() {
        assert_eq!(millis("1970-01-01T00:00:01Z"), 1000);
        assert_eq!(millis("2026-12-03T18:35:05Z"), 1_796_322_905_000);
        assert_eq!(millis("not a time"), 0);
    }
}
