//! TopoLM's topography kinds (arXiv 2410.11516): unit responses, smoothness, selectivity, Moran's I.

pub mod responses;
pub mod smoothness;
