//! The scheduler: computes keys in dependency order, takes what the store
//! already has, and runs the rest on a thread pool of `-j` slots (GPU stages
//! also take one of the GPU slots). It is the only owner of the ready queue;
//! progress goes out through a [`Reporter`], never to the terminal directly.
//!
//! Failure: a failing stage caches nothing, its dependents are skipped,
//! independent branches finish (or nothing new starts with `fail_fast`).
//! Cancellation (Ctrl-C) stops launching, asks running stages to stop, and
//! returns with those stages marked cancelled.
//!
//! Here: what a run reports ([`StageOutcome`], [`RunSummary`]), [`plan`],
//! and one stage's build (the `Job` that both the loop and [`exec_stage`]
//! use). The loop of [`run_with`] is in `schedule.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::key::{self, KeyRecord, Reason};
use crate::plan::{Pipeline, PlannedStage};
use crate::stage::{InputArtifact, StageContext, StageError};
use crate::store::{combined_digest, Lookup, Manifest, OutputEntry, StageState, Store};

mod schedule;
pub mod slurm;

pub use schedule::{run, run_with};

/// Receives what happens during a run. Implemented by the binary (progress
/// bars or plain lines); the library never prints.
pub trait Reporter: Sync {
    fn start(&self, _pipeline: &str, _stages: usize) {}
    fn stage_started(&self, _name: &str) {}
    fn stage_progress(&self, _name: &str, _done: u64, _total: u64) {}
    /// A line about where a running stage stands ("resuming from step 500").
    fn stage_note(&self, _name: &str, _text: &str) {}
    /// What a running stage is doing while it has no count ("loading model").
    fn stage_phase(&self, _name: &str, _text: &str) {}
    /// The unit of a running stage's counts ("words").
    fn stage_unit(&self, _name: &str, _unit: &str) {}
    fn stage_finished(&self, _outcome: &StageOutcome) {}
}

/// Runs stages outside this process (for example as cluster jobs that call
/// `voxflow exec`) and returns once the stage's result is in the store or the
/// job failed. The remote side takes the key's lock and writes the result
/// through the same atomic store path as a local run.
pub trait RemoteExecutor: Sync {
    fn run_stage(&self, request: &RemoteRequest<'_>) -> Result<(), StageError>;
}

/// What a [`RemoteExecutor`] gets for one stage.
pub struct RemoteRequest<'a> {
    pub pipeline: &'a Pipeline,
    pub stage: &'a PlannedStage,
    pub key: &'a str,
    pub store: &'a Store,
    pub cancel: &'a AtomicBool,
    /// Rebuild even if the store has the result (`run --force`).
    pub force: bool,
    /// Progress the remote side reports (a resumable stage's
    /// `work/<key>/progress.json` in the shared store).
    pub progress: &'a (dyn Fn(u64, u64) + Sync),
}

/// A reporter that ignores everything.
pub struct Silent;
impl Reporter for Silent {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Plan: the store has the result.
    Fresh,
    /// Plan: the stage would run.
    Dirty,
    Ran,
    Cached,
    Failed,
    Skipped,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Fresh => "fresh",
            Status::Dirty => "dirty",
            Status::Ran => "ran",
            Status::Cached => "cached",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Cancelled => "cancelled",
        }
    }
}

/// What happened to one stage (or, for a plan, what would).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageOutcome {
    pub name: String,
    pub kind: String,
    pub key: Option<String>,
    pub status: Status,
    /// The reasons, rendered as one sentence.
    pub reason: String,
    pub reasons: Vec<Reason>,
    pub seconds: f64,
    pub matrix: BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hint: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub warnings: Vec<String>,
    /// The file of the result's `summary` output, if it has one (set by the
    /// run, for its history record; not serialised).
    #[serde(skip)]
    pub summary: Option<String>,
}

/// Which stages to rebuild even when their results are cached.
#[derive(Debug, Clone, Default)]
pub enum Force {
    #[default]
    Nothing,
    All,
    Stages(BTreeSet<usize>),
}

