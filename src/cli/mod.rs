//! Command-line interface: one function per subcommand. This module and
//! `progress` are the only code in voxflow that prints.

mod progress;

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;

use voxflow::exec::{self, Force, RunOptions, RunSummary, StageOutcome, Status};
use voxflow::plan::Pipeline;
use voxflow::spec::Diagnostics;
use voxflow::store::{Lookup, Store};

static CANCEL: AtomicBool = AtomicBool::new(false);
/// The Slurm jobs of this run, cancelled by a second Ctrl-C before exiting.
static SLURM_JOBS: OnceLock<voxflow::slurm::LiveJobs> = OnceLock::new();

const EXIT_FAILED: i32 = 1;
const EXIT_INVALID: i32 = 2;
const EXIT_INTERRUPTED: i32 = 130;

#[derive(Parser)]
#[command(
    name = "voxflow",
    version,
    about = "Content-addressed dataflow pipelines for encoding models and brain-alignment research"
)]
struct Cli {
    /// Log detail on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a pipeline file and report every problem at once.
    Validate(PipelineArgs),
    /// Show what `run` would do and why, without running anything.
    Plan(PlanArgs),
    /// Run every stage whose result is not cached.
    Run(RunArgs),
    /// Explain why a stage is (or is not) fresh.
    Why(StageArgs),
    /// Show a stage's artifacts: paths, shapes, digests, logs.
    Show(StageArgs),
    /// Gather the summaries of a sweep into one table and plot.
    Compare(CompareArgs),
    /// Write an HTML page of the last run.
    Report(ReportArgs),
    /// Remove store objects that no given pipeline references.
    Gc(GcArgs),
    /// Re-hash every stored artifact and report mismatches.
    Verify(VerifyArgs),
    /// List the stage kinds.
    Kinds,
    /// Build one stage whose inputs are in the store (what a cluster job runs).
    Exec(ExecArgs),
    /// Write the generated dataset as files in the LeBel 2023 (ds003020) layout.
    ExampleData(ExampleDataArgs),
}

#[derive(Args)]
struct ExampleDataArgs {
    /// Output directory (created).
    out: PathBuf,
    /// synth.stories params as YAML, e.g. '{stories: 4, voxels: 200}'.
    #[arg(long, default_value = "{}")]
    params: String,
    /// Subject directory name under derivative/preprocessed_data/.
    #[arg(long, default_value = "UTS01")]
    subject: String,
}

#[derive(Args)]
struct ExecArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// The expanded stage name.
    stage: String,
    /// Fail unless the stage's key is this one.
    #[arg(long)]
    key: Option<String>,
    /// Rebuild even if the result is in the store.
    #[arg(long)]
    force: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Human,
    Json,
}

