//! The worker protocol: one [`Request`] as a JSON line on the worker's
//! stdin, then [`Message`]s as JSON lines on its stdout (the worker moves
//! anything else written to stdout, by libtorch for example, to stderr).
//! Closing stdin asks the worker to stop.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::Manifest;

/// One stage for a worker to run: the [`crate::stage::StageContext`] it
/// would have had in the scheduler's process.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub kind: String,
    pub name: String,
    pub params: Value,
    /// The stage's key and its keyed params (for the tables' provenance).
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub keyed_params: Value,
    pub base_dir: PathBuf,
    /// The staging directory the outputs go into.
    pub out_dir: PathBuf,
    /// The stage's work directory, for kinds that resume (`.voxflow/work/<key>`).
    #[serde(default)]
    pub work_dir: Option<PathBuf>,
    pub threads: usize,
    /// `cpu` or `cuda:N`: the device the scheduler assigned.
    pub device: String,
    pub inputs: BTreeMap<String, Input>,
}

/// An input artifact: an upstream result in the store.
#[derive(Debug, Serialize, Deserialize)]
pub struct Input {
    pub stage: String,
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub output: Option<String>,
}

/// What a worker says, one JSON object per line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Message {
    /// `done` of `total` units of work.
    Progress {
        done: u64,
        total: u64,
    },
    /// A line for the terminal about where the stage is ("resuming from step 500").
    Note {
        text: String,
    },
    /// What the stage is doing while it has no count ("loading model").
    Phase {
        text: String,
    },
    /// The unit of the stage's counts ("words").
    Unit {
        unit: String,
    },
    /// The stage finished and wrote these outputs into the staging directory.
    Done {
        outputs: Vec<crate::stage::WrittenOutput>,
        warnings: Vec<String>,
        logs: Vec<String>,
        figures: Vec<String>,
        #[serde(default)]
        nondeterministic: Option<String>,
        /// The device the stage computed on.
        device: String,
    },
    Failed {
        message: String,
        hint: Option<String>,
    },
    Cancelled,
}
