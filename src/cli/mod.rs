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
mod gc;
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
        Command::Gc(args) => gc::gc(&args),
        Command::Verify(args) => verify::verify(&args),
        Command::Kinds => kinds::kinds(),
        Command::Exec(args) => exec::exec(&args),
        Command::ExampleData(args) => example_data::example_data(&args),
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
