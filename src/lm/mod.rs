//! Language models for `features.lm`: which tokens each word's features see
//! ([`windows`], plain Rust). The models in libtorch and the batched
//! extraction are `voxflow_torch::lm` (crates/voxflow-torch), run in the
//! worker process.

pub mod windows;
