//! `StageContext`: what a running stage sees. It resolves input roles to
//! artifacts in the store, takes outputs into the staging directory, and
//! carries progress, warnings and cancellation back to the scheduler.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::array::RecordBatch;
use serde_json::Value;

use crate::artifact::{self, MatrixArtifact};
use crate::device::Device;
use crate::store::Manifest;

/// An input of a running stage: an upstream result in the store, and the
/// output it names (or all of them).
#[derive(Debug, Clone)]
pub struct InputArtifact {
    pub stage: String,
    pub dir: PathBuf,
    pub manifest: Arc<Manifest>,
    pub output: Option<String>,
}

impl InputArtifact {
    /// The one output this input names: the selected one, or the only one.
    pub fn single_output(&self) -> Result<(&str, PathBuf), StageError> {
        let name = match &self.output {
            Some(name) => name.as_str(),
            None if self.manifest.outputs.len() == 1 => {
                self.manifest.outputs.keys().next().map(String::as_str).unwrap_or_default()
            }
            None => {
                let names: Vec<&str> = self.manifest.outputs.keys().map(String::as_str).collect();
                return Err(StageError::failed(format!(
                    "input stage `{}` has outputs {}: say which one",
                    self.stage,
                    names.join(", ")
                ))
                .with_hint(format!(
                    "write `{}.{}` in `inputs`",
                    self.stage,
                    names.first().unwrap_or(&"output")
                )));
            }
        };
        let entry = self
            .manifest
            .outputs
            .get(name)
            .ok_or_else(|| StageError::failed(format!("input stage `{}` has no output `{name}`", self.stage)))?;
        Ok((name, self.dir.join(&entry.file)))
    }

    /// The path of output `name` of this input's stage.
    pub fn output_path(&self, name: &str) -> Result<PathBuf, StageError> {
        let entry = self
            .manifest
            .outputs
            .get(name)
            .ok_or_else(|| StageError::failed(format!("input stage `{}` has no output `{name}`", self.stage)))?;
        Ok(self.dir.join(&entry.file))
    }
}

/// A stage failure, with a hint on how to fix it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StageError {
    #[error("{message}")]
    Failed { message: String, hint: Option<String> },
    #[error("cancelled")]
    Cancelled,
}

impl StageError {
    pub fn failed(message: impl Into<String>) -> StageError {
        StageError::Failed { message: message.into(), hint: None }
    }

    pub fn with_hint(self, hint: impl Into<String>) -> StageError {
        match self {
            StageError::Failed { message, .. } => StageError::Failed { message, hint: Some(hint.into()) },
            other => other,
        }
    }

    pub fn hint(&self) -> Option<&str> {
        match self {
            StageError::Failed { hint, .. } => hint.as_deref(),
            StageError::Cancelled => None,
        }
    }
}

impl From<artifact::ArtifactError> for StageError {
    fn from(error: artifact::ArtifactError) -> StageError {
        StageError::failed(error.to_string())
    }
}

/// A written output, before hashing.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WrittenOutput {
    pub name: String,
    pub file: String,
    pub format: String,
    pub shape: Option<Vec<usize>>,
}

pub struct StageContext<'a> {
    pub name: &'a str,
    pub params: &'a Value,
    /// The stage's key, and its params as the key has them (no `device`,
    /// file paths replaced): what a table's provenance metadata says, so
    /// that the same key writes the same bytes wherever it runs.
    pub key: &'a str,
    pub keyed_params: &'a Value,
    /// The pipeline file's directory: relative paths in params resolve here.
    pub base_dir: &'a Path,
    /// The staging directory outputs go into.
    pub out_dir: &'a Path,
    pub threads: usize,
    /// The device the scheduler assigned (the CPU, or the GPU slot the stage
    /// got); a stage that resolves its `device` param writes the device it
    /// used back here, and the manifest records it.
    pub device: Device,
    pub inputs: &'a BTreeMap<String, InputArtifact>,
    /// The stage's work directory (`.voxflow/work/<key>/`) when its kind is
    /// resumable: it survives a failed or killed attempt and is removed when
    /// the result is committed.
    pub work_dir: Option<&'a Path>,
    pub(crate) outputs: Vec<WrittenOutput>,
    pub(crate) warnings: Vec<String>,
    pub(crate) logs: Vec<String>,
    pub(crate) figures: Vec<String>,
    pub(crate) nondeterministic: Option<String>,
    pub(crate) cancel: &'a AtomicBool,
    pub(crate) progress: &'a (dyn Fn(u64, u64) + Sync),
    pub(crate) note: &'a (dyn Fn(&str) + Sync),
    pub(crate) activity: &'a (dyn Fn(Activity<'_>) + Sync),
}

