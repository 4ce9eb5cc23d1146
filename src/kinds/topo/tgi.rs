//! `topo.tgi`: Topoformer's generic topography index of each (layer,
//! sublayer) map (`crate::numeric::spatial::topography_index`): minus the
//! Spearman correlation between two units' response correlation (over the
//! items) and their distance on the grid, averaged over the cut-offs
//! `max_distances` (distances on a grid of side 1, the reference code's
//! `np.linspace(0.1, 0.8, 8)` by default); `wrap: true` (the default)
//! measures distances on the torus, as the reference does.
//!
//! Inputs as topo.selectivity's (`responses`, or `responses`, `units`,
//! `items`): topoformer.responses (query, key, value, output) or
//! topo.responses (attn, mlp). Each map must fill a square grid. Outputs:
//! `tgi` (one row per map: `layer`, `sublayer`, `units`, `items`, `tgi`)
//! and `by_distance` (one row per map and cut-off: `layer`, `sublayer`,
//! `max_distance`, `pairs`, `stat`). For the report, the stat by cut-off
//! as one curve per map (`tgi_by_distance`); a matrix stage's expansions
//! (a topographic model and its controls) are overlaid in one chart.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, StringArray, UInt64Array};
use serde::{Deserialize, Serialize};

use super::selectivity::{response_input_problems, table, ResponseSet};
use crate::numeric::spatial::{topography_index, UnitResponses, TGI_MAX_DISTANCES};
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TgiParams {
    /// Cut-offs, distances on the side-1 grid.
    #[serde(default = "default_max_distances")]
    pub max_distances: Vec<f64>,
    /// Torus distances (the grid wraps at its edges).
    #[serde(default = "default_wrap")]
    pub wrap: bool,
}

fn default_max_distances() -> Vec<f64> {
    TGI_MAX_DISTANCES.to_vec()
}
fn default_wrap() -> bool {
    true
}

pub struct TopoTgi;

impl Kind for TopoTgi {
    type Params = TgiParams;
    const NAME: &'static str = "topo.tgi";
    // 2: the by-distance curves as a chart for the report.
    const VERSION: u32 = 2;
    const SUMMARY: &'static str =
        "generic topography index of each layer's unit map: -Spearman(response correlation, torus distance), mean over cut-offs";
    const INPUTS: &'static [&'static str] = &["responses"];
    const OUTPUTS: &'static [&'static str] = &["tgi", "by_distance"];

    fn input_problems(&self, _params: &TgiParams, roles: &[&str]) -> Vec<(String, String)> {
        response_input_problems(roles)
    }
    fn validate(&self, p: &TgiParams) -> Vec<ParamError> {
        if p.max_distances.is_empty() || p.max_distances.iter().any(|d| !(d.is_finite() && *d > 0.0)) {
            return vec![ParamError::new("max_distances", format!("max_distances is {:?}", p.max_distances))
                .hint("list positive distances on the side-1 grid, e.g. [0.1, 0.2, ..., 0.8] (the default)")];
        }
        Vec::new()
    }
    fn run(&self, p: &TgiParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let set = ResponseSet::read(ctx)?;
        let items: Vec<usize> = (0..set.matrix.rows).collect();
        if items.len() < 3 {
            return Err(StageError::failed(format!("{} items: a correlation needs at least 3", items.len()))
                .with_hint("give a larger stimulus set"));
        }
        let (mut layer, mut sublayer, mut units, mut tgi) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut d_layer, mut d_sublayer, mut d_max, mut d_pairs, mut d_stat) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut curves = Vec::new();
        for map in set.maps()? {
            let (rows, cols) = (map.map.lattice.rows, map.map.lattice.cols);
            if rows != cols {
                return Err(StageError::failed(format!(
                    "layer {} {}: the units fill a {rows} x {cols} grid; the index's distances need a square one",
                    map.layer, map.sublayer
                ))
                .with_hint("topoformer.responses and topo.responses lay units on a square grid"));
            }
            // The map's units as a response set of their own, cell by cell.
            let columns = &map.map.cells;
            let mut picked = crate::numeric::Matrix::zeros(items.len(), columns.len());
            for k in 0..items.len() {
                let row = set.matrix.row(k);
                for (c, &column) in columns.iter().enumerate() {
                    picked.row_mut(k)[c] = row[column];
                }
            }
            let map_responses = UnitResponses::from_rows(&picked, &items);
            let cells: Vec<usize> = (0..columns.len()).collect();
            let (index, by_distance) = topography_index(&map_responses, &cells, rows, p.wrap, &p.max_distances);
            layer.push(map.layer);
            sublayer.push(map.sublayer.clone());
            units.push(columns.len() as u64);
            tgi.push(index);
            curves.push(crate::plot::Series {
                name: format!("layer {} {}", map.layer, map.sublayer),
                points: by_distance.iter().map(|at| (at.max_distance, at.stat)).collect(),
            });
            for at in by_distance {
                d_layer.push(map.layer);
                d_sublayer.push(map.sublayer.clone());
                d_max.push(at.max_distance);
                d_pairs.push(at.pairs as u64);
                d_stat.push(at.stat);
            }
            ctx.check_cancelled()?;
        }
        // The index is the mean of each curve over its cut-offs (those with 3 pairs or more).
        let chart = crate::plot::lines(
            "topography by distance cut-off (the index is each curve's mean)",
            "cut-off (fraction of the largest distance)",
            "-Spearman rho (correlation vs distance)",
            curves,
        );
        ctx.add_chart("tgi_by_distance", &chart)?;
        let n_maps = layer.len();
        ctx.write_table(
            "tgi",
            &table(vec![
                ("layer", Arc::new(Int32Array::from(layer)) as ArrayRef),
                ("sublayer", Arc::new(StringArray::from(sublayer))),
                ("units", Arc::new(UInt64Array::from(units))),
                ("items", Arc::new(UInt64Array::from(vec![items.len() as u64; n_maps]))),
                ("tgi", Arc::new(Float64Array::from(tgi))),
            ]),
        )?;
        ctx.write_table(
            "by_distance",
            &table(vec![
                ("layer", Arc::new(Int32Array::from(d_layer)) as ArrayRef),
                ("sublayer", Arc::new(StringArray::from(d_sublayer))),
                ("max_distance", Arc::new(Float64Array::from(d_max))),
                ("pairs", Arc::new(UInt64Array::from(d_pairs))),
                ("stat", Arc::new(Float64Array::from(d_stat))),
            ]),
        )
    }
}
