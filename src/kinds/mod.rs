//! Stage kinds, one file or folder per kind family, named after the kinds:
//! `load/responses.rs` is `load.responses`, `features/lm.rs` is
//! `features.lm`. Each implements [`crate::stage::Kind`]; the registry
//! (`crate::stage::registry`) lists them. `tables.rs` holds the word and TR
//! table schemas the encoding-model kinds share.

pub mod align;
pub mod alignment;
pub mod command;
pub mod competence;
pub mod corpus;
pub mod downsample;
pub mod eval;
pub mod evaluate;
pub mod features;
pub mod images;
pub mod lag;
pub mod load;
pub mod prep;
pub mod ridge;
pub mod stimuli;
pub mod synth;
pub mod tables;
pub mod topo;
pub mod topoformer;
pub mod train;