impl Force {
    fn covers(&self, index: usize) -> bool {
        match self {
            Force::Nothing => false,
            Force::All => true,
            Force::Stages(set) => set.contains(&index),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub jobs: usize,
    pub gpus: usize,
    pub force: Force,
    pub fail_fast: bool,
    /// Run only these stages and what they need (all when `None`).
    pub targets: Option<Vec<usize>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { jobs: default_jobs(), gpus: 0, force: Force::Nothing, fail_fast: false, targets: None }
    }
}

pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub pipeline: String,
    pub file: PathBuf,
    pub finished_at: String,
    pub seconds: f64,
    pub stages: Vec<StageOutcome>,
    pub cancelled: bool,
}

impl RunSummary {
    pub fn count(&self, status: Status) -> usize {
        self.stages.iter().filter(|s| s.status == status).count()
    }

    pub fn failed(&self) -> bool {
        self.stages.iter().any(|s| s.status == Status::Failed)
    }
}

/// The key record of `stage`, whose upstream results must be known
/// ([`key::record`] with the digests of those results).
pub fn key_record(
    stage: &PlannedStage,
    store: &Store,
    upstream: &[Option<Arc<Manifest>>],
) -> Result<KeyRecord, String> {
    let inputs = key::input_digests(stage, upstream)?.ok_or("upstream result missing")?;
    key::record(stage, store, Some(inputs))
}

/// The inputs of `stage` as the store holds them; its upstream results must be known.
fn input_artifacts(
    pipeline: &Pipeline,
    store: &Store,
    stage: &PlannedStage,
    upstream: &[Option<Arc<Manifest>>],
) -> BTreeMap<String, InputArtifact> {
    stage
        .inputs
        .iter()
        .map(|input| {
            let manifest = upstream[input.upstream].clone().expect("upstream results are known before a stage runs");
            let artifact = InputArtifact {
                stage: pipeline.stages[input.upstream].name.clone(),
                dir: store.object_dir(&manifest.key),
                manifest,
                output: input.output.clone(),
            };
            (input.role.clone(), artifact)
        })
        .collect()
}

/// Why a stage with `record` (key `key`) has no usable result.
fn dirty_reasons(
    pipeline: &Pipeline,
    stage: &PlannedStage,
    previous: Option<&StageState>,
    record: &KeyRecord,
    key: &str,
    lookup: &Lookup,
) -> Vec<Reason> {
    if let Lookup::Damaged(detail) = lookup {
        return vec![Reason::OutputMissing { detail: detail.clone() }];
    }
    match previous {
        None => vec![Reason::New],
        Some(previous) if previous.key == key => {
            vec![Reason::OutputMissing { detail: "the result was removed from the store".into() }]
        }
        Some(previous) => {
            let reasons = key::explain_stage(&pipeline.base_dir, stage, &previous.record, record);
            if reasons.is_empty() {
                vec![Reason::New]
            } else {
                reasons
            }
        }
    }
}

/// Reasons shown in a stage's one-line `reason`; `reasons` (and `voxflow
/// why`) keep every one.
const SHOWN_REASONS: usize = 4;

/// The one-line reason: every reason up to [`SHOWN_REASONS`]; past that the
/// first three and a count (a summary over a 60-stage sweep would
/// otherwise print 60 changed inputs on one line).
fn render(reasons: &[Reason]) -> String {
    let mut shown: Vec<String> = reasons.iter().map(ToString::to_string).collect();
    if shown.len() > SHOWN_REASONS {
        let more = shown.len() - (SHOWN_REASONS - 1);
        shown.truncate(SHOWN_REASONS - 1);
        shown.push(format!("and {more} more (`voxflow why` lists every one)"));
    }
    shown.join("; ")
}

fn outcome(stage: &PlannedStage, key: Option<String>, status: Status, reasons: Vec<Reason>) -> StageOutcome {
    StageOutcome {
        name: stage.name.clone(),
        kind: stage.kind.kind().to_string(),
        key,
        status,
        reason: render(&reasons),
        reasons,
        seconds: 0.0,
        matrix: crate::plan::matrix_map(stage),
        error: None,
        hint: None,
        warnings: Vec::new(),
        summary: None,
    }
}

