//! The Slurm executor: each ready stage that is not cached becomes one
//! `sbatch --parsable` job running `voxflow exec PIPELINE STAGE --key KEY`
//! against the same store (which must be on a file system the compute nodes
//! share). The scheduler in [`crate::exec`] still owns the DAG: it calls
//! [`SlurmExecutor::run_stage`] from one thread per stage in flight (`-j` is
//! the most jobs in the queue at once), so independent stages sit in the
//! queue together and a failed stage blocks only its descendants. No Slurm
//! dependencies (`afterok`) are used, so a failed parent never leaves a child
//! pending forever.
//!
//! **The store is the record of success.** A job writes its result through
//! the store's atomic path (`objects/<key>/manifest.json` appears last, in one
//! rename); the controller polls the queue only to learn when the job has
//! ended, then looks in the store. A job that ended, in any state, without a
//! result is a failure reported with Slurm's state, reason and exit code and
//! the tail of its log; a job reported COMPLETED without a result is a
//! failure too (a misconfigured cluster can report jobs that never ran).
//!
//! Polling: `squeue -h -t all -j ID,ID,... -o '%i %T'` for every job of this
//! run at once (one call serves all stage threads), with a back-off from
//! 0.2 s to 2 s per stage; `scontrol -o show job ID` (or `sacct`, where
//! accounting exists) once at the end for the reason and exit code.
//!
//! Logs: a job writes to `<store>/slurm-logs/<pipeline>/<stage>-<jobid>.txt`.
//! After a successful job, the logs of all its attempts are moved into the
//! object directory as `logs/slurm-<jobid>.txt` and added to the manifest's
//! `logs` list (the manifest is rewritten atomically under the key's lock;
//! the outputs and their digests are untouched), so `voxflow show` lists
//! them. The log of a failed job stays where it was, and the error names it.
//!
//! Cancellation: when the scheduler's `cancel` flag is set (Ctrl-C), each
//! stage thread runs `scancel` on its own job and waits for it to leave the
//! queue. [`LiveJobs::cancel_all`] does the same for every job this run
//! submitted, for a second Ctrl-C that exits at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::exec::{RemoteExecutor, RemoteRequest};
use crate::plan::{Pipeline, PlannedStage};
use crate::spec::{Diagnostics, RetrySpec, SlurmSpec};
use crate::stages::StageError;
use crate::store::{Lookup, Store};

/// Job states in which a job is still queued or running.
const ACTIVE: &[&str] = &[
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
    "SPECIAL_EXIT",
    "RESV_DEL_HOLD",
];

/// How long a job that Slurm reports COMPLETED may take to show its result
/// to this machine (a shared file system's attribute cache can lag).
const LATENCY_WAIT: Duration = Duration::from_secs(10);
/// Lines of a job's log quoted in an error.
const LOG_TAIL_LINES: usize = 20;
/// How long the controller keeps polling through squeue errors before it
/// gives a stage up (the job itself may still finish; a rerun finds it).
const LOST_CONTACT_AFTER: Duration = Duration::from_secs(300);

/// What the pipeline file says about executors: `executor:`, `slurm:` and
/// each stage's `retries:`.
#[derive(Debug, Clone, Default)]
pub struct FileSettings {
    pub executor: Option<String>,
    pub slurm: SlurmSpec,
    /// By stage name as written in the file (before matrix expansion).
    pub retries: BTreeMap<String, RetrySpec>,
}

impl FileSettings {
    /// Reads the settings of a pipeline that already loaded without errors.
    pub fn load(pipeline: &Pipeline, overrides: &[String]) -> Result<FileSettings, Diagnostics> {
        let spec = crate::spec::load(&pipeline.file, overrides)?;
        let retries = spec.stages.iter().map(|stage| (stage.name.clone(), stage.retry.clone())).collect();
        Ok(FileSettings { executor: spec.executor, slurm: spec.slurm, retries })
    }
}

/// The ids of the jobs a run has in the queue; shared with a signal handler.
#[derive(Debug, Clone, Default)]
pub struct LiveJobs(Arc<Mutex<BTreeSet<u64>>>);

impl LiveJobs {
    fn insert(&self, id: u64) {
        self.0.lock().expect("live jobs").insert(id);
    }

    fn remove(&self, id: u64) {
        self.0.lock().expect("live jobs").remove(&id);
    }

