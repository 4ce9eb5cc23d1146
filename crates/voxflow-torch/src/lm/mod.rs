//! Language models in libtorch ([`model`]), the batched extraction of
//! hidden states per word ([`extract`]) and log-probabilities of texts
//! ([`score`], the competence kinds); the windows of context each word
//! sees are `voxflow::lm::windows`.

pub mod extract;
pub mod model;
pub mod score;
pub use voxflow::lm::windows;