/// What `run` would do, without running anything.
pub fn plan(pipeline: &Pipeline, store: &Store, force: &Force) -> Vec<StageOutcome> {
    let state = store.load_state(&pipeline.name);
    let mut manifests: Vec<Option<Arc<Manifest>>> = vec![None; pipeline.stages.len()];
    let mut outcomes = Vec::with_capacity(pipeline.stages.len());
    for (i, stage) in pipeline.stages.iter().enumerate() {
        let previous = state.stages.get(&stage.name);
        if let Some(pending) = stage.inputs.iter().find(|input| manifests[input.upstream].is_none()) {
            let mut reasons = vec![Reason::UpstreamPending { stage: pipeline.stages[pending.upstream].name.clone() }];
            if let Some(previous) = previous {
                // The stage's own fields, compared as a run would key them;
                // its inputs are not known until the upstream has run.
                match key::record(stage, store, None) {
                    Ok(now) => reasons.extend(
                        key::explain_stage(&pipeline.base_dir, stage, &previous.record, &now)
                            .into_iter()
                            .filter(|r| !matches!(r, Reason::InputChanged { .. })),
                    ),
                    Err(error) => {
                        let mut failed = outcome(stage, None, Status::Dirty, Vec::new());
                        failed.reason = error;
                        outcomes.push(failed);
                        continue;
                    }
                }
            }
            outcomes.push(outcome(stage, None, Status::Dirty, reasons));
            continue;
        }
        let record = match key_record(stage, store, &manifests) {
            Ok(record) => record,
            Err(error) => {
                let mut failed = outcome(stage, None, Status::Dirty, Vec::new());
                failed.reason = error;
                outcomes.push(failed);
                continue;
            }
        };
        let key = record.key();
        let lookup = store.lookup(&key);
        if force.covers(i) {
            outcomes.push(outcome(stage, Some(key), Status::Dirty, vec![Reason::Forced]));
            continue;
        }
        match lookup {
            Lookup::Fresh(manifest) => {
                manifests[i] = Some(Arc::from(manifest));
                outcomes.push(outcome(stage, Some(key), Status::Fresh, vec![Reason::Cached]));
            }
            other => {
                let reasons = dirty_reasons(pipeline, stage, previous, &record, &key, &other);
                outcomes.push(outcome(stage, Some(key), Status::Dirty, reasons));
            }
        }
    }
    outcomes
}

/// The stages `targets` need, including themselves (all stages for `None`).
fn needed(pipeline: &Pipeline, targets: &Option<Vec<usize>>) -> Vec<bool> {
    let Some(targets) = targets else { return vec![true; pipeline.stages.len()] };
    let mut keep = vec![false; pipeline.stages.len()];
    let mut stack: Vec<usize> = targets.clone();
    while let Some(i) = stack.pop() {
        if !keep[i] {
            keep[i] = true;
            stack.extend(pipeline.stages[i].inputs.iter().map(|input| input.upstream));
        }
    }
    keep
}

struct Finished {
    index: usize,
    key: String,
    record: KeyRecord,
    reasons: Vec<Reason>,
    result: Result<(Manifest, bool), StageError>,
    seconds: f64,
    gpu: Option<usize>,
    cost: usize,
}

struct Job<'a> {
    pipeline: &'a Pipeline,
    stage: &'a PlannedStage,
    store: &'a Store,
    key: String,
    record: KeyRecord,
    inputs: BTreeMap<String, InputArtifact>,
    gpu: Option<usize>,
    cost: usize,
    threads: usize,
    cancel: &'a AtomicBool,
    reporter: &'a dyn Reporter,
    force: bool,
    remote: Option<&'a dyn RemoteExecutor>,
}

