//! voxflow: a dataflow pipeline engine for encoding models and brain-alignment
//! research. A pipeline file ([`spec`]) becomes a checked DAG ([`plan`]); each
//! stage gets a content key ([`key`]); results live in a content-addressed
//! store ([`store`]) as Arrow/Parquet ([`artifact`]); the scheduler ([`exec`])
//! runs what is not cached. The stage API is [`stage`], the kinds [`kinds`], their numerical
//! kernels in [`numeric`], file formats in [`formats`]. Kinds that call
//! libtorch run in a worker process ([`worker`]); their libtorch code is the
//! `voxflow-torch` crate (crates/voxflow-torch).
//!
//! The library never prints: the `voxflow` binary (src/main.rs, src/cli/)
//! owns the terminal.

pub mod artifact;
pub mod compare;
pub mod corpus;
pub mod device;
pub mod exec;
pub mod formats;
pub mod history;
pub mod key;
pub mod kinds;
pub mod lm;
pub mod mlflow;
pub mod numeric;
pub mod plan;
pub mod plot;
pub mod report;
pub mod spec;
pub mod stage;
pub mod store;
#[cfg(test)]
mod testing;
pub mod worker;

use std::path::{Path, PathBuf};

/// Loads, checks and expands a pipeline file.
pub fn load_pipeline(
    path: &Path,
    overrides: &[String],
    store: Option<PathBuf>,
) -> Result<plan::Pipeline, spec::Diagnostics> {
    let (spec, mut problems) = spec::load_lenient(path, overrides)?;
    match plan::resolve(&spec, store) {
        Ok(pipeline) if problems.is_empty() => Ok(pipeline),
        Ok(_) => Err(problems),
        Err(more) => {
            problems.0.extend(more.0);
            problems.0.dedup();
            problems.sort();
            Err(problems)
        }
    }
}