    pub fn ids(&self) -> Vec<u64> {
        self.0.lock().expect("live jobs").iter().copied().collect()
    }

    /// `scancel`s every job this run has in the queue (and only those).
    /// Returns the ids it cancelled.
    pub fn cancel_all(&self) -> Vec<u64> {
        let ids = self.ids();
        if !ids.is_empty() {
            let _ = Command::new("scancel")
                .args(ids.iter().map(u64::to_string))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        ids
    }
}

/// The latest `squeue` answer, shared by all stage threads.
#[derive(Default)]
struct Snapshot {
    taken: Option<Instant>,
    asked: BTreeSet<u64>,
    states: HashMap<u64, String>,
}

/// How a job ended, as far as Slurm says.
#[derive(Debug, Clone)]
struct JobEnd {
    id: u64,
    /// `COMPLETED`, `FAILED`, `TIMEOUT`, ...; `UNKNOWN` when Slurm forgot the job.
    state: String,
    reason: Option<String>,
    /// (exit code, signal) of the batch script.
    exit: Option<(i32, i32)>,
    log: PathBuf,
}

/// One attempt's failure, kept for the final message.
struct AttemptFailure {
    message: String,
    hint: String,
    retryable: bool,
}

/// Runs stages as Slurm jobs. See the module documentation.
pub struct SlurmExecutor {
    options: SlurmSpec,
    retries: BTreeMap<String, RetrySpec>,
    overrides: Vec<String>,
    binary: PathBuf,
    live: LiveJobs,
    snapshot: Mutex<Snapshot>,
}

impl SlurmExecutor {
    /// `options` (the file's `slurm:` block merged with the command line),
    /// `retries` by stage base name, and the `--set` overrides the jobs repeat.
    pub fn new(
        options: SlurmSpec,
        retries: BTreeMap<String, RetrySpec>,
        overrides: Vec<String>,
    ) -> Result<SlurmExecutor, String> {
        let binary = std::env::current_exe().map_err(|e| format!("cannot find the voxflow binary: {e}"))?;
        Ok(SlurmExecutor {
            options,
            retries,
            overrides,
            binary,
            live: LiveJobs::default(),
            snapshot: Mutex::new(Snapshot::default()),
        })
    }

    /// The binary the jobs run (default: this process's own executable).
    pub fn with_binary(mut self, binary: PathBuf) -> SlurmExecutor {
        self.binary = binary;
        self
    }

    /// The jobs in the queue now, for a signal handler.
    pub fn live_jobs(&self) -> LiveJobs {
        self.live.clone()
    }

    /// The sbatch arguments (everything but the script) for one attempt.
    fn sbatch_args(
        &self,
        pipeline: &Pipeline,
        stage: &PlannedStage,
        log_pattern: &Path,
        mem_mb: Option<u64>,
        minutes: Option<u64>,
    ) -> Vec<String> {
        let mut args = vec![
            "--parsable".to_string(),
            format!("--job-name=voxflow:{}:{}", pipeline.name, stage.name),
            format!("--output={}", log_pattern.display()),
            format!("--chdir={}", absolute(&pipeline.base_dir).display()),
        ];
        for (flag, value) in
            [("partition", &self.options.partition), ("account", &self.options.account), ("qos", &self.options.qos)]
        {
            if let Some(value) = value {
                args.push(format!("--{flag}={value}"));
            }
        }
        if let Some(threads) = stage.resources.threads {
            args.push(format!("--cpus-per-task={threads}"));
        }
        if let Some(mb) = mem_mb {
            args.push(format!("--mem={mb}M"));
        }
        if let Some(minutes) = minutes {
            args.push(format!("--time={minutes}"));
        }
        if let Some(gpus) = stage.resources.gpu.filter(|&g| g > 0) {
            args.push(format!("--gres=gpu:{gpus}"));
        }
        args.extend(self.options.sbatch_args.iter().cloned());
        args
    }

