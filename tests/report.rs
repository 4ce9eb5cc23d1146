//! `voxflow report` of a matrix sweep: the t-maps of a matrix stage's
//! expansions in one row per map, on one colour scale (to the largest |t|
//! of the row) with one colour bar, each panel titled by its matrix values;
//! the comparison averaged over the `seed` axis with ± sd error bars.
//! A cheap pipeline: a Python fixture writes random unit responses (a
//! planted S > N cluster for the topographic model), `topo.selectivity`
//! maps them.

mod common;

use common::*;
use voxflow::plot::Chart;

const FIXTURE: &str = r#"
import sys, json
import numpy as np, pyarrow as pa, pyarrow.parquet as pq, pyarrow.feather as feather
responses_path, units_path, items_path, seed, model = sys.argv[1:6]
rng = np.random.default_rng(int(seed) * 7919 + len(model))
side, subs = 6, ["attn", "mlp"]
labels = ["S"] * 12 + ["N"] * 12
width = side * side
data = rng.standard_normal((len(labels), len(subs) * width)) * rng.uniform(0.5, 2.0)
if model == "topographic":
    is_s = np.array([l == "S" for l in labels])
    for u in [r * side + c for r in range(1, 4) for c in range(1, 4)]:
        data[is_s, u] += 2.0
units = {"column": [], "layer": [], "sublayer": [], "unit": [], "row": [], "col": []}
for s, sub in enumerate(subs):
    for u in range(width):
        units["column"].append(s * width + u)
        units["layer"].append(0); units["sublayer"].append(sub); units["unit"].append(u)
        units["row"].append(u // side); units["col"].append(u % side)
schema = pa.schema({"column": pa.uint32(), "layer": pa.int32(), "sublayer": pa.string(), "unit": pa.uint32(), "row": pa.uint32(), "col": pa.uint32()})
pq.write_table(pa.table(units, schema=schema), units_path)
pq.write_table(pa.table({"item": pa.array(range(len(labels)), pa.uint32()), "text": [f"item {k}" for k in range(len(labels))], "label": labels}), items_path)
column = pa.FixedSizeListArray.from_arrays(pa.array(data.astype(np.float32).ravel()), data.shape[1])
meta = {"voxflow.type": "matrix", "voxflow.shape": json.dumps(list(data.shape)), "voxflow.dtype": "float32"}
feather.write_feather(pa.table({"data": column}).replace_schema_metadata(meta), responses_path, compression="uncompressed")
"#;

#[test]
fn a_matrix_stage_s_maps_share_one_row_and_one_scale() {
    let scratch = Scratch::new("report-matrix");
    scratch.write("fixture.py", FIXTURE);
    let python = python().display().to_string();
    let file = scratch.write(
        "maps.yaml",
        &format!(
            r#"name: maps
matrix:
  model: [topographic, control, shuffled]
  seed: [1, 2]
stages:
  resp:
    kind: command
    run: {python} fixture.py {{outputs.responses}} {{outputs.units}} {{outputs.items}} {{params.seed}} {{params.model}}
    outputs: {{responses: responses.arrow, units: units.parquet, items: items.parquet}}
    params: {{files: [fixture.py], seed: "${{matrix.seed}}", model: "${{matrix.model}}"}}
  sel:
    kind: topo.selectivity
    inputs: {{responses: resp}}
    params: {{positive: S, negative: N, top_k: 5}}
"#
        ),
    );
    let file = file.to_str().unwrap();
    let run = voxflow_json(&["run", file, "--format", "json"], 0);
    assert!(statuses(&run).values().all(|s| s == "ran"), "{run}");
    let out = scratch.join("report.html");
    let output = voxflow(&["report", file, "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let html = std::fs::read_to_string(&out).unwrap();

    assert_eq!(html.matches("<h3>sel ×6").count(), 1, "one section for the six expansions");
    for sublayer in ["attn", "mlp"] {
        let name = format!("figures/tmap_layer0_{sublayer}.svg");
        let figure = html
            .split("<figure class=matrix>")
            .find(|f| f.contains(&format!("sel — {name}")))
            .unwrap_or_else(|| panic!("no row for {name}"));
        let figure = &figure[..figure.find("</figure>").unwrap()];
        assert_eq!(figure.matches("<svg").count(), 1, "{name}: one drawing");
        assert!(figure.contains(r#"class="map-row" data-panels="6""#), "{name}: six panels");
        assert_eq!(figure.matches(r#"class="map-panel""#).count(), 6);
        assert_eq!(figure.matches(r#"class="colour-bar""#).count(), 1, "{name}: one colour bar");
        // The scale's end is the largest |t| of all six maps, as stored.
        let mut largest = 0.0f64;
        for model in ["topographic", "control", "shuffled"] {
            for seed in [1, 2] {
                assert!(figure.contains(&format!(">model={model}, seed={seed}</text>")), "{name}: {model} {seed}");
                let stage = format!("sel[model={model},seed={seed}]");
                let shown = voxflow_json(&["show", file, &stage, "--format", "json"], 0);
                let dir = shown["stages"][0]["directory"].as_str().unwrap_or_else(|| panic!("{shown}")).to_string();
                let json = std::fs::read_to_string(format!("{dir}/figures/tmap_layer0_{sublayer}.json")).unwrap();
                let Chart::Heatmap(map) = serde_json::from_str::<Chart>(&json).unwrap() else { panic!("a map") };
                assert_eq!((map.rows, map.cols, map.values.len()), (6, 6, 36));
                largest = map.values.iter().filter(|v| v.is_finite()).fold(largest, |m, v| m.max(v.abs()));
            }
        }
        let top = format!(">{}</text>", voxflow::history::significant(largest));
        assert!(figure.contains(&top), "{name}: the scale ends at {largest}");
    }
    // The comparison: one point per model, the mean over the two seeds with an error bar.
    assert!(html.contains("over 2 seeds (seed)"), "the seed axis is averaged");
    assert!(html.matches(r#"class="error-bar""#).count() >= 3);
}
