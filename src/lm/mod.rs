//! Language models for `features.lm`: which tokens each word's features see
//! ([`windows`], plain Rust), and with the `torch` feature the models in
//! libtorch ([`model`]) and the batched extraction ([`extract`]).

#[cfg(feature = "torch")]
pub mod extract;
#[cfg(feature = "torch")]
pub mod model;
pub mod windows;
