//! The libtorch part of the kinds that run in the worker.

pub mod alignment;
pub mod classifier;
pub mod competence;
pub mod ddpm;
pub mod features_lm;
pub mod samples;
pub mod topo;
pub mod train_gpt;
pub mod train_topoformer;
