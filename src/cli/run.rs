//! `voxflow run`: runs every stage whose result is not cached, on this
//! machine or as Slurm jobs, with progress on stderr and the summary at the
//! end. Exits 1 when a stage failed, 130 when Ctrl-C stopped the run.

use std::io::IsTerminal;

use voxflow::exec::slurm::SlurmExecutor;
use voxflow::exec::{self, RunOptions, RunSummary, Status};
use voxflow::plan::Pipeline;

use super::args::{ExecutorKind, Format, RunArgs};
use super::error::{CliError, EXIT_FAILED, EXIT_INTERRUPTED};
use super::output::print_outcomes;
use super::progress::TerminalReporter;
use super::{CANCEL, SLURM_JOBS};

/// Jobs in the queue at once when neither `-j` nor `slurm: {max_jobs}` says.
const DEFAULT_SLURM_JOBS: usize = 100;

pub fn run(args: &RunArgs) -> Result<(), CliError> {
    if args.dry_run {
        return super::plan::show(&args.pipeline, &args.force, &args.stages);
    }
    let (pipeline, store) = super::open(&args.pipeline)?;
    let force = super::force_set(&pipeline, &args.force)?;
    let targets = super::named_stages(&pipeline, "--stage", &args.stages)?;
    let executor = slurm_executor(args, &pipeline)?;
    let default_jobs = match &executor {
        Some((_, max_jobs)) => *max_jobs,
        None => exec::default_jobs(),
    };
    let options = RunOptions {
        jobs: args.jobs.unwrap_or(default_jobs).max(1),
        // One GPU slot per visible GPU, asked only when a stage wants one
        // (counted without libtorch: `device::gpu_count`).
        gpus: if executor.is_none() && pipeline.stages.iter().any(|s| s.wants_gpu()) {
            voxflow::device::gpu_count()
        } else {
            0
        },
        force,
        fail_fast: args.fail_fast,
        targets: if targets.is_empty() { None } else { Some(targets) },
    };
    let json_mode = args.pipeline.format == Format::Json;
    // Where stdout and stderr are one terminal or one log file, the lines
    // printed as stages end are the record: no table after them.
    let table = json_mode || !same_destination();
    let reporter = TerminalReporter::new(std::io::stderr().is_terminal() && !json_mode, !table);
    let remote = executor.as_ref().map(|(executor, _)| executor as &dyn exec::RemoteExecutor);
    let started_at = exec::now_rfc3339();
    let summary = exec::run_with(&pipeline, &store, &options, &reporter, &CANCEL, remote);
    reporter.finish();
    let mut record = voxflow::history::record(&pipeline, &store, &summary, &args.pipeline.set, started_at);
    let run_id = match voxflow::history::save(&store, &mut record) {
        Ok(id) => Some(id),
        Err(error) => {
            tracing::warn!("could not record the run in the history: {error}");
            None
        }
    };
    print_summary(&summary, run_id, json_mode, table);
    if summary.cancelled {
        Err(CliError::quiet(EXIT_INTERRUPTED))
    } else if summary.failed() {
        Err(CliError::quiet(EXIT_FAILED))
    } else {
        Ok(())
    }
}

/// The Slurm executor and its default `-j` when the run uses Slurm.
fn slurm_executor(args: &RunArgs, pipeline: &Pipeline) -> Result<Option<(SlurmExecutor, usize)>, CliError> {
    let settings = voxflow::exec::slurm::FileSettings::of(pipeline);
    let slurm = match args.executor {
        Some(kind) => kind == ExecutorKind::Slurm,
        None => settings.executor.as_deref() == Some("slurm"),
    };
    if !slurm {
        if args.slurm.given() {
            return Err(CliError::usage("Slurm options were given, but the run is local")
                .with_hint("add `--executor slurm`, or `executor: slurm` to the pipeline file"));
        }
        return Ok(None);
    }
    let mut options = settings.slurm;
    let cli = &args.slurm;
    for (value, slot) in
        [(&cli.partition, &mut options.partition), (&cli.account, &mut options.account), (&cli.qos, &mut options.qos)]
    {
        if value.is_some() {
            slot.clone_from(value);
        }
    }
    if let Some(time) = &cli.time {
        voxflow::exec::slurm::parse_time_minutes(time).map_err(|error| {
            CliError::usage(format!("--slurm-time: {error}")).with_hint("write minutes (`30`), `HH:MM:SS` or `2h`")
        })?;
        options.time = Some(time.clone());
    }
    if let Some(mem) = &cli.mem {
        voxflow::exec::slurm::parse_mem_mb(mem)
            .map_err(|error| CliError::usage(format!("--slurm-mem: {error}")).with_hint("write a size such as `4G`"))?;
        options.mem = Some(mem.clone());
    }
    options.sbatch_args.extend(cli.sbatch_args.iter().cloned());
    let max_jobs = options.max_jobs.unwrap_or(DEFAULT_SLURM_JOBS);
    let executor =
        SlurmExecutor::new(options, settings.retries, args.pipeline.set.clone()).map_err(CliError::failed)?;
    let _ = SLURM_JOBS.set(executor.live_jobs());
    Ok(Some((executor, max_jobs)))
}

/// Whether stdout and stderr are the same open file (one terminal, one log
/// file, one pipe): `voxflow run > run.log 2>&1` or a cluster job's output.
fn same_destination() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let identity = |fd: std::os::fd::BorrowedFd<'_>| {
        let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
        let metadata = file.metadata().ok()?;
        Some((metadata.dev(), metadata.ino(), metadata.rdev()))
    };
    match (identity(std::io::stdout().as_fd()), identity(std::io::stderr().as_fd())) {
        (Some(out), Some(err)) => out == err,
        _ => false,
    }
}

/// The summary: JSON on stdout, or the table of stages on stdout (when
/// `table`) and the counts on stderr.
fn print_summary(summary: &RunSummary, run_id: Option<u64>, json_mode: bool, table: bool) {
    if json_mode {
        let mut value = serde_json::to_value(summary).expect("summary serialises");
        value["run"] = serde_json::json!(run_id);
        println!("{value}");
        return;
    }
    if table {
        print_outcomes(&summary.stages);
    }
    eprintln!(
        "{}: {} ran, {} cached, {} failed, {} skipped in {:.2}s{}",
        summary.pipeline,
        summary.count(Status::Ran),
        summary.count(Status::Cached),
        summary.count(Status::Failed),
        summary.count(Status::Skipped) + summary.count(Status::Cancelled),
        summary.seconds,
        run_id.map(|id| format!(" (run {id})")).unwrap_or_default()
    );
}