    /// The batch script: one `voxflow exec` for the stage's key.
    fn script(&self, request: &RemoteRequest<'_>) -> String {
        let mut command =
            vec![quote(&self.binary.to_string_lossy()), "exec".into(), "--key".into(), quote(request.key)];
        command.push("--store".into());
        command.push(quote(&absolute(request.store.root()).to_string_lossy()));
        for assignment in &self.overrides {
            command.push("--set".into());
            command.push(quote(assignment));
        }
        if request.force {
            command.push("--force".into());
        }
        command.push("--".into());
        command.push(quote(&absolute(&request.pipeline.file).to_string_lossy()));
        command.push(quote(&request.stage.name));
        format!(
            "#!/bin/sh\n\
             # voxflow: stage {stage} of pipeline {pipeline}, key {key}\n\
             echo \"voxflow: stage {stage_quoted}, key {key}, Slurm job $SLURM_JOB_ID on $(hostname), started $(date -u +%Y-%m-%dT%H:%M:%S.%NZ)\"\n\
             exec {command}\n",
            stage = request.stage.name.replace('\n', " "),
            stage_quoted = request.stage.name.replace(['"', '$', '`', '\\', '\n'], "_"),
            pipeline = request.pipeline.name.replace('\n', " "),
            key = request.key,
            command = command.join(" "),
        )
    }

    /// Submits one job; returns its id and its log file.
    fn submit(
        &self,
        request: &RemoteRequest<'_>,
        mem_mb: Option<u64>,
        minutes: Option<u64>,
    ) -> Result<(u64, PathBuf), AttemptFailure> {
        let stage = request.stage;
        let log_dir = absolute(request.store.root()).join("slurm-logs").join(sanitize(&request.pipeline.name));
        std::fs::create_dir_all(&log_dir).map_err(|e| AttemptFailure {
            message: format!("cannot create the Slurm log directory {}: {e}", log_dir.display()),
            hint: "the store must be writable (and on a file system the compute nodes share)".into(),
            retryable: false,
        })?;
        let file_stem = sanitize(&stage.name);
        // sbatch expands `%j` to the job id; a literal `%` in the store's path is `%%`.
        let log_pattern = PathBuf::from(format!("{}/{file_stem}-%j.txt", log_dir.to_string_lossy().replace('%', "%%")));
        let args = self.sbatch_args(request.pipeline, stage, &log_pattern, mem_mb, minutes);
        let script = self.script(request);
        let mut delay = Duration::from_secs(1);
        for attempt in 0..4 {
            let output = run_with_stdin("sbatch", &args, &script);
            let (ok, stdout, stderr) = match output {
                Ok(output) => output,
                Err(error) => {
                    return Err(AttemptFailure {
                        message: format!("cannot run sbatch: {error}"),
                        hint: "is Slurm installed here, and is this a login node of the cluster? (`--executor local` runs stages on this machine)".into(),
                        retryable: false,
                    })
                }
            };
            if ok {
                let text = stdout.trim();
                // `--parsable` prints `id` or `id;cluster`.
                let id = text.split(';').next().unwrap_or_default().trim();
                return match id.parse::<u64>() {
                    Ok(id) => {
                        self.live.insert(id);
                        let log = log_dir.join(format!("{file_stem}-{id}.txt"));
                        tracing::info!("stage `{}`: submitted as Slurm job {id} (log {})", stage.name, log.display());
                        Ok((id, log))
                    }
                    Err(_) => Err(AttemptFailure {
                        message: format!("sbatch answered `{text}`, not a job id"),
                        hint: "voxflow passes --parsable; check that `sbatch` is Slurm's".into(),
                        retryable: false,
                    }),
                };
            }
            let stderr = stderr.trim().to_string();
            // (sbatch itself retries for a while when the controller is down.)
            let transient =
                ["temporarily unavailable", "timed out", "try again"].iter().any(|needle| stderr.contains(needle));
            if transient && attempt < 3 && !request.cancel.load(Ordering::Relaxed) {
                tracing::warn!("stage `{}`: sbatch failed ({stderr}); trying again in {delay:?}", stage.name);
                std::thread::sleep(delay);
                delay *= 2;
                continue;
            }
            return Err(refusal(stage, &stderr, &self.options, mem_mb, minutes));
        }
        unreachable!("the loop returns")
    }