impl<'a> Job<'a> {
    /// The job for stage `index` of `pipeline`, whose upstream results
    /// (`upstream`) are known: its inputs taken from the store, run here on
    /// the CPU with the stage's own thread count, reporting nothing, not
    /// forced. The scheduler overrides what a run decides.
    fn new(
        pipeline: &'a Pipeline,
        store: &'a Store,
        index: usize,
        upstream: &[Option<Arc<Manifest>>],
        key: String,
        record: KeyRecord,
        cancel: &'a AtomicBool,
    ) -> Job<'a> {
        let stage = &pipeline.stages[index];
        let threads = stage.resources.threads.unwrap_or(1).max(1);
        Job {
            pipeline,
            stage,
            store,
            key,
            record,
            inputs: input_artifacts(pipeline, store, stage, upstream),
            gpu: None,
            cost: threads,
            threads,
            cancel,
            reporter: &Silent,
            force: false,
            remote: None,
        }
    }

    fn execute(self, index: usize, reasons: Vec<Reason>) -> Finished {
        let started = Instant::now();
        // A panic outside the kind's own code (which `build` catches) fails
        // the stage rather than the stage thread, which the scheduler waits on.
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| self.build())).unwrap_or_else(|panic| Err(panic_error(panic)));
        Finished {
            index,
            key: self.key,
            record: self.record,
            reasons,
            result,
            seconds: started.elapsed().as_secs_f64(),
            gpu: self.gpu,
            cost: self.cost,
        }
    }

    /// Runs the stage under its key's lock; `Ok((manifest, ran))`.
    fn build(&self) -> Result<(Manifest, bool), StageError> {
        let store_error = |e: crate::store::StoreError| StageError::failed(e.to_string());
        if let Some(remote) = self.remote {
            let request = RemoteRequest {
                pipeline: self.pipeline,
                stage: self.stage,
                key: &self.key,
                store: self.store,
                cancel: self.cancel,
                force: self.force,
                progress: &|done, total| self.reporter.stage_progress(&self.stage.name, done, total),
            };
            remote.run_stage(&request)?;
            return match self.store.lookup(&self.key) {
                Lookup::Fresh(manifest) => Ok((*manifest, true)),
                Lookup::Missing => Err(StageError::failed("the job ended without writing a result to the store")),
                Lookup::Damaged(detail) => Err(StageError::failed(format!("the job left a damaged result: {detail}"))),
            };
        }
        let _lock = self.store.lock(&self.key).map_err(store_error)?;
        if !self.force {
            // Another process may have built it while we waited for the lock.
            if let Lookup::Fresh(manifest) = self.store.lookup(&self.key) {
                return Ok((*manifest, false));
            }
        }
        self.check_inputs()?;
        let staging = self.store.staging_dir(&self.key).map_err(store_error)?;
        let started = Instant::now();
        // A resumable stage keeps its work under its key across attempts.
        let work_dir = if self.stage.kind.resumable(&self.stage.params) {
            Some(self.store.work_dir(&self.key).map_err(store_error)?)
        } else {
            None
        };
        let name = self.stage.name.as_str();
        let reporter = self.reporter;
        // A resumable stage's progress is also kept in its work directory
        // (at most twice a second), for `voxflow show` and cluster runs.
        let kept = work_dir.as_ref().map(|_| ProgressFile::new(self.store, &self.key));
        let progress = |done: u64, total: u64| {
            reporter.stage_progress(name, done, total);
            if let Some(kept) = &kept {
                kept.progress(done, total);
            }
        };
        let note = |text: &str| {
            reporter.stage_note(name, text);
            if let Some(kept) = &kept {
                kept.note(text);
            }
        };
        let activity = |activity: crate::stage::Activity<'_>| match activity {
            crate::stage::Activity::Phase(text) => reporter.stage_phase(name, text),
            crate::stage::Activity::Unit(unit) => reporter.stage_unit(name, unit),
        };
        let device = match self.gpu {
            Some(gpu) => crate::device::Device::Cuda(gpu),
            None => crate::device::Device::Cpu,
        };
        let mut ctx = StageContext {
            name: &self.stage.name,
            params: &self.stage.params,
            key: &self.key,
            keyed_params: &self.record.params,
            base_dir: &self.pipeline.base_dir,
            out_dir: &staging,
            threads: self.threads,
            device,
            inputs: &self.inputs,
            work_dir: work_dir.as_deref(),
            outputs: Vec::new(),
            warnings: Vec::new(),
            logs: Vec::new(),
            figures: Vec::new(),
            nondeterministic: None,
            cancel: self.cancel,
            progress: &progress,
            note: &note,
            activity: &activity,
        };
        let result = if self.stage.kind.in_worker(&self.stage.params, device) {
            crate::worker::run_in_worker(&mut ctx, self.stage.kind.kind())
        } else {
            std::panic::catch_unwind(AssertUnwindSafe(|| self.stage.kind.run(&mut ctx)))
                .unwrap_or_else(|panic| Err(panic_error(panic)))
        };
        if let Err(error) = result {
            return Err(self.keep_failed(&staging, error));
        }
        if let Err(error) = refuse_links(&staging, &ctx.outputs) {
            return Err(self.keep_failed(&staging, error));
        }
        let mut outputs = BTreeMap::new();
        for written in &ctx.outputs {
            let path = staging.join(&written.file);
            let (digest, bytes) = crate::store::output_digest(&path).map_err(store_error)?;
            outputs.insert(
                written.name.clone(),
                OutputEntry {
                    file: written.file.clone(),
                    digest,
                    bytes,
                    format: written.format.clone(),
                    shape: written.shape.clone(),
                },
            );
        }
        let manifest = Manifest {
            key: self.key.clone(),
            record: self.record.clone(),
            stage: self.stage.name.clone(),
            digest: combined_digest(&outputs),
            outputs,
            seconds: started.elapsed().as_secs_f64(),
            finished_at: now_rfc3339(),
            voxflow_version: env!("CARGO_PKG_VERSION").to_string(),
            host: host_name(),
            // The device the stage says it used (`device: auto` may fall back to the CPU).
            device: ctx.device.to_string(),
            warnings: ctx.warnings.clone(),
            logs: ctx.logs.clone(),
            figures: ctx.figures.clone(),
            nondeterministic: ctx.nondeterministic.clone(),
        };
        if let Err(error) = self.store.commit(&staging, &manifest) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(store_error(error));
        }
        if work_dir.is_some() {
            // Committed: the work is done. A leftover directory is harmless (gc removes it).
            if let Err(error) = self.store.remove_work(&self.key) {
                tracing::warn!("stage `{}`: {error}", self.stage.name);
            }
        }
        Ok((manifest, true))
    }
}

