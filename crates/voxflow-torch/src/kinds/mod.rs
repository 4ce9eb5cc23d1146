//! The libtorch part of the kinds that run in the worker.

pub mod alignment;
pub mod features_lm;
pub mod topo;
pub mod train_gpt;