    /// The state of job `id` from a `squeue` answer no older than `not_before`
    /// (one call answers for every job of this run). `Ok(None)`: Slurm does
    /// not know the job any more.
    fn state(&self, id: u64, not_before: Instant) -> Result<Option<String>, String> {
        let mut snapshot = self.snapshot.lock().expect("squeue snapshot");
        if snapshot.taken.is_some_and(|taken| taken >= not_before) && snapshot.asked.contains(&id) {
            return Ok(snapshot.states.get(&id).cloned());
        }
        let mut ids: BTreeSet<u64> = self.live.ids().into_iter().collect();
        ids.insert(id);
        let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let taken = Instant::now();
        let (ok, stdout, stderr) = run("squeue", &["-h", "-t", "all", "-j", &list, "-o", "%i %T"])?;
        let mut states = HashMap::new();
        if ok {
            for line in stdout.lines() {
                let mut words = line.split_whitespace();
                if let (Some(job), Some(state)) = (words.next(), words.next()) {
                    if let Ok(job) = job.parse::<u64>() {
                        states.insert(job, state.to_string());
                    }
                }
            }
        } else if !stderr.contains("Invalid job id") {
            return Err(format!("squeue: {}", stderr.trim()));
        }
        *snapshot = Snapshot { taken: Some(taken), asked: ids, states };
        Ok(snapshot.states.get(&id).cloned())
    }

    /// Waits until job `id` has left the queue; `Err(Cancelled)` after
    /// cancelling it when the run is interrupted.
    fn wait(&self, request: &RemoteRequest<'_>, id: u64, log: &Path) -> Result<JobEnd, StageError> {
        let submitted = Instant::now();
        let mut delay = Duration::from_millis(200);
        let mut seen_running = false;
        let mut failing_since: Option<Instant> = None;
        loop {
            let round = Instant::now();
            if sleep_unless(delay, request.cancel) {
                self.cancel(id);
                return Err(StageError::Cancelled);
            }
            delay = (delay.mul_f64(1.5)).min(Duration::from_secs(2));
            match self.state(id, round) {
                Ok(Some(state)) if ACTIVE.contains(&state.as_str()) => {
                    failing_since = None;
                    if state == "RUNNING" && !seen_running {
                        seen_running = true;
                        tracing::info!(
                            "stage `{}`: Slurm job {id} running ({:.1}s after submission)",
                            request.stage.name,
                            submitted.elapsed().as_secs_f64()
                        );
                    }
                }
                Ok(Some(state)) => return Ok(self.details(id, state, log)),
                Ok(None) => return Ok(self.details(id, "UNKNOWN".into(), log)),
                Err(error) => {
                    // The controller may be busy or restarting; the store still tells the truth.
                    if matches!(request.store.lookup(request.key), Lookup::Fresh(_)) {
                        return Ok(JobEnd {
                            id,
                            state: "UNKNOWN".into(),
                            reason: None,
                            exit: None,
                            log: log.to_path_buf(),
                        });
                    }
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > LOST_CONTACT_AFTER {
                        return Err(StageError::failed(format!(
                            "lost contact with Slurm for {} s while waiting for job {id}: {error}",
                            LOST_CONTACT_AFTER.as_secs()
                        ))
                        .with_hint(
                            "the job may still finish; run again later and voxflow takes its result from the store",
                        ));
                    }
                    tracing::warn!("stage `{}`: {error}; still waiting for job {id}", request.stage.name);
                }
            }
        }
    }

    /// State, reason and exit code of an ended job: scontrol, else sacct.
    fn details(&self, id: u64, state: String, log: &Path) -> JobEnd {
        let mut end = JobEnd { id, state, reason: None, exit: None, log: log.to_path_buf() };
        if let Ok((true, stdout, _)) = run("scontrol", &["-o", "show", "job", &id.to_string()]) {
            for word in stdout.split_whitespace() {
                if let Some(state) = word.strip_prefix("JobState=") {
                    end.state = state.to_string();
                } else if let Some(reason) = word.strip_prefix("Reason=") {
                    if reason != "None" {
                        end.reason = Some(reason.to_string());
                    }
                } else if let Some(code) = word.strip_prefix("ExitCode=") {
                    end.exit = parse_exit(code);
                }
            }
            return end;
        }
        if let Ok((true, stdout, _)) = run("sacct", &["-X", "-n", "-P", "-j", &id.to_string(), "-o", "State,ExitCode"])
        {
            if let Some(line) = stdout.lines().next() {
                let mut fields = line.split('|');
                if let Some(state) = fields.next().and_then(|s| s.split_whitespace().next()) {
                    end.state = state.to_string();
                }
                end.exit = fields.next().and_then(parse_exit);
            }
        }
        end
    }