/// Builds one stage in this process, its inputs taken from the store (they
/// must be fresh). `expected_key`, when given, must match the key computed
/// now: a cluster job checks that the pipeline did not change since it was
/// submitted. Used by `voxflow exec`.
pub fn exec_stage(
    pipeline: &Pipeline,
    store: &Store,
    index: usize,
    expected_key: Option<&str>,
    force: bool,
    cancel: &AtomicBool,
) -> Result<(Manifest, bool), StageError> {
    let mut manifests: Vec<Option<Arc<Manifest>>> = vec![None; pipeline.stages.len()];
    let needed = needed(pipeline, &Some(vec![index]));
    for i in 0..index {
        if !needed[i] {
            continue;
        }
        let stage = &pipeline.stages[i];
        let record = key_record(stage, store, &manifests).map_err(StageError::failed)?;
        match store.lookup(&record.key()) {
            Lookup::Fresh(manifest) => manifests[i] = Some(Arc::from(manifest)),
            _ => {
                return Err(StageError::failed(format!("upstream `{}` has no result in the store", stage.name))
                    .with_hint("run the upstream stages first (`voxflow run --stage ...`)"))
            }
        }
    }
    let stage = &pipeline.stages[index];
    let record = key_record(stage, store, &manifests).map_err(StageError::failed)?;
    let key = record.key();
    if let Some(expected) = expected_key {
        if expected != key {
            return Err(StageError::failed(format!("stage `{}` now has key {key}, not {expected}", stage.name))
                .with_hint("the pipeline file or its inputs changed after the job was submitted; run again"));
        }
    }
    let job = Job { force, ..Job::new(pipeline, store, index, &manifests, key, record, cancel) };
    let result = job.build();
    let _ = store.save_memo();
    result
}

