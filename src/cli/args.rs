//! The command line as clap derive structs: the subcommands, their flags and
//! the options several of them share (`PipelineArgs`, `--format`). Parsing
//! only; what each subcommand does is in its own file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "voxflow",
    version,
    about = "Content-addressed dataflow pipelines for encoding models and brain-alignment research"
)]
pub struct Cli {
    /// Log detail on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Write an HTML page of one run (default: the last).
    Report(ReportArgs),
    /// List the recorded runs of a pipeline.
    Runs(PipelineArgs),
    /// Show the params and summary metrics that differ between two runs.
    Diff(DiffArgs),
    /// Remove store objects that no given pipeline references.
    Gc(GcArgs),
    /// Re-hash every stored artifact and report mismatches.
    Verify(VerifyArgs),
    /// List the stage kinds, or one kind's params with their defaults.
    Kinds(KindsArgs),
    /// Build one stage whose inputs are in the store (what a cluster job runs).
    Exec(ExecArgs),
    /// Write the generated dataset as files in the LeBel 2023 (ds003020) layout.
    ExampleData(ExampleDataArgs),
    /// Write a starter pipeline, its README and .gitignore into a directory.
    Init(InitArgs),
    /// Send recorded runs to another tool: `voxflow export mlflow PIPELINE`.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Print a shell completion script: `voxflow completions bash > ~/.local/share/bash-completion/completions/voxflow`.
    Completions(CompletionsArgs),
}

#[derive(Args)]
pub struct InitArgs {
    /// The directory (created when missing; no file in it is overwritten).
    pub dir: PathBuf,
    /// `encoding`: an encoding model on generated stories, ready to swap in
    /// your data; `command`: a sweep over a chain of your own scripts.
    #[arg(long, value_enum, default_value_t = InitTemplate::Encoding)]
    pub template: InitTemplate,
    /// The pipeline's name (default: the directory's).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum InitTemplate {
    Encoding,
    Command,
}

#[derive(Subcommand)]
pub enum ExportCommand {
    /// One MLflow run per voxflow run, one nested run per stage (params,
    /// metrics, training curves, tags), through the tracking server's REST API.
    Mlflow(MlflowArgs),
}

#[derive(Args)]
pub struct MlflowArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// The recorded run to export (default: the last; see `voxflow runs`).
    #[arg(long, conflicts_with = "all")]
    pub run: Option<u64>,
    /// Export every recorded run of the pipeline.
    #[arg(long)]
    pub all: bool,
    /// The tracking server, e.g. http://127.0.0.1:5000.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub tracking_uri: Option<String>,
    /// The MLflow experiment (default: the pipeline's name; created when missing).
    #[arg(long)]
    pub experiment: Option<String>,
}

#[derive(Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args)]
pub struct ExampleDataArgs {
    /// Output directory (created).
    pub out: PathBuf,
    /// synth.stories params as YAML, e.g. '{stories: 4, voxels: 200}'.
    #[arg(long, default_value = "{}")]
    pub params: String,
    /// Subject directory name under derivative/preprocessed_data/.
    #[arg(long, default_value = "UTS01")]
    pub subject: String,
}

#[derive(Args)]
pub struct KindsArgs {
    /// A kind (e.g. `ridge`): print its params, types, defaults and outputs.
    pub kind: Option<String>,
}

#[derive(Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// The earlier run (default: the one before the last; see `voxflow runs`).
    pub run_a: Option<u64>,
    /// The later run (default: the last).
    pub run_b: Option<u64>,
}

#[derive(Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// The expanded stage name.
    pub stage: String,
    /// Fail unless the stage's key is this one.
    #[arg(long)]
    pub key: Option<String>,
    /// Rebuild even if the result is in the store.
    #[arg(long)]
    pub force: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

