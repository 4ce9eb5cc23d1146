//! Evaluation kinds of generative models: `eval.samples` (samples.rs), the
//! class accuracy and Frechet distance of a train.ddpm stage's samples at
//! each of its checkpoints.

pub mod samples;