impl Job<'_> {
    /// Re-hashes every object the stage reads (each once per run) before it
    /// computes anything. A damaged object fails the stage, named with its
    /// stage, key and file, and is moved to `damaged/` so that the next run
    /// rebuilds it, then what depends on it.
    fn check_inputs(&self) -> Result<(), StageError> {
        for (role, input) in &self.inputs {
            let manifest = &input.manifest;
            let Err(detail) = self.store.check_object(manifest) else { continue };
            let message =
                format!("input `{role}` is damaged: object {} of stage `{}`: {detail}", manifest.key, input.stage);
            let hint = match self.store.quarantine(&manifest.key) {
                Ok(moved) => format!(
                    "the damaged object was moved to {}; run again: `{}` is rebuilt first, then what depends on it",
                    moved.display(),
                    input.stage
                ),
                Err(error) => {
                    format!("it could not be moved aside ({error}); run `voxflow verify --fix`, then run again")
                }
            };
            return Err(StageError::failed(message).with_hint(hint));
        }
        Ok(())
    }

    /// Moves a failed stage's staging directory (with its logs) to
    /// `failed/<key>/`, outside `objects/`, and points the error at it.
    fn keep_failed(&self, staging: &std::path::Path, error: StageError) -> StageError {
        let has_logs = staging.join("logs").exists();
        if !has_logs {
            let _ = std::fs::remove_dir_all(staging);
            return error;
        }
        let kept = self.store.root().join("failed").join(&self.key);
        let _ = std::fs::remove_dir_all(&kept);
        let moved =
            std::fs::create_dir_all(self.store.root().join("failed")).and_then(|_| std::fs::rename(staging, &kept));
        if moved.is_err() {
            let _ = std::fs::remove_dir_all(staging);
            return error;
        }
        let (from, to) = (staging.display().to_string(), kept.display().to_string());
        match error {
            StageError::Failed { message, hint } => {
                StageError::Failed { message: message.replace(&from, &to), hint: hint.map(|h| h.replace(&from, &to)) }
            }
            other => other,
        }
    }
}

/// Refuses outputs that are symbolic links or hold one: the stored
/// artifact must not change when a link's target does.
fn refuse_links(staging: &std::path::Path, written: &[crate::stage::WrittenOutput]) -> Result<(), StageError> {
    for output in written {
        let path = staging.join(&output.file);
        let Ok(Some((link, target))) = crate::store::find_symlink(&path) else { continue };
        let inside = link.strip_prefix(staging).unwrap_or(&link).display().to_string();
        return Err(StageError::failed(format!(
            "output `{}` is a symbolic link: {inside} -> {}; an output must be a regular file or a directory of \
             regular files, so that the stored result cannot change after it is stored",
            output.name,
            target.display()
        ))
        .with_hint("copy the bytes instead of linking them (`cp -L TARGET {outputs.NAME}`)"));
    }
    Ok(())
}

/// Writes a stage's progress to its work directory, at most twice a second
/// (and every note at once).
struct ProgressFile<'a> {
    store: &'a Store,
    key: &'a str,
    state: std::sync::Mutex<(crate::store::Progress, Option<Instant>)>,
}

impl<'a> ProgressFile<'a> {
    fn new(store: &'a Store, key: &'a str) -> ProgressFile<'a> {
        ProgressFile { store, key, state: std::sync::Mutex::new(Default::default()) }
    }

    fn progress(&self, done: u64, total: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0.done = done;
        state.0.total = total;
        let due = state.1.is_none_or(|at| at.elapsed().as_millis() >= 500) || done == total;
        if due {
            state.1 = Some(Instant::now());
            self.save(&mut state.0);
        }
    }

    fn note(&self, text: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0.note = Some(text.to_string());
        self.save(&mut state.0);
    }

    fn save(&self, progress: &mut crate::store::Progress) {
        progress.at = now_rfc3339();
        // Progress is advice: a failed write costs nothing but the report.
        if let Err(error) = self.store.save_progress(self.key, progress) {
            tracing::debug!("{error}");
        }
    }
}

