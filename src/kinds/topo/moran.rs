//! `topo.moran`: is a selectivity map clustered? For each (layer,
//! sublayer) grid, Moran's I of the Welch t-map of `positive` > `negative`
//! (queen contiguity, row-standardised weights: PySAL esda's `Moran(y,
//! lat2W(rows, cols, rook=False))` with `transform = 'r'`), and a null
//! (`crate::numeric::spatial`): `permute: labels` (the default) permutes the
//! stimulus labels `permutations` times and recomputes the t-maps, asking
//! whether this contrast is more clustered than a random split of the same
//! items; `permute: locations` permutes each map's t-values over its cells
//! (esda's `p_sim`), asking whether the map is more clustered than the same
//! values placed at random. In a model whose units are smooth on the grid
//! (a TopoLM) every t-map is smooth, a random split's too, so the two
//! answer different questions. Seeded: the null is the same for a seed
//! whatever the thread count.
//!
//! Inputs as topo.selectivity's (`responses`, or `responses`, `units`,
//! `items`). Outputs: `moran` (moran.parquet, one row per map: `layer`,
//! `sublayer`, `rows`, `cols`, `i`, `expected_i` = -1/(n-1), `null_mean`,
//! `null_sd` (ddof 0, as esda's `seI_sim`), `z` = (I - null_mean) /
//! null_sd, `p` = (1 + #{null >= I}) / (1 + permutations), one-sided for
//! clustering) and `summary` (one row for `voxflow compare`: maps, maps
//! with p < 0.05, mean and largest I, smallest p, permutations); for the
//! report, each map's null as a histogram with I and p in its title.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, StringArray, UInt32Array};
use serde::{Deserialize, Serialize};

use super::selectivity::{
    default_negative, default_positive, float, int, label_errors, response_input_problems, table, ResponseSet,
    MAX_FIGURES,
};
use crate::numeric::spatial::{moran_label_null, moran_location_null, GridMap};
use crate::stage::{Kind, ParamError, StageContext, StageError};

/// The p-value below which a map counts as clustered in the summary.
pub const ALPHA: f64 = 0.05;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoranParams {
    #[serde(default = "default_positive")]
    pub positive: String,
    #[serde(default = "default_negative")]
    pub negative: String,
    #[serde(default = "default_permutations")]
    pub permutations: usize,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub permute: Permute,
}

/// What the null permutes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permute {
    /// The stimulus labels, the t-maps recomputed each time.
    #[default]
    Labels,
    /// Each map's t-values over its cells (esda's `p_sim`).
    Locations,
}

fn default_permutations() -> usize {
    1000
}

pub struct TopoMoran;

impl Kind for TopoMoran {
    type Params = MoranParams;
    const NAME: &'static str = "topo.moran";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "Moran's I of each layer's selectivity t-map (queen, row-standardised, as esda) against a label-permutation null";
    const INPUTS: &'static [&'static str] = &["responses"];
    const OUTPUTS: &'static [&'static str] = &["moran", "summary"];

    fn input_problems(&self, _params: &MoranParams, roles: &[&str]) -> Vec<(String, String)> {
        response_input_problems(roles)
    }

    fn validate(&self, params: &MoranParams) -> Vec<ParamError> {
        let mut errors = label_errors(&params.positive, &params.negative);
        if params.permutations < 19 {
            errors.push(
                ParamError::new("permutations", format!("{} permutations cannot give p < 0.05", params.permutations))
                    .hint("use at least 19; 1000 (the default) resolves p to 0.001"),
            );
        }
        errors
    }

    fn run(&self, params: &MoranParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let set = ResponseSet::read(ctx)?;
        let contrast = set.contrast(&params.positive, &params.negative)?;
        let maps = set.maps()?;
        let grids: Vec<GridMap> = maps.iter().map(|m| m.map.clone()).collect();
        let observed = contrast.responses.welch_t(&contrast.is_positive);
        for m in &maps {
            if let Some(&column) = m.map.cells.iter().find(|&&c| !observed[c].is_finite()) {
                return Err(StageError::failed(format!(
                    "layer {} {}: unit {} (column {column}) has t = {}: Moran's I needs a finite t everywhere",
                    m.layer, m.sublayer, set.units[column].unit, observed[column]
                ))
                .with_hint("a unit that answers every item of a label alike has no t; check the responses"));
            }
        }
        let total = params.permutations as u64;
        let report = ctx.progress;
        let progress = |done: usize| {
            if done % 50 == 0 || done as u64 == total {
                report(done as u64, total);
            }
        };
        let tests = match params.permute {
            Permute::Labels => moran_label_null(
                &contrast.responses,
                &contrast.is_positive,
                &grids,
                params.permutations,
                params.seed,
                &progress,
            ),
            Permute::Locations => {
                let total = params.permutations * grids.len();
                let progress = |done: usize| {
                    if done % 500 == 0 || done == total {
                        report(done as u64, total as u64);
                    }
                };
                moran_location_null(&observed, &grids, params.permutations, params.seed, &progress)
            }
        };
        ctx.check_cancelled()?;
        let column = |f: &dyn Fn(usize) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from((0..maps.len()).map(f).collect::<Vec<_>>()))
        };
        let rows: Vec<(&str, ArrayRef)> = vec![
            ("layer", Arc::new(Int32Array::from(maps.iter().map(|m| m.layer).collect::<Vec<_>>()))),
            ("sublayer", Arc::new(StringArray::from(maps.iter().map(|m| m.sublayer.as_str()).collect::<Vec<_>>()))),
            ("rows", Arc::new(UInt32Array::from(maps.iter().map(|m| m.map.lattice.rows as u32).collect::<Vec<_>>()))),
            ("cols", Arc::new(UInt32Array::from(maps.iter().map(|m| m.map.lattice.cols as u32).collect::<Vec<_>>()))),
            ("i", column(&|k| tests[k].i)),
            ("expected_i", column(&|k| tests[k].expected_i)),
            ("null_mean", column(&|k| tests[k].null_mean)),
            ("null_sd", column(&|k| tests[k].null_sd)),
            ("z", column(&|k| tests[k].z)),
            ("p", column(&|k| tests[k].p)),
        ];
        ctx.write_table("moran", &table(rows))?;
        for (m, test) in maps.iter().zip(&tests).take(MAX_FIGURES) {
            let title =
                format!("layer {} {}: Moran's I {:.3} (p {:.4}) against its null", m.layer, m.sublayer, test.i, test.p);
            let what = match params.permute {
                Permute::Labels => "Moran's I of a label-permuted t-map",
                Permute::Locations => "Moran's I of the t-values placed at random",
            };
            let svg = crate::plot::histogram(&title, what, &test.null, 30);
            ctx.add_figure(&format!("null_layer{}_{}", m.layer, m.sublayer), &svg)?;
        }

        let n = tests.len() as f64;
        let summary: Vec<(&str, ArrayRef)> = vec![
            ("n_maps", int(tests.len())),
            ("n_clustered", int(tests.iter().filter(|t| t.p < ALPHA).count())),
            ("permutations", int(params.permutations)),
            ("mean_i", float(tests.iter().map(|t| t.i).sum::<f64>() / n)),
            ("max_i", float(tests.iter().map(|t| t.i).fold(f64::NEG_INFINITY, f64::max))),
            ("mean_z", float(tests.iter().map(|t| t.z).sum::<f64>() / n)),
            ("min_p", float(tests.iter().map(|t| t.p).fold(f64::INFINITY, f64::min))),
        ];
        ctx.write_table("summary", &table(summary))
    }
}
