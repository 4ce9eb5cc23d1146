//! Following a submitted job: one `squeue` call answers for every job of
//! the run (a shared [`Snapshot`]), with a back-off per stage; when the job
//! has left the queue, `scontrol` (or `sacct`) says how it ended, and
//! [`job_failure`] puts an ending without a result in voxflow's words, with
//! the tail of the job's log. Cancelling a job waits until it has left the
//! queue.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{AttemptFailure, SlurmExecutor, ACTIVE, LOG_TAIL_LINES, LOST_CONTACT_AFTER};
use crate::exec::RemoteRequest;
use crate::plan::PlannedStage;
use crate::stage::StageError;
use crate::store::{Lookup, Store};

/// The latest `squeue` answer, shared by all stage threads.
#[derive(Default)]
pub(super) struct Snapshot {
    taken: Option<Instant>,
    asked: BTreeSet<u64>,
    states: HashMap<u64, String>,
}

/// How a job ended, as far as Slurm says.
#[derive(Debug, Clone)]
pub(super) struct JobEnd {
    id: u64,
    /// `COMPLETED`, `FAILED`, `TIMEOUT`, ...; `UNKNOWN` when Slurm forgot the job.
    pub(super) state: String,
    reason: Option<String>,
    /// (exit code, signal) of the batch script.
    exit: Option<(i32, i32)>,
    log: PathBuf,
}

impl SlurmExecutor {
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
    pub(super) fn wait(&self, request: &RemoteRequest<'_>, id: u64, log: &Path) -> Result<JobEnd, StageError> {
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
                    // A resumable stage reports its progress through the shared store.
                    if let Some(progress) = request.store.load_progress(request.key) {
                        (request.progress)(progress.done, progress.total);
                    }
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
}

/// Describes a job that ended without a usable result.
pub(super) fn job_failure(
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