/// What a running stage says about its work besides counts: the phase it
/// is in while it has no count ("loading model"), or the unit of its count
/// ("words", "steps").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity<'t> {
    Phase(&'t str),
    Unit(&'t str),
}

impl<'a> StageContext<'a> {
    pub fn input(&self, role: &str) -> Result<&InputArtifact, StageError> {
        self.inputs.get(role).ok_or_else(|| {
            let roles: Vec<&str> = self.inputs.keys().map(String::as_str).collect();
            StageError::failed(format!(
                "stage `{}` needs an input named `{role}`; it has: {}",
                self.name,
                if roles.is_empty() { "none".to_string() } else { roles.join(", ") }
            ))
            .with_hint(format!("add `inputs: {{{role}: <stage>}}`"))
        })
    }

    pub fn has_input(&self, role: &str) -> bool {
        self.inputs.contains_key(role)
    }

    pub fn input_matrix(&self, role: &str) -> Result<MatrixArtifact, StageError> {
        let (_, path) = self.input(role)?.single_output()?;
        Ok(artifact::read_matrix(&path)?)
    }

    /// The story segments of a matrix input, without reading its data.
    pub fn input_segments(&self, role: &str) -> Result<Vec<crate::artifact::Segment>, StageError> {
        let (_, path) = self.input(role)?.single_output()?;
        Ok(artifact::read_matrix_segments(&path)?)
    }

    pub fn input_table(&self, role: &str) -> Result<RecordBatch, StageError> {
        let (_, path) = self.input(role)?.single_output()?;
        Ok(artifact::read_batch(&path)?)
    }

    /// Resolves a path from params against the pipeline's directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    pub fn write_matrix(&mut self, name: &str, matrix: &MatrixArtifact) -> Result<(), StageError> {
        let file = format!("{name}.arrow");
        artifact::write_matrix(&self.out_dir.join(&file), matrix)?;
        self.outputs.push(WrittenOutput {
            name: name.to_string(),
            file,
            format: "matrix".into(),
            shape: Some(vec![matrix.matrix.rows, matrix.matrix.cols]),
        });
        Ok(())
    }

    /// A writer for a matrix output built block by block; `finish` it, then
    /// call [`StageContext::add_matrix`].
    pub fn matrix_writer(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
        metadata: &std::collections::BTreeMap<String, String>,
    ) -> Result<artifact::MatrixWriter, StageError> {
        Ok(artifact::MatrixWriter::create(&self.out_dir.join(format!("{name}.arrow")), rows, cols, metadata)?)
    }

    /// Registers a matrix output written with [`StageContext::matrix_writer`].
    pub fn add_matrix(&mut self, name: &str, rows: usize, cols: usize) {
        self.outputs.push(WrittenOutput {
            name: name.to_string(),
            file: format!("{name}.arrow"),
            format: "matrix".into(),
            shape: Some(vec![rows, cols]),
        });
    }

    /// Writes a Parquet table output with the stage's provenance in its
    /// metadata: `voxflow.stage` and `voxflow.params` (as keyed). Not the
    /// key: a stage whose inputs changed but whose table did not must write
    /// the same bytes, or early cut-off would stop working (the key is in the
    /// manifest beside the file).
    pub fn write_table(&mut self, name: &str, table: &RecordBatch) -> Result<(), StageError> {
        let file = format!("{name}.parquet");
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert("voxflow.stage".to_string(), self.name.to_string());
        if !self.key.is_empty() {
            metadata.insert("voxflow.params".to_string(), self.keyed_params.to_string());
        }
        artifact::write_table_with_metadata(&self.out_dir.join(&file), table, &metadata)?;
        self.outputs.push(WrittenOutput {
            name: name.to_string(),
            file,
            format: "table".into(),
            shape: Some(vec![table.num_rows(), table.num_columns()]),
        });
        Ok(())
    }

    /// Registers a file the stage wrote itself into `out_dir`.
    pub fn add_file(&mut self, name: &str, file: &str) {
        self.outputs.push(WrittenOutput {
            name: name.to_string(),
            file: file.to_string(),
            format: "file".into(),
            shape: None,
        });
    }

    /// Registers a directory the stage wrote into `out_dir` (a model
    /// checkpoint: config.json, model.safetensors, tokenizer.json). Its
    /// digest covers every file's name and bytes (`store::tree_digest`).
    pub fn add_dir(&mut self, name: &str, dir: &str) {
        self.outputs.push(WrittenOutput {
            name: name.to_string(),
            file: dir.to_string(),
            format: "dir".into(),
            shape: None,
        });
    }

    /// Registers a log file (relative to `out_dir`); logs are kept, not hashed.
    pub fn add_log(&mut self, file: &str) {
        self.logs.push(file.to_string());
    }

    /// An SVG figure for the run report (kept beside the outputs, not hashed).
    pub fn add_figure(&mut self, name: &str, svg: &str) -> Result<(), StageError> {
        let dir = self.out_dir.join("figures");
        let file = format!("figures/{name}.svg");
        std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(self.out_dir.join(&file), svg))
            .map_err(|e| StageError::failed(format!("{}: {e}", dir.display())))?;
        self.figures.push(file);
        Ok(())
    }

    /// A chart for the run report: its SVG as [`Self::add_figure`] writes
    /// it, and its data beside it (`figures/NAME.json`), from which the
    /// report redraws the expansions of a matrix stage together.
    pub fn add_chart(&mut self, name: &str, chart: &crate::plot::Chart) -> Result<(), StageError> {
        self.add_figure(name, &chart.svg())?;
        let file = self.out_dir.join(format!("figures/{name}.json"));
        let json = serde_json::to_string(chart).map_err(|e| StageError::failed(format!("chart {name}: {e}")))?;
        std::fs::write(&file, json).map_err(|e| StageError::failed(format!("{}: {e}", file.display())))
    }

    /// Says that a rerun of this stage may not write the same bytes, and
    /// why (recorded in the manifest; early cut-off then rarely applies).
    pub fn nondeterministic(&mut self, reason: impl Into<String>) {
        self.nondeterministic = Some(reason.into());
    }

    /// A warning kept in the manifest and shown to the user.
    pub fn warn(&mut self, message: impl Into<String>) {
        let message = message.into();
        tracing::debug!(stage = self.name, "warning: {message}");
        self.warnings.push(message);
    }

    pub fn progress(&self, done: u64, total: u64) {
        (self.progress)(done, total);
    }

    /// What the stage is doing while it has no count to report ("loading
    /// model"); the terminal shows it beside the stage's clock.
    pub fn phase(&self, text: &str) {
        (self.activity)(Activity::Phase(text));
    }

    /// The unit of the counts [`StageContext::progress`] reports ("words",
    /// "tokens", "steps"), shown with the count and its rate.
    pub fn progress_unit(&self, unit: &str) {
        (self.activity)(Activity::Unit(unit));
    }

    /// A line for the terminal about where the stage stands ("resuming from
    /// step 500"); not kept in the manifest.
    pub fn note(&self, text: &str) {
        (self.note)(text);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    pub fn check_cancelled(&self) -> Result<(), StageError> {
        if self.is_cancelled() {
            Err(StageError::Cancelled)
        } else {
            Ok(())
        }
    }
}
