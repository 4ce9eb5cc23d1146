//! Training language models in libtorch: the core of the `train.gpt` stage.
//!
//! - [`gpt`]: a GPT-2 model ([`GptConfig`], [`GptModel`]) whose parameters
//!   live in GPT-2's own layout and names, so that [`GptModel::save_hf`]
//!   writes a checkpoint that `transformers.GPT2LMHeadModel` and voxflow's
//!   `features.lm` ([`crate::lm::model::LanguageModel`]) both open.
//! - [`optim`]: AdamW on plain tensors (its moments are saved with the
//!   state), the warmup + cosine schedule, clipping by global norm.
//! - [`data`]: the seeded batch sampler (its RNG state is part of the
//!   training state) and the validation windows.
//! - [`trainer`]: [`TrainConfig`] and [`Trainer`]: the training step, the
//!   validation loss, and the resumable state ([`Trainer::save_state`],
//!   [`Trainer::load_state`]).
//! - [`spatial`]: TopoLM's spatial smoothness loss (unit positions on a
//!   grid, neighbourhoods, the loss on sampled neighbourhoods).
//! - [`checkpoint`]: directories written atomically (temp dir, then rename).
//!
//! Determinism: on the CPU, with the same seed and the same
//! `tch::set_num_threads`, a run and a run resumed from a saved state give
//! identical bytes. Threads are the caller's to set.

pub mod checkpoint;
pub mod data;
pub mod gpt;
pub mod optim;
pub mod spatial;
pub mod topoformer;
pub mod trainer;

pub use data::{Batch, BatchSampler, SamplerState};
pub use gpt::{GptConfig, GptModel};
pub use optim::{AdamW, Schedule};
pub use spatial::{PositionsInit, SpatialConfig, SpatialLayout, SpatialLoss};
pub use trainer::{StepStats, TrainConfig, Trainer};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A configuration value that cannot work; the message names the field and the fix.
    #[error("{0}")]
    Config(String),
    /// Training or validation tokens that do not fit the model.
    #[error("{0}")]
    Data(String),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

impl TrainError {
    pub fn file(path: &std::path::Path, message: impl std::fmt::Display) -> TrainError {
        TrainError::File { path: path.to_path_buf(), message: message.to_string() }
    }
}
