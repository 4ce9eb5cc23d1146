//! Command-line interface: parses the arguments (`args`), sets up logging and
//! Ctrl-C, runs one subcommand (one file each) and turns its `CliError` into
//! the printed error and the exit code (`error`). Also the steps several
//! subcommands share: loading the pipeline and opening its store, and
//! resolving stage names given on the command line. This module and its
//! submodules are the only code in voxflow that prints.

mod args;
mod compare;
mod error;
mod example_data;
mod exec;
mod export;
mod gc;
mod history;
mod init;
mod kinds;
mod output;
mod plan;
mod progress;
mod report;
mod run;
mod show;
mod validate;
mod verify;
mod why;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use clap::Parser;

use voxflow::exec::Force;
use voxflow::plan::Pipeline;
use voxflow::store::Store;

use args::{Cli, Command, PipelineArgs};
use error::{CliError, EXIT_INTERRUPTED, EXIT_INVALID};

/// Set by the first Ctrl-C: running stages stop, no new ones start.
static CANCEL: AtomicBool = AtomicBool::new(false);
/// The Slurm jobs of this run, cancelled by a second Ctrl-C before exiting.
static SLURM_JOBS: OnceLock<voxflow::exec::slurm::LiveJobs> = OnceLock::new();

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
    let result = match cli.command {
        Command::Validate(args) => validate::validate(&args),
        Command::Plan(args) => plan::plan(&args),
        Command::Run(args) => run::run(&args),
        Command::Why(args) => why::why(&args),
        Command::Show(args) => show::show(&args),
        Command::Compare(args) => compare::compare(&args),
        Command::Report(args) => report::report(&args),
        Command::Runs(args) => history::runs(&args),
        Command::Diff(args) => history::diff(&args),
        Command::Gc(args) => gc::gc(&args),
        Command::Verify(args) => verify::verify(&args),
        Command::Kinds(args) => kinds::kinds(&args),
        Command::Exec(args) => exec::exec(&args),
        Command::ExampleData(args) => example_data::example_data(&args),
        Command::Init(args) => init::init(&args),
        Command::Export(args::ExportCommand::Mlflow(args)) => export::mlflow(&args),
        Command::Completions(args) => {
            use clap::CommandFactory;
            use std::io::Write;
            // Into a buffer first: clap_complete panics on a closed pipe (`| head`).
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "voxflow", &mut script);
            let _ = std::io::stdout().write_all(&script);
            Ok(())
        }
    };
    match result {
        Ok(()) => 0,
        Err(error) => error.report(),
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

/// Loads the pipeline file (with its `--set` overrides and `--store`).
fn load(args: &PipelineArgs) -> Result<Pipeline, CliError> {
    voxflow::load_pipeline(&args.pipeline, &args.set, args.store.clone())
        .map_err(|diagnostics| CliError::invalid_pipeline(diagnostics, args.format))
}

/// Loads the pipeline and opens its store.
fn open(args: &PipelineArgs) -> Result<(Pipeline, Store), CliError> {
    let pipeline = load(args)?;
    let store = open_store(&pipeline.store_dir)?;
    Ok((pipeline, store))
}

/// Opens (creating if needed) the store at `dir`; a path that is there but
/// is no directory is a usage error (exit 2), not a failure.
fn open_store(dir: &std::path::Path) -> Result<Store, CliError> {
    if dir.exists() && !dir.is_dir() {
        return Err(CliError::usage(format!("store {} is not a directory", dir.display()))
            .with_hint("pass --store a directory (it is created if missing)"));
    }
    Store::open(dir)
        .map_err(|error| CliError::from(error).with_hint("check that the store directory is writable, or pass --store"))
}

/// The stages `--force` names: none without the flag, all with no value.
fn force_set(pipeline: &Pipeline, force: &Option<Vec<String>>) -> Result<Force, CliError> {
    match force {
        None => Ok(Force::Nothing),
        Some(names) if names.is_empty() => Ok(Force::All),
        Some(names) => Ok(Force::Stages(named_stages(pipeline, "--force", names)?.into_iter().collect())),
    }
}

/// Which stages `targets` need, themselves included (all when `targets` is empty).
fn needed_stages(pipeline: &Pipeline, targets: &[usize]) -> Vec<bool> {
    if targets.is_empty() {
        return vec![true; pipeline.stages.len()];
    }
    let mut keep = vec![false; pipeline.stages.len()];
    let mut stack = targets.to_vec();
    while let Some(i) = stack.pop() {
        if !keep[i] {
            keep[i] = true;
            stack.extend(pipeline.stages[i].inputs.iter().map(|input| input.upstream));
        }
    }
    keep
}

/// The recorded run that `report` and `compare` show, with the pipeline
/// loaded with that run's `--set` overrides: run `--run N`, else the last
/// run unless `--set` asks for the current plan of other params. `None`
/// (the current plan) where the store has no record.
fn chosen_run(
    args: &PipelineArgs,
    run: Option<u64>,
) -> Result<(Pipeline, Store, Option<voxflow::history::RunRecord>), CliError> {
    if run.is_some() && !args.set.is_empty() {
        return Err(CliError::usage("--run shows a recorded run with its own --set overrides; --set cannot change it")
            .with_hint("drop --set, or drop --run to see the current plan with these overrides"));
    }
    let (pipeline, store) = open(args)?;
    let record = match run {
        Some(id) => Some(voxflow::history::load(&store, &pipeline.name, id).ok_or_else(|| {
            let ids = voxflow::history::ids(&store, &pipeline.name);
            CliError::usage(format!("no run {id} of {} in {}", pipeline.name, store.root().display())).with_hint(
                match (ids.first(), ids.last()) {
                    (Some(first), Some(last)) => {
                        format!("recorded runs: {first} to {last} (`voxflow runs {}`)", args.pipeline.display())
                    }
                    _ => format!("the pipeline has no recorded run: `voxflow run {}` first", args.pipeline.display()),
                },
            )
        })?),
        None if args.set.is_empty() => voxflow::history::last_of_file(&store, &pipeline.name, &pipeline.file),
        None => None,
    };
    let Some(record) = record else { return Ok((pipeline, store, None)) };
    if record.overrides.is_empty() {
        return Ok((pipeline, store, Some(record)));
    }
    let run_args = PipelineArgs { set: record.overrides.clone(), ..args.clone() };
    let (pipeline, store) = open(&run_args)?;
    Ok((pipeline, store, Some(record)))
}

/// The indices of the stages a repeatable flag (`--force`, `--stage`)
/// names, in the order given; each name must select at least one stage.
fn named_stages(pipeline: &Pipeline, flag: &str, names: &[String]) -> Result<Vec<usize>, CliError> {
    let mut stages = Vec::new();
    for name in names {
        let found = pipeline.select(name);
        if found.is_empty() {
            return Err(CliError::usage(format!("{flag} {name}: no such stage in {}", pipeline.file.display())));
        }
        stages.extend(found);
    }
    Ok(stages)
}

/// The stages a subcommand's STAGE argument selects, or a usage error that
/// suggests the nearest stage name.
fn select_stages(pipeline: &Pipeline, name: &str) -> Result<Vec<usize>, CliError> {
    let found = pipeline.select(name);
    if found.is_empty() {
        let names = pipeline.stages.iter().map(|s| s.name.as_str());
        let error = CliError::usage(format!("no stage `{name}` in {}", pipeline.file.display()));
        return Err(match voxflow::spec::nearest(name, names) {
            Some(nearest) => error.with_hint(format!("did you mean `{nearest}`?")),
            None => error,
        });
    }
    Ok(found)
}
