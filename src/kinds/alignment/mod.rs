//! Brain alignment across checkpoints (arXiv 2503.01830): language-selective
//! units of a model by the Fedorenko localizer (`localize.units`), a neural
//! benchmark of sentences scored from those units (`benchmark.generate`,
//! `benchmark.sentences`), and the sweep's table against competence and loss
//! (`alignment.summary`).
//!
//! - [`localize`]: `localize.units` (runs in the worker:
//!   `voxflow_torch::kinds::alignment`), the Welch t and top-k selection it uses.
//! - [`benchmark`]: `benchmark.generate` and `benchmark.sentences` (worker:
//!   the model's forward passes), the benchmark table, the cross-validated
//!   ridge score and its two noise ceilings (CPU, here).
//! - [`table`]: `benchmark.table` (CPU), a user's benchmark from a response
//!   matrix (.npy) and a table of sentence ids.
//! - [`summary`]: `alignment.summary` (CPU), gathering a whole sweep through
//!   inputs written `stage[*]`.

pub mod benchmark;
pub mod localize;
pub mod summary;
pub mod table;

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};
use serde::{Deserialize, Serialize};

/// How a sentence's tokens become one response per unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SentencePool {
    /// The mean over the sentence's tokens (special tokens such as BERT's
    /// `[CLS]` and `[SEP]` left out).
    #[default]
    Mean,
    /// The sentence's last token (before `[SEP]`).
    Last,
}

impl SentencePool {
    pub fn name(self) -> &'static str {
        match self {
            SentencePool::Mean => "mean",
            SentencePool::Last => "last",
        }
    }
    pub fn parse(text: &str) -> Option<SentencePool> {
        match text {
            "mean" => Some(SentencePool::Mean),
            "last" => Some(SentencePool::Last),
            _ => None,
        }
    }
}

/// A record batch from named columns (nullable fields).
pub(crate) fn table(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> =
        columns.iter().map(|(name, array)| Field::new(*name, array.data_type().clone(), true)).collect();
    let arrays = columns.into_iter().map(|(_, array)| array).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("columns of one length")
}
