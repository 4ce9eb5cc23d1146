//! The libtorch part of the kinds that run in the worker.

pub mod classifier;
pub mod ddpm;
pub mod competence;
pub mod alignment;
pub mod features_lm;
pub mod samples;
pub mod topo;
pub mod train_gpt;
pub mod train_topoformer;
