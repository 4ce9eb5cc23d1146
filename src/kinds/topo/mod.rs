//! TopoLM's topography measures on unit responses (`topo.*` kinds).

pub mod moran;
pub mod selectivity;
