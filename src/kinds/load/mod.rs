//! Loaders: bring a user's files into the store. `load.table` (table.rs),
//! `load.matrix` (matrix.rs) and `load.responses` (responses.rs). A file is
//! hashed by content (the key does not see its path), so moving it changes
//! nothing and editing it reruns what depends on it.

mod matrix;
pub mod responses;
mod table;

use std::path::Path;

pub use matrix::{LoadMatrix, LoadMatrixParams};
pub(crate) use table::read_csv;
pub use table::{LoadTable, LoadTableParams};

/// A path's extension, lower-cased ("" without one).
fn extension(path: &str) -> String {
    Path::new(path).extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default()
}