/// The error of a stage that panicked.
pub(crate) fn panic_error(panic: Box<dyn std::any::Any + Send>) -> StageError {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    StageError::failed(format!("the stage panicked: {message}"))
        .with_hint("this is a bug in voxflow; please report it with the pipeline file")
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// This machine's host name, for the manifest (`unknown` if it cannot be read).
pub fn host_name() -> String {
    // Asked once per process: every manifest of a run records it.
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        hostname::get().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|_| "unknown".into())
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Scratch;

    /// `fit` (ridge, with a `device` param it does not key) and `other` wait on `prep`.
    const FAN: &str = r#"
name: fan
stages:
  prep:
    kind: command
    run: echo {params.x} > {outputs.out}
    outputs: {out: prep.txt}
    params: {x: 1}
  fit:
    kind: ridge
    inputs: {data: prep}
    params: {alphas: [1, 10]}
  other:
    kind: command
    inputs: [prep]
    run: cat {inputs.prep} > {outputs.out}
    outputs: {out: other.txt}
    params: {y: 1}
"#;

    #[test]
    fn the_one_line_reason_counts_what_it_leaves_out() {
        let input = |k: usize| Reason::InputChanged {
            role: format!("in{k}"),
            old: Some(format!("{k:032x}")),
            new: Some(format!("{:032x}", k + 1)),
        };
        let few: Vec<Reason> = (0..SHOWN_REASONS).map(input).collect();
        assert_eq!(render(&few).matches("changed").count(), SHOWN_REASONS, "{}", render(&few));
        let mut many = vec![Reason::VersionChanged { old: 1, new: 2 }];
        many.extend((0..60).map(input));
        let line = render(&many);
        assert!(line.starts_with("implementation version changed: 1 -> 2; input `in0` changed"), "{line}");
        assert!(line.ends_with("; and 58 more (`voxflow why` lists every one)"), "{line}");
        assert_eq!(line.matches("changed:").count(), 3, "{line}");
    }

    #[test]
    fn a_stage_waiting_on_its_upstream_names_only_what_changed() {
        let dir = Scratch::new("pending");
        let pipeline = dir.pipeline(FAN, &[]).unwrap_or_else(|problems| panic!("{problems}"));
        let store = Store::open(&pipeline.store_dir).unwrap();
        // The state a run leaves: each stage's record as it was keyed.
        let mut updates = BTreeMap::new();
        for stage in &pipeline.stages {
            let inputs = stage.inputs.iter().map(|i| (i.role.clone(), "0123".to_string())).collect();
            let record = key::record(stage, &store, Some(inputs)).unwrap();
            updates.insert(stage.name.clone(), StageState { key: record.key(), record });
        }
        store.update_state(&pipeline.name, updates).unwrap();

        let changed = dir.pipeline(FAN, &["prep.x=2", "other.y=2"]).unwrap_or_else(|problems| panic!("{problems}"));
        let outcomes = plan(&changed, &store, &Force::Nothing);
        let reasons: BTreeMap<&str, Vec<String>> =
            outcomes.iter().map(|o| (o.name.as_str(), o.reasons.iter().map(ToString::to_string).collect())).collect();
        assert_eq!(reasons["prep"], ["param `x` changed: 1 -> 2"]);
        assert_eq!(reasons["fit"], ["upstream `prep` runs first"], "no `device` reason");
        assert_eq!(reasons["other"], ["upstream `prep` runs first", "param `y` changed: 1 -> 2"]);
        assert!(outcomes.iter().all(|o| o.status == Status::Dirty && o.key.is_none() == (o.name != "prep")));
    }

    #[test]
    fn needed_follows_inputs_upstream() {
        let dir = Scratch::new("needed");
        let pipeline = dir.pipeline(FAN, &[]).unwrap_or_else(|problems| panic!("{problems}"));
        assert_eq!(needed(&pipeline, &None), [true, true, true]);
        let fit = pipeline.index_of("fit").unwrap();
        let keep = needed(&pipeline, &Some(vec![fit]));
        assert_eq!(
            pipeline.stages.iter().zip(keep).filter(|(_, k)| *k).map(|(s, _)| s.name.as_str()).collect::<Vec<_>>(),
            ["prep", "fit"]
        );
    }
}