#[derive(Args)]
struct PipelineArgs {
    /// The pipeline file.
    pipeline: PathBuf,
    /// Override a param: `--set stage.param=value` (repeatable).
    #[arg(long = "set", value_name = "STAGE.PARAM=VALUE")]
    set: Vec<String>,
    /// Store directory (default: `store:` in the file, else .voxflow/ beside it).
    #[arg(long)]
    store: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

#[derive(Args)]
struct PlanArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Treat these stages (or all, with no value) as dirty.
    #[arg(long, num_args = 0.., value_name = "STAGE")]
    force: Option<Vec<String>>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Stages to run at once (default: the number of cores; with Slurm, jobs
    /// in the queue at once, default `slurm: max_jobs`, else 100).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Rebuild these stages (or all, with no value) even if cached.
    #[arg(long, num_args = 0.., value_name = "STAGE")]
    force: Option<Vec<String>>,
    /// Stop starting stages after the first failure.
    #[arg(long)]
    fail_fast: bool,
    /// Run only these stages and what they need.
    #[arg(long = "stage", value_name = "STAGE")]
    stages: Vec<String>,
    /// Where stages run (default: `executor:` in the file, else local).
    #[arg(long, value_enum)]
    executor: Option<ExecutorKind>,
    #[command(flatten)]
    slurm: SlurmArgs,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ExecutorKind {
    /// This machine.
    Local,
    /// One sbatch job per stage; the store must be on a shared file system.
    Slurm,
}

/// Override the file's `slurm:` block.
#[derive(Args)]
#[command(next_help_heading = "Slurm (with --executor slurm)")]
struct SlurmArgs {
    /// Partition to submit to (`slurm: partition`).
    #[arg(long)]
    partition: Option<String>,
    /// Account to charge (`slurm: account`).
    #[arg(long)]
    account: Option<String>,
    /// Quality of service (`slurm: qos`).
    #[arg(long)]
    qos: Option<String>,
    /// Default time limit of a job (`30`, `01:00:00`, `2h`).
    #[arg(long = "slurm-time", value_name = "TIME")]
    time: Option<String>,
    /// Default memory of a job (`4G`).
    #[arg(long = "slurm-mem", value_name = "MEM")]
    mem: Option<String>,
    /// One more sbatch argument (repeatable): `--sbatch-arg=--constraint=avx2`.
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    sbatch_args: Vec<String>,
}

impl SlurmArgs {
    fn given(&self) -> bool {
        self.partition.is_some()
            || self.account.is_some()
            || self.qos.is_some()
            || self.time.is_some()
            || self.mem.is_some()
            || !self.sbatch_args.is_empty()
    }
}

#[derive(Args)]
struct StageArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Stage name (an expanded name, or a base name for all its expansions).
    stage: String,
}

#[derive(Args)]
struct CompareArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// The metric to plot (default: mean_r when present).
    #[arg(long)]
    metric: Option<String>,
    /// Metrics to print, comma-separated (default: all); the stage and the
    /// swept axes are always printed, and the files and JSON keep every column.
    #[arg(long, value_delimiter = ',')]
    columns: Vec<String>,
    /// Where to write compare.parquet/.csv/.svg (default: <store>/compare/<pipeline>/).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct ReportArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Output file (default: <store>/reports/<pipeline>.html).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct GcArgs {
    /// Pipelines whose current and last-run results are kept.
    #[arg(required = true)]
    pipelines: Vec<PathBuf>,
    #[arg(long)]
    store: Option<PathBuf>,
    /// Only list what would be removed.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct VerifyArgs {
    /// A pipeline file whose store to verify.
    pipeline: Option<PathBuf>,
    /// A store directory (instead of a pipeline).
    #[arg(long)]
    store: Option<PathBuf>,
    /// Remove damaged objects so the next run rebuilds them.
    #[arg(long)]
    fix: bool,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

/// Runs the CLI and returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { EXIT_INVALID } else { 0 };
            let _ = error.print();
            return code;
        }
    };
    init_logging(cli.verbose);
    let _ = ctrlc::set_handler(|| {
        if CANCEL.swap(true, Ordering::SeqCst) {
            if let Some(jobs) = SLURM_JOBS.get() {
                jobs.cancel_all();
            }
            std::process::exit(EXIT_INTERRUPTED);
        }
        eprintln!("\ninterrupted: stopping running stages (Ctrl-C again to quit at once)");
    });
    match cli.command {
        Command::Validate(args) => validate(&args),
        Command::Plan(args) => plan(&args),
        Command::Run(args) => run(&args),
        Command::Why(args) => why(&args),
        Command::Show(args) => show(&args),
        Command::Compare(args) => compare(&args),
        Command::Report(args) => report(&args),
        Command::Gc(args) => gc(&args),
        Command::Verify(args) => verify(&args),
        Command::Kinds => kinds(),
        Command::Exec(args) => exec_one(&args),
        Command::ExampleData(args) => example_data(&args),
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VOXFLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

fn print_error(message: &str, hint: Option<&str>) {
    eprintln!("error: {message}");
    if let Some(hint) = hint {
        eprintln!("  hint: {hint}");
    }
}

fn print_diagnostics(diagnostics: &Diagnostics, format: Format) {
    if format == Format::Json {
        println!("{}", json!({"valid": false, "errors": diagnostics.0}));
    }
    eprintln!("{diagnostics}");
    eprintln!("{} error{} found; nothing ran", diagnostics.0.len(), if diagnostics.0.len() == 1 { "" } else { "s" });
}

/// Loads the pipeline and opens its store, or returns the exit code.
fn open(args: &PipelineArgs) -> Result<(Pipeline, Store), i32> {
    let pipeline = voxflow::load_pipeline(&args.pipeline, &args.set, args.store.clone()).map_err(|diagnostics| {
        print_diagnostics(&diagnostics, args.format);
        EXIT_INVALID
    })?;
    let store = Store::open(&pipeline.store_dir).map_err(|error| {
        print_error(&error.to_string(), Some("check that the store directory is writable, or pass --store"));
        EXIT_FAILED
    })?;
    Ok((pipeline, store))
}

fn force_set(pipeline: &Pipeline, force: &Option<Vec<String>>) -> Result<Force, i32> {
    match force {
        None => Ok(Force::Nothing),
        Some(names) if names.is_empty() => Ok(Force::All),
        Some(names) => {
            let mut set = BTreeSet::new();
            for name in names {
                let found = pipeline.select(name);
                if found.is_empty() {
                    print_error(&format!("--force {name}: no such stage in {}", pipeline.file.display()), None);
                    return Err(EXIT_INVALID);
                }
                set.extend(found);
            }
            Ok(Force::Stages(set))
        }
    }
}

fn validate(args: &PipelineArgs) -> i32 {
    match voxflow::load_pipeline(&args.pipeline, &args.set, args.store.clone()) {
        Ok(pipeline) => {
            let bases: BTreeSet<&str> = pipeline.stages.iter().map(|s| s.base.as_str()).collect();
            if args.format == Format::Json {
                println!(
                    "{}",
                    json!({"valid": true, "pipeline": pipeline.name, "stages": pipeline.stages.len(), "stages_in_file": bases.len()})
                );
            } else {
                println!(
                    "{}: valid, {} stages ({} after matrix expansion)",
                    args.pipeline.display(),
                    bases.len(),
                    pipeline.stages.len()
                );
            }
            0
        }
        Err(diagnostics) => {
            print_diagnostics(&diagnostics, args.format);
            EXIT_INVALID
        }
    }
}

fn outcome_json(outcome: &StageOutcome) -> serde_json::Value {
    serde_json::to_value(outcome).expect("outcome serialises")
}

fn print_outcomes(outcomes: &[StageOutcome]) {
    let width = outcomes.iter().map(|o| o.name.len()).max().unwrap_or(5).min(60);
    for outcome in outcomes {
        let mut line = format!(
            "{:<9} {:<width$} {:>8.2}s  {}",
            outcome.status.as_str(),
            outcome.name,
            outcome.seconds,
            outcome.reason
        );
        if let Some(error) = &outcome.error {
            line.push_str(&format!("\n          error: {error}"));
        }
        if let Some(hint) = &outcome.hint {
            line.push_str(&format!("\n          hint: {hint}"));
        }
        println!("{}", line.trim_end());
    }
}

fn plan(args: &PlanArgs) -> i32 {
    let (pipeline, store) = match open(&args.pipeline) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let force = match force_set(&pipeline, &args.force) {
        Ok(force) => force,
        Err(code) => return code,
    };
    let outcomes = exec::plan(&pipeline, &store, &force);
    let _ = store.save_memo();
    if args.pipeline.format == Format::Json {
        println!(
            "{}",
            json!({"pipeline": pipeline.name, "stages": outcomes.iter().map(outcome_json).collect::<Vec<_>>()})
        );
    } else {
        print_outcomes(&outcomes);
        let dirty = outcomes.iter().filter(|o| o.status == Status::Dirty).count();
        eprintln!("{dirty} of {} stages would run", outcomes.len());
    }
    0
}

fn run(args: &RunArgs) -> i32 {
    let (pipeline, store) = match open(&args.pipeline) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let force = match force_set(&pipeline, &args.force) {
        Ok(force) => force,
        Err(code) => return code,
    };
    let mut targets = Vec::new();
    for name in &args.stages {
        let found = pipeline.select(name);
        if found.is_empty() {
            print_error(&format!("--stage {name}: no such stage in {}", pipeline.file.display()), None);
            return EXIT_INVALID;
        }
        targets.extend(found);
    }
    let executor = match slurm_executor(args, &pipeline) {
        Ok(executor) => executor,
        Err(code) => return code,
    };
    let default_jobs = match &executor {
        Some((_, max_jobs)) => *max_jobs,
        None => exec::default_jobs(),
    };
    let options = RunOptions {
        jobs: args.jobs.unwrap_or(default_jobs).max(1),
        // One GPU slot per visible CUDA device, asked only when a stage wants
        // one (the first call initialises CUDA).
        gpus: if executor.is_none() && pipeline.stages.iter().any(|s| s.wants_gpu()) {
            voxflow::device::cuda_device_count()
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
    let reporter = progress::TerminalReporter::new(std::io::stderr().is_terminal() && !json_mode, !table);
    let remote = executor.as_ref().map(|(executor, _)| executor as &dyn exec::RemoteExecutor);
    let summary = exec::run_with(&pipeline, &store, &options, &reporter, &CANCEL, remote);
    reporter.finish();
    print_summary(&summary, json_mode, table);
    if summary.cancelled {
        EXIT_INTERRUPTED
    } else if summary.failed() {
        EXIT_FAILED
    } else {
        0
    }
}

/// Jobs in the queue at once when neither `-j` nor `slurm: {max_jobs}` says.
const DEFAULT_SLURM_JOBS: usize = 100;

/// The Slurm executor and its default `-j` when the run uses Slurm.
fn slurm_executor(args: &RunArgs, pipeline: &Pipeline) -> Result<Option<(voxflow::slurm::SlurmExecutor, usize)>, i32> {
    let settings = voxflow::slurm::FileSettings::load(pipeline, &args.pipeline.set).map_err(|diagnostics| {
        print_diagnostics(&diagnostics, args.pipeline.format);
        EXIT_INVALID
    })?;
    let slurm = match args.executor {
        Some(kind) => kind == ExecutorKind::Slurm,
        None => settings.executor.as_deref() == Some("slurm"),
    };
    if !slurm {
        if args.slurm.given() {
            print_error(
                "Slurm options were given, but the run is local",
                Some("add `--executor slurm`, or `executor: slurm` to the pipeline file"),
            );
            return Err(EXIT_INVALID);
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
        if let Err(error) = voxflow::slurm::parse_time_minutes(time) {
            print_error(&format!("--slurm-time: {error}"), Some("write minutes (`30`), `HH:MM:SS` or `2h`"));
            return Err(EXIT_INVALID);
        }
        options.time = Some(time.clone());
    }
    if let Some(mem) = &cli.mem {
        if let Err(error) = voxflow::slurm::parse_mem_mb(mem) {
            print_error(&format!("--slurm-mem: {error}"), Some("write a size such as `4G`"));
            return Err(EXIT_INVALID);
        }
        options.mem = Some(mem.clone());
    }
    options.sbatch_args.extend(cli.sbatch_args.iter().cloned());
    let max_jobs = options.max_jobs.unwrap_or(DEFAULT_SLURM_JOBS);
    let executor =
        voxflow::slurm::SlurmExecutor::new(options, settings.retries, args.pipeline.set.clone()).map_err(|error| {
            print_error(&error, None);
            EXIT_FAILED
        })?;
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
fn print_summary(summary: &RunSummary, json_mode: bool, table: bool) {
    if json_mode {
        println!("{}", serde_json::to_string(summary).expect("summary serialises"));
        return;
    }
    if table {
        print_outcomes(&summary.stages);
    }
    eprintln!(
        "{}: {} ran, {} cached, {} failed, {} skipped in {:.2}s",
        summary.pipeline,
        summary.count(Status::Ran),
        summary.count(Status::Cached),
        summary.count(Status::Failed),
        summary.count(Status::Skipped) + summary.count(Status::Cancelled),
        summary.seconds
    );
}

fn select_or_fail(pipeline: &Pipeline, name: &str) -> Result<Vec<usize>, i32> {
    let found = pipeline.select(name);
    if found.is_empty() {
        let names = pipeline.stages.iter().map(|s| s.name.as_str());
        let hint = voxflow::spec::nearest(name, names).map(|n| format!("did you mean `{n}`?"));
        print_error(&format!("no stage `{name}` in {}", pipeline.file.display()), hint.as_deref());
        return Err(EXIT_INVALID);
    }
    Ok(found)
}

fn why(args: &StageArgs) -> i32 {
    let (pipeline, store) = match open(&args.pipeline) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let selected = match select_or_fail(&pipeline, &args.stage) {
        Ok(selected) => selected,
        Err(code) => return code,
    };
    let outcomes = exec::plan(&pipeline, &store, &Force::Nothing);
    let state = store.load_state(&pipeline.name);
    if args.pipeline.format == Format::Json {
        let stages: Vec<_> = selected
            .iter()
            .map(|&i| {
                let mut value = outcome_json(&outcomes[i]);
                value["last_key"] = json!(state.stages.get(&pipeline.stages[i].name).map(|s| s.key.clone()));
                value
            })
            .collect();
        println!("{}", json!({"pipeline": pipeline.name, "stages": stages}));
        return 0;
    }
    for i in selected {
        let outcome = &outcomes[i];
        let last = state.stages.get(&outcome.name).map(|s| s.key.as_str()).unwrap_or("(never run)");
        println!("{} ({}): {}", outcome.name, outcome.kind, outcome.status.as_str());
        println!("  key now:      {}", outcome.key.as_deref().unwrap_or("(not known until upstream stages run)"));
        println!("  key last run: {last}");
        for reason in &outcome.reasons {
            println!("  - {reason}");
        }
        if outcome.reasons.is_empty() && !outcome.reason.is_empty() {
            println!("  - {}", outcome.reason);
        }
    }
    0
}

fn show(args: &StageArgs) -> i32 {
    let (pipeline, store) = match open(&args.pipeline) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let selected = match select_or_fail(&pipeline, &args.stage) {
        Ok(selected) => selected,
        Err(code) => return code,
    };
    let outcomes = exec::plan(&pipeline, &store, &Force::Nothing);
    let mut documents = Vec::new();
    let mut missing = false;
    for i in selected {
        let outcome = &outcomes[i];
        let manifest = outcome.key.as_ref().and_then(|key| match store.lookup(key) {
            Lookup::Fresh(manifest) => Some(manifest),
            _ => None,
        });
        let Some(manifest) = manifest else {
            missing = true;
            if args.pipeline.format == Format::Human {
                println!("{}: no current result ({}); run the pipeline first", outcome.name, outcome.reason);
            }
            documents.push(json!({"name": outcome.name, "status": outcome.status, "reason": outcome.reason}));
            continue;
        };
        let dir = store.object_dir(&manifest.key);
        if args.pipeline.format == Format::Human {
            println!("{} ({}), key {}", outcome.name, outcome.kind, manifest.key);
            println!("  directory: {}", dir.display());
            println!(
                "  built {} on {} ({}) in {:.2}s by voxflow {}",
                manifest.finished_at, manifest.host, manifest.device, manifest.seconds, manifest.voxflow_version
            );
            for (name, output) in &manifest.outputs {
                let shape = output.shape.as_ref().map(|s| format!("{s:?}")).unwrap_or_else(|| "-".into());
                println!(
                    "  output {name}: {} ({}, shape {shape}, {} bytes, digest {})",
                    dir.join(&output.file).display(),
                    output.format,
                    output.bytes,
                    output.digest
                );
            }
            for log in &manifest.logs {
                println!("  log: {}", dir.join(log).display());
            }
            for figure in &manifest.figures {
                println!("  figure: {}", dir.join(figure).display());
            }
            for warning in &manifest.warnings {
                println!("  warning: {warning}");
            }
        }
        let mut value = serde_json::to_value(&*manifest).expect("manifest serialises");
        value["name"] = json!(outcome.name);
        value["directory"] = json!(dir);
        documents.push(value);
    }
    if args.pipeline.format == Format::Json {
        println!("{}", json!({"pipeline": pipeline.name, "stages": documents}));
    }
    if missing {
        EXIT_FAILED
    } else {
        0
    }
}

fn compare(args: &CompareArgs) -> i32 {
    let (pipeline, store) = match open(&args.pipeline) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let comparison = match voxflow::compare::gather(&pipeline, &store) {
        Ok(comparison) => comparison,
        Err(error) => {
            print_error(&error, None);
            return EXIT_FAILED;
        }
    };
    if comparison.table.num_rows() == 0 {
        print_error(
            &format!("no stage of {} has a current `summary` result", pipeline.file.display()),
            Some(&format!(
                "run `voxflow run {}` first; evaluation stages write the summaries",
                pipeline.file.display()
            )),
        );
        return EXIT_FAILED;
    }
    if let Some(metric) = &args.metric {
        if !comparison.metrics.contains(metric) {
            print_error(
                &format!("no metric `{metric}` in the summaries"),
                Some(&format!("metrics: {}", comparison.metrics.join(", "))),
            );
            return EXIT_INVALID;
        }
    }
    if let Some(unknown) = args.columns.iter().find(|c| !comparison.metrics.contains(c)) {
        print_error(
            &format!("no metric `{unknown}` in the summaries (--columns)"),
            Some(&format!("metrics: {}", comparison.metrics.join(", "))),
        );
        return EXIT_INVALID;
    }
    let out = args.out.clone().unwrap_or_else(|| store.root().join("compare").join(&pipeline.name));
    let written = match voxflow::compare::write(&comparison, &out, args.metric.as_deref()) {
        Ok(written) => written,
        Err(error) => {
            print_error(&error, None);
            return EXIT_FAILED;
        }
    };
    if args.pipeline.format == Format::Json {
        let mut buffer = Vec::new();
        {
            let mut writer = arrow::json::ArrayWriter::new(&mut buffer);
            let _ = writer.write(&comparison.table);
            let _ = writer.finish();
        }
        let rows: serde_json::Value = serde_json::from_slice(&buffer).unwrap_or(json!([]));
        println!(
            "{}",
            json!({"pipeline": pipeline.name, "axes": comparison.axes, "metrics": comparison.metrics, "rows": rows, "missing": comparison.missing, "files": written})
        );
    } else {
        let printed = if args.columns.is_empty() {
            comparison.table.clone()
        } else {
            // The stage, its base name and the axes, then the chosen metrics.
            let keep: Vec<usize> = (0..2 + comparison.axes.len())
                .chain(args.columns.iter().filter_map(|c| comparison.table.schema().index_of(c).ok()))
                .collect();
            comparison.table.project(&keep).unwrap_or_else(|_| comparison.table.clone())
        };
        match arrow::util::pretty::pretty_format_batches(&[rounded(&printed)]) {
            Ok(table) => println!("{table}"),
            Err(error) => print_error(&error.to_string(), None),
        }
        for path in &written {
            eprintln!("wrote {}", path.display());
        }
        if !comparison.missing.is_empty() {
            eprintln!("not in the table (no current result): {}", comparison.missing.join(", "));
        }
    }
    0
}

/// The table with floats rounded to 4 decimals, for the terminal.
fn rounded(table: &arrow::array::RecordBatch) -> arrow::array::RecordBatch {
    use arrow::array::{AsArray, Float64Array};
    let columns = table
        .columns()
        .iter()
        .map(|column| match column.as_primitive_opt::<arrow::datatypes::Float64Type>() {
            Some(values) => {
                let rounded: Float64Array = values.iter().map(|v| v.map(|v| (v * 1e4).round() / 1e4)).collect();
                std::sync::Arc::new(rounded) as arrow::array::ArrayRef
            }
            None => column.clone(),
        })
        .collect();
    arrow::array::RecordBatch::try_new(table.schema(), columns).unwrap_or_else(|_| table.clone())
}

fn report(args: &ReportArgs) -> i32 {
    let (pipeline, store) = match open(&args.pipeline) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let summary: Option<RunSummary> =
        std::fs::read(store.last_run_path(&pipeline.name)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let html = voxflow::report::render(&pipeline, &store, summary.as_ref());
    let out = args.out.clone().unwrap_or_else(|| store.root().join("reports").join(format!("{}.html", pipeline.name)));
    if let Some(parent) = out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Err(error) = voxflow::store::write_atomic(&out, html.as_bytes()) {
        print_error(&error.to_string(), None);
        return EXIT_FAILED;
    }
    println!("{}", out.display());
    0
}

fn gc(args: &GcArgs) -> i32 {
    let mut keep = BTreeSet::new();
    let mut store_dir: Option<PathBuf> = args.store.clone();
    for path in &args.pipelines {
        let pipeline = match voxflow::load_pipeline(path, &[], args.store.clone()) {
            Ok(pipeline) => pipeline,
            Err(diagnostics) => {
                print_diagnostics(&diagnostics, Format::Human);
                return EXIT_INVALID;
            }
        };
        let store = match Store::open(&pipeline.store_dir) {
            Ok(store) => store,
            Err(error) => {
                print_error(&error.to_string(), None);
                return EXIT_FAILED;
            }
        };
        match &store_dir {
            Some(dir) if !same_dir(dir, &pipeline.store_dir) => {
                print_error(
                    &format!("{} uses store {}, not {}", path.display(), pipeline.store_dir.display(), dir.display()),
                    Some("run gc once per store, or pass --store"),
                );
                return EXIT_INVALID;
            }
            _ => store_dir = Some(pipeline.store_dir.clone()),
        }
        for outcome in exec::plan(&pipeline, &store, &Force::Nothing) {
            if let Some(key) = outcome.key {
                keep.insert(key);
            }
        }
        keep.extend(store.load_state(&pipeline.name).stages.into_values().map(|s| s.key));
    }
    let Some(store_dir) = store_dir else { return EXIT_INVALID };
    let store = match Store::open(&store_dir) {
        Ok(store) => store,
        Err(error) => {
            print_error(&error.to_string(), None);
            return EXIT_FAILED;
        }
    };
    match store.gc(&keep, args.dry_run) {
        Ok((removed, bytes)) => {
            for key in &removed {
                println!("{} {key}", if args.dry_run { "would remove" } else { "removed" });
            }
            eprintln!(
                "{} entries, {:.1} MB{}",
                removed.len(),
                bytes as f64 / 1e6,
                if args.dry_run { " (dry run)" } else { "" }
            );
            0
        }
        Err(error) => {
            print_error(&error.to_string(), None);
            EXIT_FAILED
        }
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn verify(args: &VerifyArgs) -> i32 {
    let store_dir = match (&args.store, &args.pipeline) {
        (Some(store), _) => store.clone(),
        (None, Some(path)) => match voxflow::load_pipeline(path, &[], None) {
            Ok(pipeline) => pipeline.store_dir,
            Err(diagnostics) => {
                print_diagnostics(&diagnostics, args.format);
                return EXIT_INVALID;
            }
        },
        (None, None) => {
            print_error("say which store to verify", Some("voxflow verify PIPELINE, or voxflow verify --store DIR"));
            return EXIT_INVALID;
        }
    };
    let store = match Store::open(&store_dir) {
        Ok(store) => store,
        Err(error) => {
            print_error(&error.to_string(), None);
            return EXIT_FAILED;
        }
    };
    let objects = store.object_keys().map(|k| k.len()).unwrap_or(0);
    let problems = match store.verify() {
        Ok(problems) => problems,
        Err(error) => {
            print_error(&error.to_string(), None);
            return EXIT_FAILED;
        }
    };
    if args.fix {
        for problem in &problems {
            let _ = store.remove(&problem.key);
        }
    }
    if args.format == Format::Json {
        println!("{}", json!({"store": store_dir, "objects": objects, "problems": problems, "fixed": args.fix}));
    } else {
        for problem in &problems {
            println!("damaged {} ({}): {}", problem.key, problem.stage.as_deref().unwrap_or("?"), problem.detail);
        }
        eprintln!(
            "{objects} objects checked, {} problem{}{}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            if args.fix && !problems.is_empty() { "; damaged objects removed, the next run rebuilds them" } else { "" }
        );
    }
    if problems.is_empty() {
        0
    } else {
        EXIT_FAILED
    }
}

fn exec_one(args: &ExecArgs) -> i32 {
    let (pipeline, store) = match open(&args.pipeline) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let Some(index) = pipeline.index_of(&args.stage) else {
        print_error(
            &format!("no stage `{}` in {}", args.stage, pipeline.file.display()),
            Some("give the expanded name, e.g. fit[method=lanczos]"),
        );
        return EXIT_INVALID;
    };
    match exec::exec_stage(&pipeline, &store, index, args.key.as_deref(), args.force, &CANCEL) {
        Ok((manifest, ran)) => {
            let status = if ran { "ran" } else { "cached" };
            println!(
                "{}",
                json!({"name": args.stage, "key": manifest.key, "status": status, "seconds": manifest.seconds, "digest": manifest.digest})
            );
            0
        }
        Err(error) => {
            print_error(&format!("stage `{}`: {error}", args.stage), error.hint());
            if CANCEL.load(Ordering::Relaxed) {
                EXIT_INTERRUPTED
            } else {
                EXIT_FAILED
            }
        }
    }
}

fn example_data(args: &ExampleDataArgs) -> i32 {
    use voxflow::stages::Stage;
    let yaml: serde_yaml::Value = match serde_yaml::from_str(&args.params) {
        Ok(value) => value,
        Err(error) => {
            print_error(&format!("--params is not YAML: {error}"), None);
            return EXIT_INVALID;
        }
    };
    let value: serde_json::Value = match serde_json::to_value(&yaml) {
        Ok(value) => value,
        Err(error) => {
            print_error(&format!("--params: {error}"), None);
            return EXIT_INVALID;
        }
    };
    // The same checks as a synth.stories stage's params.
    let canonical = match voxflow::stages::synth::Synth.check_params(&value) {
        Ok(canonical) => canonical,
        Err(errors) => {
            for error in &errors {
                let what = if error.path.is_empty() { String::new() } else { format!(" `{}`", error.path) };
                print_error(&format!("--params{what}: {}", error.message), error.hint.as_deref());
            }
            return EXIT_INVALID;
        }
    };
    let params: voxflow::stages::synth::SynthParams = match serde_json::from_value(canonical) {
        Ok(params) => params,
        Err(error) => {
            print_error(&format!("--params: {error}"), Some("the keys are those of the synth.stories stage"));
            return EXIT_INVALID;
        }
    };
    match voxflow::stages::synth::write_lebel_layout(&args.out, &params, &args.subject) {
        Ok(()) => {
            println!("{}", args.out.display());
            0
        }
        Err(error) => {
            print_error(&error, None);
            EXIT_FAILED
        }
    }
}

fn kinds() -> i32 {
    for kind in voxflow::stages::KINDS {
        println!("{:<28} v{}  {}", kind.kind(), kind.version(), kind.summary());
    }
    0
}