    /// Cancels job `id` and waits (up to 30 s) until it has left the queue.
    fn cancel(&self, id: u64) {
        let _ = run("scancel", &[&id.to_string()]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match run("squeue", &["-h", "-t", "all", "-j", &id.to_string(), "-o", "%T"]) {
                Ok((true, stdout, _)) if ACTIVE.contains(&stdout.trim()) => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => break,
            }
        }
        self.live.remove(id);
        tracing::info!("cancelled Slurm job {id}");
    }

    /// Moves the logs of a stage's jobs into its object directory and lists
    /// them in the manifest. The outputs and their digests do not change.
    fn keep_logs(&self, store: &Store, key: &str, logs: &[(u64, PathBuf)]) -> Result<(), String> {
        let _lock = store.lock(key).map_err(|e| e.to_string())?;
        let Lookup::Fresh(mut manifest) = store.lookup(key) else {
            return Err("the result disappeared from the store".into());
        };
        let dir = store.object_dir(key);
        std::fs::create_dir_all(dir.join("logs")).map_err(|e| format!("{}: {e}", dir.join("logs").display()))?;
        let mut kept = Vec::new();
        for (id, log) in logs {
            let name = format!("logs/slurm-{id}.txt");
            match std::fs::copy(log, dir.join(&name)) {
                Ok(_) => {
                    if !manifest.logs.contains(&name) {
                        manifest.logs.push(name);
                    }
                    kept.push(log);
                }
                Err(error) => tracing::warn!("could not keep the Slurm log {}: {error}", log.display()),
            }
        }
        let text = serde_json::to_vec_pretty(&*manifest).expect("manifest serialises");
        crate::store::write_atomic(&dir.join("manifest.json"), &text).map_err(|e| e.to_string())?;
        for log in kept {
            let _ = std::fs::remove_file(log);
        }
        Ok(())
    }
}

impl RemoteExecutor for SlurmExecutor {
    fn run_stage(&self, request: &RemoteRequest<'_>) -> Result<(), StageError> {
        let stage = request.stage;
        let retry = self.retries.get(&stage.base).cloned().unwrap_or_default();
        let mem_text = stage.resources.mem.clone().or_else(|| self.options.mem.clone());
        let time_text = stage.resources.time.clone().or_else(|| self.options.time.clone());
        let mut mem_mb = match &mem_text {
            Some(text) => Some(parse_mem_mb(text).map_err(|e| StageError::failed(format!("`mem: {text}`: {e}")))?),
            None => None,
        };
        let mut minutes = match &time_text {
            Some(text) => {
                Some(parse_time_minutes(text).map_err(|e| StageError::failed(format!("`time: {text}`: {e}")))?)
            }
            None => None,
        };
        let attempts = retry.retries + 1;
        // With --force the store may hold the old result: only a new object
        // directory (the job's commit renames one into place) counts.
        let old_object = if request.force { object_identity(request.store, request.key) } else { None };
        let mut logs: Vec<(u64, PathBuf)> = Vec::new();
        let mut history: Vec<String> = Vec::new();
        for attempt in 1..=attempts {
            if request.cancel.load(Ordering::Relaxed) {
                return Err(StageError::Cancelled);
            }
            let failure = match self.submit(request, mem_mb, minutes) {
                Err(failure) => failure,
                Ok((id, log)) => {
                    let end = self.wait(request, id, &log);
                    self.live.remove(id);
                    let end = end?;
                    logs.push((id, log));
                    if matches!(end.state.as_str(), "COMPLETED" | "UNKNOWN") {
                        wait_for_result(request.store, request.key, old_object, LATENCY_WAIT);
                    }
                    let lookup = match request.store.lookup(request.key) {
                        Lookup::Fresh(_)
                            if old_object.is_some() && object_identity(request.store, request.key) == old_object =>
                        {
                            Lookup::Missing
                        }
                        other => other,
                    };
                    match lookup {
                        Lookup::Fresh(_) => {
                            if end.state != "COMPLETED" && end.state != "UNKNOWN" {
                                tracing::warn!(
                                    "stage `{}`: Slurm job {id} ended {} but its result is in the store; taking it",
                                    stage.name,
                                    end.state
                                );
                            }
                            if let Err(error) = self.keep_logs(request.store, request.key, &logs) {
                                tracing::warn!("stage `{}`: could not keep the Slurm logs: {error}", stage.name);
                            }
                            return Ok(());
                        }
                        Lookup::Damaged(detail) => {
                            job_failure(&end, stage, mem_mb, minutes, Some(&detail), request.store, request.key)
                        }
                        Lookup::Missing => job_failure(&end, stage, mem_mb, minutes, None, request.store, request.key),
                    }
                }
            };
            let headline = failure.message.lines().next().unwrap_or_default().to_string();
            if !failure.retryable || attempt == attempts {
                let mut message = failure.message;
                if attempt > 1 {
                    let rest = message.split_once('\n').map(|(_, rest)| format!("\n{rest}")).unwrap_or_default();
                    message = format!(
                        "{headline}, on attempt {attempt} of {attempts} (before: {}){rest}",
                        history.join("; ")
                    );
                }
                return Err(StageError::failed(message).with_hint(failure.hint));
            }
            history
                .push(format!("attempt {attempt}: {}", headline.split_once(": ").map(|(_, h)| h).unwrap_or(&headline)));
            mem_mb = mem_mb.map(|mb| (mb as f64 * retry.mem_factor).ceil() as u64);
            minutes = minutes.map(|m| (m as f64 * retry.time_factor).ceil() as u64);
            tracing::warn!("{headline}; resubmitting (attempt {} of {attempts})", attempt + 1);
        }
        unreachable!("the last attempt returns")
    }
}

/// Describes a job that ended without a usable result.
fn job_failure(
    end: &JobEnd,
    stage: &PlannedStage,
    mem_mb: Option<u64>,
    minutes: Option<u64>,
    damaged: Option<&str>,
    store: &Store,
    key: &str,
) -> AttemptFailure {
    let mut detail = Vec::new();
    if let Some((code, signal)) = end.exit {
        if signal > 0 {
            detail.push(format!("killed by signal {signal}"));
        } else {
            detail.push(format!("exit code {code}"));
        }
    }
    if let Some(reason) = &end.reason {
        detail.push(format!("reason {reason}"));
    }
    let detail = if detail.is_empty() { String::new() } else { format!(" ({})", detail.join(", ")) };
    let log_path = end.log.display();
    let (what, hint, retryable) = match end.state.as_str() {
        "COMPLETED" => (
            format!("Slurm reports job {} COMPLETED{detail}, but it left no result in the store", end.id),
            format!(
                "the job may not have run at all, or the store {} is not on a file system the compute nodes share; its log is {log_path}",
                store.root().display()
            ),
            true,
        ),
        "FAILED" => (format!("Slurm job {} FAILED{detail}", end.id), format!("the job's log says why; the full log is {log_path}"), true),
        "TIMEOUT" => (
            format!("Slurm job {} TIMEOUT{detail}: the stage ran past its time limit{}", end.id, minutes.map(|m| format!(" of {m} min")).unwrap_or_default()),
            "raise the stage's `resources: {time: ...}` (or `slurm: {time: ...}`), or add `retries: 1` with `retry_time_factor: 2`".into(),
            true,
        ),
        "OUT_OF_MEMORY" => (
            format!("Slurm job {} OUT_OF_MEMORY{detail}: the stage used more than its memory limit{}", end.id, mem_mb.map(|mb| format!(" of {mb} MB")).unwrap_or_default()),
            "raise the stage's `resources: {mem: ...}` (or `slurm: {mem: ...}`), or add `retries: 1` with `retry_mem_factor: 2`".into(),
            true,
        ),
        "NODE_FAIL" | "BOOT_FAIL" | "PREEMPTED" | "DEADLINE" => (
            format!("Slurm job {} {}{detail}", end.id, end.state),
            "the node failed or the job was preempted, not the stage: run again, or add `retries: 1` to resubmit on its own".into(),
            true,
        ),
        "CANCELLED" => (
            format!("Slurm job {} CANCELLED{detail} outside this run", end.id),
            "someone (scancel, an administrator, a limit) cancelled the job; run again to resubmit it".into(),
            false,
        ),
        "UNKNOWN" => (
            format!("Slurm job {} left the queue without a result in the store, and Slurm no longer knows how it ended", end.id),
            format!("its log is {log_path}; the store {} must be on a file system the compute nodes share", store.root().display()),
            true,
        ),
        other => (format!("Slurm job {} ended {other}{detail} without a result", end.id), format!("its log is {log_path}"), true),
    };
    let mut message = format!("stage `{}`: {what}", stage.name);
    if let Some(damaged) = damaged {
        message
            .push_str(&format!("\n  the job left a damaged result in {}: {damaged}", store.object_dir(key).display()));
    }
    match log_tail(&end.log, LOG_TAIL_LINES) {
        Some(tail) if !tail.is_empty() => {
            message.push_str(&format!("\n  last lines of {log_path}:\n    {}", tail.join("\n    ")));
        }
        Some(_) => message.push_str(&format!("\n  the log {log_path} is empty")),
        None => message.push_str(&format!("\n  no log at {log_path}")),
    }
    AttemptFailure { message, hint, retryable }
}

/// Puts sbatch's refusal in voxflow's words.
fn refusal(
    stage: &PlannedStage,
    stderr: &str,
    options: &SlurmSpec,
    mem_mb: Option<u64>,
    minutes: Option<u64>,
) -> AttemptFailure {
    let said = stderr
        .lines()
        .map(|line| line.trim().trim_start_matches("sbatch: ").trim_start_matches("error: "))
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let partition = options
        .partition
        .as_deref()
        .map(|p| format!("partition `{p}`"))
        .unwrap_or_else(|| "the default partition".into());
    let gpus = stage.resources.gpu.unwrap_or(0);
    let (message, hint) = if said.contains("Invalid generic resource") && gpus > 0 {
        (
            format!("stage `{}` asks for {gpus} GPU{} (`resources: {{gpu: {gpus}}}`), and Slurm refused the job: no node of {partition} has GPUs (sbatch: {said})", stage.name, if gpus == 1 { "" } else { "s" }),
            "submit to a partition with GPU nodes (`slurm: {partition: gpu}` or `--partition`), or remove `gpu:` from the stage's resources to run it on CPUs".to_string(),
        )
    } else if said.contains("Unable to contact slurm controller") {
        (
            format!("stage `{}`: the Slurm controller does not answer (sbatch: {said})", stage.name),
            "check that Slurm is up (`scontrol ping`) and that this machine can submit jobs; the stage was not submitted".to_string(),
        )
    } else if said.contains("Requested node configuration is not available")
        || said.contains("Memory required by task is not available")
    {
        (
            format!(
                "stage `{}` asks for more than any node of {partition} has (threads {}, mem {}, gpus {gpus}); Slurm refused the job (sbatch: {said})",
                stage.name,
                stage.resources.threads.unwrap_or(1),
                mem_mb.map(|mb| format!("{mb} MB")).unwrap_or_else(|| "default".into()),
            ),
            "lower the stage's `resources:`, or pick a partition with bigger nodes (`sinfo -o '%P %c %m %G'` lists them)".to_string(),
        )
    } else if said.contains("time limit") || said.contains("Requested time limit is invalid") {
        (
            format!(
                "stage `{}`: Slurm refused its time limit{} (sbatch: {said})",
                stage.name,
                minutes.map(|m| format!(" of {m} min")).unwrap_or_default()
            ),
            format!("{partition} allows less; lower `resources: {{time: ...}}` or pick another partition"),
        )
    } else if said.contains("account") || said.contains("qos") || said.contains("partition") {
        (
            format!("stage `{}`: Slurm refused the job (sbatch: {said})", stage.name),
            "check `partition`, `account` and `qos` in the `slurm:` block or on the command line (`sacctmgr show assoc user=$USER` lists yours)".to_string(),
        )
    } else {
        (
            format!("stage `{}`: Slurm refused the job (sbatch: {said})", stage.name),
            "the message above is sbatch's own; check the `slurm:` block and the stage's `resources:`".to_string(),
        )
    };
    AttemptFailure { message, hint, retryable: false }
}

/// Memory in megabytes from `4G`, `512M`, `1.5GB`, `4GiB`, `1T`, `100K`, or
/// a bare number of megabytes (Slurm's default unit).
pub fn parse_mem_mb(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a memory size"))?;
    let unit = unit.trim().to_ascii_uppercase();
    let unit = unit.strip_suffix("IB").or_else(|| unit.strip_suffix('B')).unwrap_or(&unit);
    let factor = match unit {
        "" | "M" => 1.0,
        "K" => 1.0 / 1024.0,
        "G" => 1024.0,
        "T" => 1024.0 * 1024.0,
        _ => return Err(format!("`{text}` has an unknown unit (use K, M, G or T)")),
    };
    let mb = (value * factor).ceil();
    if !mb.is_finite() || mb < 1.0 {
        return Err(format!("`{text}` is not a positive memory size"));
    }
    Ok(mb as u64)
}

/// A time limit in whole minutes (rounded up, at least 1). Takes Slurm's
/// forms (`30` minutes, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`,
/// `D-HH:MM:SS`) and durations with units (`90s`, `45m`, `2h`, `1h30m`, `1d`).
pub fn parse_time_minutes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let bad = || format!("`{text}` is not a time limit");
    let seconds: u64 = if trimmed.chars().all(|c| c.is_ascii_digit() || c == ':' || c == '-') && !trimmed.is_empty() {
        let number = |s: &str| s.parse::<u64>().map_err(|_| bad());
        let (days, rest) = match trimmed.split_once('-') {
            Some((days, rest)) => (Some(number(days)?), rest),
            None => (None, trimmed),
        };
        let parts: Vec<u64> = rest.split(':').map(number).collect::<Result<_, _>>()?;
        match (days, parts.as_slice()) {
            (None, [minutes]) => minutes * 60,
            (None, [minutes, seconds]) => minutes * 60 + seconds,
            (None, [hours, minutes, seconds]) => hours * 3600 + minutes * 60 + seconds,
            (Some(days), [hours]) => days * 86400 + hours * 3600,
            (Some(days), [hours, minutes]) => days * 86400 + hours * 3600 + minutes * 60,
            (Some(days), [hours, minutes, seconds]) => days * 86400 + hours * 3600 + minutes * 60 + seconds,
            _ => return Err(bad()),
        }
    } else {
        humantime::parse_duration(trimmed).map_err(|_| bad())?.as_secs()
    };
    if seconds == 0 {
        return Err(format!("`{text}` is zero; a time limit must be at least a minute"));
    }
    Ok(seconds.div_ceil(60))
}