#[derive(Args, Clone)]
pub struct PipelineArgs {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// Override a param: `--set stage.param=value` (repeatable).
    #[arg(long = "set", value_name = "STAGE.PARAM=VALUE")]
    pub set: Vec<String>,
    /// Store directory (default: `store:` in the file, else .voxflow/ beside it).
    #[arg(long, env = "VOXFLOW_STORE")]
    pub store: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Treat a stage as dirty: `--force=STAGE` (repeatable), or all with `--force`.
    #[arg(long, num_args = 0..=1, require_equals = true, value_name = "STAGE")]
    pub force: Option<Vec<String>>,
    /// Plan only these stages and what they need (repeatable).
    #[arg(long = "stage", value_name = "STAGE")]
    pub stages: Vec<String>,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Stages to run at once (default: the number of cores; with Slurm, jobs
    /// in the queue at once, default `slurm: max_jobs`, else 100).
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// Rebuild a stage even if cached: `--force=STAGE` (repeatable), or all with `--force`.
    #[arg(long, num_args = 0..=1, require_equals = true, value_name = "STAGE")]
    pub force: Option<Vec<String>>,
    /// Show what would run and why (`voxflow plan`), without running anything.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Stop starting stages after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Run only these stages and what they need.
    #[arg(long = "stage", value_name = "STAGE")]
    pub stages: Vec<String>,
    /// Where stages run (default: `executor:` in the file, else local).
    #[arg(long, value_enum)]
    pub executor: Option<ExecutorKind>,
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ExecutorKind {
    /// This machine.
    Local,
    /// One sbatch job per stage; the store must be on a shared file system.
    Slurm,
}

/// Override the file's `slurm:` block.
#[derive(Args)]
#[command(next_help_heading = "Slurm (with --executor slurm)")]
pub struct SlurmArgs {
    /// Partition to submit to (`slurm: partition`).
    #[arg(long)]
    pub partition: Option<String>,
    /// Account to charge (`slurm: account`).
    #[arg(long)]
    pub account: Option<String>,
    /// Quality of service (`slurm: qos`).
    #[arg(long)]
    pub qos: Option<String>,
    /// Default time limit of a job (`30`, `01:00:00`, `2h`).
    #[arg(long = "slurm-time", value_name = "TIME")]
    pub time: Option<String>,
    /// Default memory of a job (`4G`).
    #[arg(long = "slurm-mem", value_name = "MEM")]
    pub mem: Option<String>,
    /// One more sbatch argument (repeatable): `--sbatch-arg=--constraint=avx2`.
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
}

impl SlurmArgs {
    pub fn given(&self) -> bool {
        self.partition.is_some()
            || self.account.is_some()
            || self.qos.is_some()
            || self.time.is_some()
            || self.mem.is_some()
            || !self.sbatch_args.is_empty()
    }
}

#[derive(Args)]
pub struct StageArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Stage name (an expanded name, or a base name for all its expansions).
    pub stage: String,
}

#[derive(Args)]
pub struct CompareArgs {
    /// The pipeline file (or give several with --pipelines).
    #[arg(required_unless_present = "pipelines")]
    pub pipeline: Option<PathBuf>,
    /// Gather from several pipelines into one table with a `pipeline` column
    /// (each at its last run, or its current plan with --set).
    #[arg(long, num_args = 1.., value_name = "PIPELINE")]
    pub pipelines: Vec<PathBuf>,
    /// Override a param: `--set stage.param=value` (repeatable; applies to every pipeline).
    #[arg(long = "set", value_name = "STAGE.PARAM=VALUE")]
    pub set: Vec<String>,
    /// Store directory (default: `store:` in the file, else .voxflow/ beside it).
    #[arg(long, env = "VOXFLOW_STORE")]
    pub store: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// The metric to plot and to spread with --pivot (default: mean_r when
    /// present for the plot; the first metric for --pivot).
    #[arg(long)]
    pub metric: Option<String>,
    /// Metrics to print, comma-separated (default: all); the stage and the
    /// swept axes (or the --by keys) are always printed, and the files and
    /// JSON keep every column.
    #[arg(long, value_delimiter = ',')]
    pub columns: Vec<String>,
    /// Keep the rows that match: `method == lanczos and layer >= 3`,
    /// `mode in [regular, proto_frozen]` (== != < <= > >= in, not in, joined
    /// by `and`; columns of numbers compare as numbers).
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Group by these columns (axes, `pipeline`, or a metric such as `step`),
    /// comma-separated, and aggregate every other metric (see --agg).
    #[arg(long, value_delimiter = ',', value_name = "AXES")]
    pub by: Vec<String>,
    /// One column per value of AXIS for one metric (--metric), rows by the
    /// --by columns, else by the other axes.
    #[arg(long, value_name = "AXIS")]
    pub pivot: Option<String>,
    /// Aggregates for --by and --pivot, comma-separated: mean, sd (sample
    /// sd, ddof=1), median, n (non-null count), min, max (default:
    /// mean,sd,n with --by; mean with --pivot).
    #[arg(long, value_delimiter = ',', value_name = "AGGS")]
    pub agg: Vec<String>,
    /// Sort by these columns of the result, comma-separated, each `COL` or
    /// `COL:desc` (default: the --by keys; the stage order otherwise).
    #[arg(long, value_delimiter = ',', value_name = "COL[:desc]")]
    pub sort: Vec<String>,
    /// Where to write compare.parquet/.csv/.svg (default: <store>/compare/<pipeline>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The run to show (`voxflow runs` lists them; default: the last, or
    /// the current plan when `--set` is given).
    #[arg(long, value_name = "N")]
    pub run: Option<u64>,
}

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Output file (default: <store>/reports/<pipeline>.html).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The run to show (`voxflow runs` lists them; default: the last, or
    /// the current plan when `--set` is given).
    #[arg(long, value_name = "N")]
    pub run: Option<u64>,
}

#[derive(Args)]
pub struct GcArgs {
    /// Pipelines whose current results and those of their last runs are kept.
    #[arg(required = true)]
    pub pipelines: Vec<PathBuf>,
    #[arg(long, env = "VOXFLOW_STORE")]
    pub store: Option<PathBuf>,
    /// Keep the results of each pipeline's last N recorded runs.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub keep_runs: usize,
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// A pipeline file whose store to verify.
    pub pipeline: Option<PathBuf>,
    /// A store directory (instead of a pipeline).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Remove damaged objects so the next run rebuilds them.
    #[arg(long)]
    pub fix: bool,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}
