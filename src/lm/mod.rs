//! Language-model logic in plain Rust (the models in libtorch and the
//! batched passes are `voxflow_torch::lm`, crates/voxflow-torch, run in the
//! worker process): which tokens each word's features see ([`windows`],
//! features.lm) and the SyntaxGym suites, prediction formulas and region
//! assembly ([`syntaxgym`], competence.minimal_pairs).

pub mod syntaxgym;
pub mod windows;
