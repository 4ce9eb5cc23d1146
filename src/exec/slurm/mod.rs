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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::exec::{RemoteExecutor, RemoteRequest};
use crate::plan::Pipeline;
use crate::spec::{RetrySpec, SlurmSpec};
use crate::stage::StageError;
use crate::store::{Lookup, Store};

mod poll;
mod submit;

use poll::{job_failure, Snapshot};
pub use submit::{parse_mem_mb, parse_time_minutes};

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
    /// The settings of a loaded pipeline (read from its file when it was
    /// loaded, `--set` overrides applied).
    pub fn of(pipeline: &Pipeline) -> FileSettings {
        FileSettings {
            executor: pipeline.executor.clone(),
            slurm: pipeline.slurm.clone(),
            retries: pipeline.retries.clone(),
        }
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

/// A stage or pipeline name as a file name.
fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.=,[]+".contains(c) { c } else { '_' }).collect()
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
