//! `topo.pca`: principal-component maps (Topoformer's "PCA maps"): for
//! each (layer, sublayer) map, the first `components` principal components
//! of its units' responses over the items
//! (`crate::numeric::spatial::principal_components`, as scikit-learn's
//! `PCA`), each component's loadings laid out on the grid.
//!
//! Inputs as topo.selectivity's (`responses`, or `responses`, `units`,
//! `items`; every item counts, whatever its label). Outputs: `components`
//! (one row per map, component and unit: `layer`, `sublayer`, `component`
//! (0-based), `unit` (the responses' column), `row`, `col`, `loading`) and
//! `variance` (one row per map and component: `layer`, `sublayer`,
//! `component`, `explained_variance_ratio`). For the report, each
//! component of each map as a heatmap (`pc<N>_layer<L>_<sublayer>`, N from
//! 1), at most [`MAX_FIGURES`] of them; a matrix stage's expansions (a
//! topographic model and its controls) show side by side on one scale.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, StringArray, UInt32Array};
use serde::{Deserialize, Serialize};

use super::selectivity::{response_input_problems, table, ResponseSet, MAX_FIGURES};
use crate::numeric::spatial::{principal_components, UnitResponses};
use crate::numeric::Matrix;
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcaParams {
    /// Components per map.
    #[serde(default = "default_components")]
    pub components: usize,
}

fn default_components() -> usize {
    3
}

pub struct TopoPca;

impl Kind for TopoPca {
    type Params = PcaParams;
    const NAME: &'static str = "topo.pca";
    // 2: a heatmap per component and map for the report.
    const VERSION: u32 = 2;
    const SUMMARY: &'static str =
        "principal-component maps: the first components of each layer's unit responses, loadings on the grid (as sklearn PCA)";
    const INPUTS: &'static [&'static str] = &["responses"];
    const OUTPUTS: &'static [&'static str] = &["components", "variance"];

    fn input_problems(&self, _params: &PcaParams, roles: &[&str]) -> Vec<(String, String)> {
        response_input_problems(roles)
    }
    fn validate(&self, p: &PcaParams) -> Vec<ParamError> {
        if p.components == 0 {
            return vec![ParamError::new("components", "components is 0").hint("ask for 1 or more (3 is usual)")];
        }
        Vec::new()
    }
    fn run(&self, p: &PcaParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let set = ResponseSet::read(ctx)?;
        let n_items = set.matrix.rows;
        if n_items < 2 {
            return Err(StageError::failed(format!("{n_items} item(s): a covariance needs at least 2"))
                .with_hint("give a larger stimulus set"));
        }
        let items: Vec<usize> = (0..n_items).collect();
        let (mut layer, mut sublayer, mut component, mut unit, mut row, mut col, mut loading) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut v_layer, mut v_sublayer, mut v_component, mut v_ratio) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut figures = 0;
        for map in set.maps()? {
            let columns = &map.map.cells;
            let cols = map.map.lattice.cols;
            let mut picked = Matrix::zeros(n_items, columns.len());
            for k in 0..n_items {
                let source = set.matrix.row(k);
                for (c, &column) in columns.iter().enumerate() {
                    picked.row_mut(k)[c] = source[column];
                }
            }
            let responses = UnitResponses::from_rows(&picked, &items);
            let (components, ratios) = principal_components(&responses, p.components);
            for (c, (loadings, ratio)) in components.iter().zip(&ratios).enumerate() {
                if figures < MAX_FIGURES {
                    figures += 1;
                    let chart = crate::plot::Chart::Heatmap(crate::plot::Map {
                        title: format!(
                            "layer {} {}: PC{} loadings ({:.1}% of the variance)",
                            map.layer,
                            map.sublayer,
                            c + 1,
                            100.0 * ratio
                        ),
                        rows: map.map.lattice.rows,
                        cols,
                        values: loadings.clone(),
                        outlined: Vec::new(),
                        scale_label: "loading".into(),
                    });
                    ctx.add_chart(&format!("pc{}_layer{}_{}", c + 1, map.layer, map.sublayer), &chart)?;
                }
                v_layer.push(map.layer);
                v_sublayer.push(map.sublayer.clone());
                v_component.push(c as u32);
                v_ratio.push(*ratio);
                for (cell, &value) in loadings.iter().enumerate() {
                    layer.push(map.layer);
                    sublayer.push(map.sublayer.clone());
                    component.push(c as u32);
                    unit.push(columns[cell] as u32);
                    row.push((cell / cols) as u32);
                    col.push((cell % cols) as u32);
                    loading.push(value);
                }
            }
            ctx.check_cancelled()?;
        }
        ctx.write_table(
            "components",
            &table(vec![
                ("layer", Arc::new(Int32Array::from(layer)) as ArrayRef),
                ("sublayer", Arc::new(StringArray::from(sublayer))),
                ("component", Arc::new(UInt32Array::from(component))),
                ("unit", Arc::new(UInt32Array::from(unit))),
                ("row", Arc::new(UInt32Array::from(row))),
                ("col", Arc::new(UInt32Array::from(col))),
                ("loading", Arc::new(Float64Array::from(loading))),
            ]),
        )?;
        ctx.write_table(
            "variance",
            &table(vec![
                ("layer", Arc::new(Int32Array::from(v_layer)) as ArrayRef),
                ("sublayer", Arc::new(StringArray::from(v_sublayer))),
                ("component", Arc::new(UInt32Array::from(v_component))),
                ("explained_variance_ratio", Arc::new(Float64Array::from(v_ratio))),
            ]),
        )
    }
}