/// Waits up to `grace` for the result of `key` (a new one, when `old` names
/// the object directory a forced rebuild replaces) to become visible here.
fn wait_for_result(store: &Store, key: &str, old: Option<(u64, u64)>, grace: Duration) {
    let until = Instant::now() + grace;
    let visible =
        || matches!(store.lookup(key), Lookup::Fresh(_)) && (old.is_none() || object_identity(store, key) != old);
    while !visible() && Instant::now() < until {
        // Listing the directory makes an NFS client revalidate its cache.
        let _ = std::fs::read_dir(store.root().join("objects")).map(|entries| entries.count());
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The object directory's (device, inode): a rebuild renames a new one into place.
fn object_identity(store: &Store, key: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(store.object_dir(key)).ok().map(|m| (m.dev(), m.ino()))
}

/// (exit code, signal) from Slurm's `3:0`.
fn parse_exit(text: &str) -> Option<(i32, i32)> {
    let (code, signal) = text.trim().split_once(':')?;
    Some((code.parse().ok()?, signal.parse().ok()?))
}

/// The last `n` lines of a file; `None` when it cannot be read.
fn log_tail(path: &Path, n: usize) -> Option<Vec<String>> {
    let bytes = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    Some(lines[lines.len().saturating_sub(n)..].to_vec())
}

/// Sleeps `total`, waking early (and returning true) when `cancel` is set.
fn sleep_unless(total: Duration, cancel: &AtomicBool) -> bool {
    let until = Instant::now() + total;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return true;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

/// Runs a Slurm command; (success, stdout, stderr).
fn run(program: &str, args: &[&str]) -> Result<(bool, String, String), String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    ))
}

fn run_with_stdin(program: &str, args: &[String], input: &str) -> std::io::Result<(bool, String, String)> {
    let mut child =
        Command::new(program).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    ))
}

/// Single-quotes a word for /bin/sh.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A stage or pipeline name as a file name.
fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.=,[]+".contains(c) { c } else { '_' }).collect()
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
