//! Stage kinds. [`KINDS`] is the one list of every kind voxflow knows;
//! adding a kind is one file here, one line in that list, one test and one
//! example under pipelines/.
//!
//! A kind implements [`Stage`]: it checks and canonicalises its params
//! (defaults filled in, so writing a default explicitly does not change the
//! key), names the files its params point at (hashed by content), and runs
//! with a [`StageContext`] that hands it its inputs and takes its outputs.
//! Kinds never print: they report through the context (progress, warnings).

mod align;
mod command;
mod context;
mod downsample;
mod evaluate;
pub mod features;
mod lag;
mod lm;
mod load;
mod prep;
mod responses;
mod ridge;
pub mod synth;
pub mod tables;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub use context::{InputArtifact, StageContext, StageError};

/// One kind of stage.
pub trait Stage: Sync {
    /// The name used as `kind:` in a pipeline file.
    fn kind(&self) -> &'static str;
    /// Bumped whenever the kind's output changes for the same inputs and params.
    fn version(&self) -> u32;
    /// One line for `voxflow kinds`.
    fn summary(&self) -> &'static str;
    /// Input roles that must be present, given canonical params (checked
    /// at validation, before anything runs).
    fn required_inputs(&self, _params: &Value) -> Vec<&'static str> {
        Vec::new()
    }
    /// Problems with the input roles given that `required_inputs` cannot
    /// express (one of several ways to give them), as (message, hint);
    /// checked at validation like the required ones.
    fn input_problems(&self, _params: &Value, _roles: &[&str]) -> Vec<(String, String)> {
        Vec::new()
    }
    /// The names of the outputs this stage writes, given canonical params.
    fn outputs(&self, params: &Value) -> Vec<String>;
    /// Parses params, fills defaults and returns the canonical form, or every
    /// problem found, each with the param's path.
    fn check_params(&self, params: &Value) -> Result<Value, Vec<ParamError>>;
    /// Params that name input files or directories: (param path, path as written).
    fn file_params(&self, _params: &Value) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Whether the stage wants a GPU slot (`device: auto|cuda`).
    fn wants_gpu(&self, _params: &Value) -> bool {
        false
    }
    fn run(&self, ctx: &mut StageContext) -> Result<(), StageError>;
}

/// A problem with one param of a stage.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError {
    /// Dotted path under `params` (empty for the params as a whole).
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl ParamError {
    pub fn new(path: &str, message: impl Into<String>) -> ParamError {
        ParamError { path: path.to_string(), message: message.into(), hint: None }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> ParamError {
        self.hint = Some(hint.into());
        self
    }
}

/// Every stage kind. Keep sorted by name.
pub static KINDS: &[&dyn Stage] = &[
    &align::AlignTrs,
    &align::AlignWords,
    &command::Command,
    &downsample::Downsample,
    &evaluate::Evaluate,
    &features::FromTable,
    &lm::FeaturesLm,
    &features::RandomEmbedding,
    &features::TemporalBaseline,
    &features::WordRate,
    &lag::Lag,
    &load::LoadMatrix,
    &responses::LoadResponses,
    &load::LoadTable,
    &prep::Prep,
    &ridge::Ridge,
    &synth::Synth,
];

/// The kind named `kind`.
pub fn lookup(kind: &str) -> Option<&'static dyn Stage> {
    KINDS.iter().copied().find(|stage| stage.kind() == kind)
}

/// Deserialises params into `P` (which denies unknown fields and has
/// defaults) and returns `P` together with its canonical JSON.
pub fn parse_params<P: DeserializeOwned + Serialize>(params: &Value) -> Result<(P, Value), Vec<ParamError>> {
    let parsed: P = serde_path_to_error::deserialize(params.clone()).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = error.into_inner().to_string();
        vec![ParamError { path, message, hint: None }]
    })?;
    let canonical = crate::key::canonical_value(&serde_json::to_value(&parsed).expect("params serialise"));
    Ok((parsed, canonical))
}

/// The canonical params when no problem was found, else the problems.
pub fn checked(canonical: Value, errors: Vec<ParamError>) -> Result<Value, Vec<ParamError>> {
    if errors.is_empty() {
        Ok(canonical)
    } else {
        Err(errors)
    }
}

/// Reads canonical params back into the kind's params type at run time.
pub fn typed_params<P: DeserializeOwned>(params: &Value) -> Result<P, StageError> {
    serde_json::from_value(params.clone()).map_err(|e| StageError::failed(format!("params: {e}")))
}
