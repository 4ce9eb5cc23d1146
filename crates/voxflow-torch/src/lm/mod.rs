//! Language models in libtorch ([`model`]) and the batched extraction of
//! hidden states per word ([`extract`]); the windows of context each word
//! sees are `voxflow::lm::windows`.

pub mod extract;
pub mod model;
pub use voxflow::lm::windows;
