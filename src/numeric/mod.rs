//! Numerical kernels behind the stages: pure functions on dense matrices and
//! slices, with no knowledge of the store, the scheduler or the YAML. Each
//! stage in `crate::stage` converts its artifacts to these types, calls one
//! of these functions and writes the result back.

pub mod ceiling;
pub mod frechet;
pub mod matrix;
pub mod ridge;
pub mod signal;
pub mod spatial;
pub mod stats;

pub use matrix::Matrix;
