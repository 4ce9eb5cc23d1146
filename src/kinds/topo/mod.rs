//! TopoLM's topography kinds (arXiv 2410.11516): unit responses and
//! smoothness of a checkpoint (libtorch, run in the worker), selectivity
//! t-maps and Moran's I on unit responses (pure Rust).

pub mod moran;
pub mod pca;
pub mod responses;
pub mod selectivity;
pub mod smoothness;
pub mod tgi;
