//! The scheduler loop of [`run_with`]: stages are resolved in dependency
//! order as their inputs settle (cached results are taken at once), ready
//! stages launch in pipeline order while `-j` slots and GPU slots allow, each
//! on its own scoped thread, and finished stages feed their dependents. The
//! run's state and summary are written to the store at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::{
    dirty_reasons, key_record, needed, now_rfc3339, outcome, Finished, Job, RemoteExecutor, Reporter, RunOptions,
    RunSummary, StageOutcome, Status,
};
use crate::key::{KeyRecord, Reason};
use crate::plan::Pipeline;
use crate::stage::StageError;
use crate::store::{Lookup, Manifest, StageState, Store};

enum Slot {
    Waiting,
    Ready { record: KeyRecord, key: String, reasons: Vec<Reason> },
    Running,
    Done,
    Failed,
    Skipped,
}

/// Runs the pipeline: everything not cached, in parallel, in this process.
pub fn run(
    pipeline: &Pipeline,
    store: &Store,
    options: &RunOptions,
    reporter: &dyn Reporter,
    cancel: &AtomicBool,
) -> RunSummary {
    run_with(pipeline, store, options, reporter, cancel, None)
}

/// Like [`run`], with stages handed to `remote` (a cluster) when given.
pub fn run_with(
    pipeline: &Pipeline,
    store: &Store,
    options: &RunOptions,
    reporter: &dyn Reporter,
    cancel: &AtomicBool,
    remote: Option<&dyn RemoteExecutor>,
) -> RunSummary {
    use std::sync::atomic::Ordering;
    let started = Instant::now();
    let n = pipeline.stages.len();
    let state = store.load_state(&pipeline.name);
    let needed = needed(pipeline, &options.targets);
    let jobs = options.jobs.max(1);
    reporter.start(&pipeline.name, needed.iter().filter(|&&k| k).count());
    let mut slots: Vec<Slot> = (0..n).map(|_| Slot::Waiting).collect();
    let mut outcomes: Vec<Option<StageOutcome>> = vec![None; n];
    let mut upstream: Vec<Option<Arc<Manifest>>> = vec![None; n];
    let mut free_gpus: Vec<usize> = (0..options.gpus).rev().collect();
    let mut used = 0usize;
    let mut running = 0usize;
    let mut stop = false;
    let (sender, receiver) = mpsc::channel::<Finished>();
    let mut updates = BTreeMap::new();

    // Each event touches only the stages it concerns: `dependents[i]` are
    // the needed stages that read stage i (once per input that does),
    // `unsettled[j]` counts stage j's inputs not yet done, `settled` holds
    // the waiting stages to look at again (an input finished or failed),
    // `ready` the stages to launch. Both sets are ordered, so stages are
    // resolved and launched in pipeline order as before, without scanning
    // all n stages for every finished one.
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut unsettled: Vec<usize> = vec![0; n];
    for (i, stage) in pipeline.stages.iter().enumerate() {
        if needed[i] {
            for input in &stage.inputs {
                dependents[input.upstream].push(i);
            }
            unsettled[i] = stage.inputs.len();
        }
    }
    let mut settled: BTreeSet<usize> = (0..n).filter(|&i| needed[i] && unsettled[i] == 0).collect();
    let mut ready: BTreeSet<usize> = BTreeSet::new();
    // Stage `i` is done (`ok`) or failed or skipped: its dependents learn it.
    let settle = |i: usize, ok: bool, unsettled: &mut Vec<usize>, settled: &mut BTreeSet<usize>| {
        for &j in &dependents[i] {
            if ok {
                unsettled[j] -= 1;
                if unsettled[j] == 0 {
                    settled.insert(j);
                }
            } else {
                settled.insert(j);
            }
        }
    };

    // Running stages are built on a pool of scoped stage threads, started
    // as the number of stages running at once grows (never more than
    // `jobs`) and reused for the next stage; numerical work inside a stage
    // uses rayon's shared pool. A thread per stage cost each stage a
    // thread's creation and teardown (clone3, its stack mapped and
    // unmapped, its malloc arena released): about 8% of the runner's CPU
    // time on 1000 trivial command stages (benches/README.md).
    let (work_sender, work_receiver) = mpsc::channel::<(usize, Job, Vec<Reason>)>();
    let work_receiver = std::sync::Mutex::new(work_receiver);
    let mut stage_threads = 0usize;
    std::thread::scope(|scope| loop {
        // Resolve every waiting stage whose inputs are settled (lowest index
        // first: a stage's inputs come before it, so one resolved here can
        // settle later ones in the same pass).
        while let Some(i) = settled.pop_first() {
            if !needed[i] || !matches!(slots[i], Slot::Waiting) {
                continue;
            }
            let stage = &pipeline.stages[i];
            if let Some(bad) =
                stage.inputs.iter().find(|input| matches!(slots[input.upstream], Slot::Failed | Slot::Skipped))
            {
                // After Ctrl-C, what did not run was interrupted, not skipped.
                let interrupted = cancel.load(Ordering::Relaxed);
                let status = if interrupted { Status::Cancelled } else { Status::Skipped };
                let mut skipped = outcome(stage, None, status, Vec::new());
                skipped.reason = if interrupted {
                    "interrupted".into()
                } else {
                    format!("upstream `{}` did not finish", pipeline.stages[bad.upstream].name)
                };
                reporter.stage_finished(&skipped);
                outcomes[i] = Some(skipped);
                slots[i] = Slot::Skipped;
                settle(i, false, &mut unsettled, &mut settled);
                continue;
            }
            if !stage.inputs.iter().all(|input| matches!(slots[input.upstream], Slot::Done)) {
                continue;
            }
            let record = match key_record(stage, store, &upstream) {
                Ok(record) => record,
                Err(error) => {
                    let mut failed = outcome(stage, None, Status::Failed, Vec::new());
                    failed.error = Some(error);
                    reporter.stage_finished(&failed);
                    outcomes[i] = Some(failed);
                    slots[i] = Slot::Failed;
                    settle(i, false, &mut unsettled, &mut settled);
                    continue;
                }
            };
            let key = record.key();
            let lookup = store.lookup(&key);
            if !options.force.covers(i) {
                if let Lookup::Fresh(manifest) = lookup {
                    let manifest: Arc<Manifest> = Arc::from(manifest);
                    upstream[i] = Some(manifest.clone());
                    updates.insert(stage.name.clone(), StageState { key: key.clone(), record });
                    let mut cached = outcome(stage, Some(key), Status::Cached, vec![Reason::Cached]);
                    cached.summary = manifest.outputs.get("summary").map(|entry| entry.file.clone());
                    reporter.stage_finished(&cached);
                    outcomes[i] = Some(cached);
                    slots[i] = Slot::Done;
                    settle(i, true, &mut unsettled, &mut settled);
                    continue;
                }
            }
            let reasons = if options.force.covers(i) {
                vec![Reason::Forced]
            } else {
                dirty_reasons(pipeline, stage, state.stages.get(&stage.name), &record, &key, &lookup)
            };
            slots[i] = Slot::Ready { record, key, reasons };
            ready.insert(i);
        }

        let cancelled = cancel.load(Ordering::Relaxed);
        if cancelled || stop {
            ready.clear();
            for i in 0..n {
                if needed[i] && matches!(slots[i], Slot::Waiting | Slot::Ready { .. }) {
                    let status = if cancelled { Status::Cancelled } else { Status::Skipped };
                    let mut skipped = outcome(&pipeline.stages[i], None, status, Vec::new());
                    skipped.reason =
                        if cancelled { "interrupted".into() } else { "stopped after a failure (--fail-fast)".into() };
                    reporter.stage_finished(&skipped);
                    outcomes[i] = Some(skipped);
                    slots[i] = Slot::Skipped;
                }
            }
        } else {
            // Launch ready stages while slots allow, in pipeline order (i
            // indexes slots, stages and outcomes alike).
            let mut launched = Vec::new();
            for &i in &ready {
                if used >= jobs {
                    break;
                }
                let stage = &pipeline.stages[i];
                // A remote stage's threads are the cluster's: it takes one of the `-j` job slots.
                let cost = if remote.is_some() { 1 } else { stage.resources.threads.unwrap_or(1).clamp(1, jobs) };
                if used + cost > jobs {
                    continue;
                }
                let gpu = if stage.wants_gpu() && options.gpus > 0 {
                    match free_gpus.pop() {
                        Some(gpu) => Some(gpu),
                        None => continue,
                    }
                } else {
                    None
                };
                let Slot::Ready { record, key, reasons } = std::mem::replace(&mut slots[i], Slot::Running) else {
                    unreachable!()
                };
                launched.push(i);
                used += cost;
                running += 1;
                reporter.stage_started(&stage.name);
                let job = Job {
                    gpu,
                    cost,
                    threads: cost,
                    reporter,
                    force: options.force.covers(i),
                    remote,
                    ..Job::new(pipeline, store, i, &upstream, key, record, cancel)
                };
                work_sender.send((i, job, reasons)).expect("the stage threads outlive the loop");
                // Each running stage has a thread: the queued one is taken
                // by a thread that finishes or by a new one.
                if running > stage_threads {
                    let (sender, receiver) = (sender.clone(), &work_receiver);
                    std::thread::Builder::new()
                        .name(format!("voxflow-stage-{stage_threads}"))
                        .spawn_scoped(scope, move || stage_thread(receiver, sender))
                        .expect("spawn a stage thread");
                    stage_threads += 1;
                }
            }
            for i in launched {
                ready.remove(&i);
            }
        }

        if running == 0 {
            // The stage threads end when the queue closes.
            drop(work_sender);
            break;
        }
        let finished = match receiver.recv_timeout(Duration::from_millis(100)) {
            Ok(finished) => finished,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        running -= 1;
        used -= finished.cost;
        if let Some(gpu) = finished.gpu {
            free_gpus.push(gpu);
        }
        let i = finished.index;
        let stage = &pipeline.stages[i];
        match finished.result {
            Ok((manifest, ran)) => {
                let manifest = Arc::new(manifest);
                let status = if ran { Status::Ran } else { Status::Cached };
                let reasons = if ran { finished.reasons } else { vec![Reason::Cached] };
                let mut done = outcome(stage, Some(finished.key.clone()), status, reasons);
                done.seconds = finished.seconds;
                done.warnings = manifest.warnings.clone();
                done.summary = manifest.outputs.get("summary").map(|entry| entry.file.clone());
                reporter.stage_finished(&done);
                outcomes[i] = Some(done);
                updates.insert(stage.name.clone(), StageState { key: finished.key, record: finished.record });
                upstream[i] = Some(manifest);
                slots[i] = Slot::Done;
                settle(i, true, &mut unsettled, &mut settled);
            }
            Err(error) => {
                let cancelled = matches!(error, StageError::Cancelled);
                let status = if cancelled { Status::Cancelled } else { Status::Failed };
                let mut failed = outcome(stage, Some(finished.key), status, finished.reasons);
                failed.seconds = finished.seconds;
                failed.hint = error.hint().map(str::to_string);
                failed.error = Some(error.to_string());
                reporter.stage_finished(&failed);
                outcomes[i] = Some(failed);
                slots[i] = Slot::Failed;
                settle(i, false, &mut unsettled, &mut settled);
                if options.fail_fast && !cancelled {
                    stop = true;
                }
            }
        }
    });

    if let Err(error) = store.update_state(&pipeline.name, updates) {
        tracing::warn!("could not record the run state: {error}");
    }
    if let Err(error) = store.save_memo() {
        tracing::warn!("could not save the digest memo: {error}");
    }
    let summary = RunSummary {
        pipeline: pipeline.name.clone(),
        file: pipeline.file.clone(),
        finished_at: now_rfc3339(),
        seconds: started.elapsed().as_secs_f64(),
        stages: outcomes.into_iter().flatten().collect(),
        cancelled: cancel.load(Ordering::Relaxed),
    };
    let text = serde_json::to_vec(&summary).expect("summary serialises");
    if let Err(error) = crate::store::write_atomic(&store.last_run_path(&pipeline.name), &text) {
        tracing::warn!("could not record the run summary: {error}");
    }
    summary
}

/// A stage thread: builds the stages queued for it, one at a time, until
/// the scheduler closes the queue.
fn stage_thread(work: &std::sync::Mutex<mpsc::Receiver<(usize, Job<'_>, Vec<Reason>)>>, done: mpsc::Sender<Finished>) {
    loop {
        let next = work.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok((i, job, reasons)) = next else { return };
        if done.send(job.execute(i, reasons)).is_err() {
            return;
        }
    }
}
