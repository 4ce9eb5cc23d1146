//! The stimulus and topography kinds against independent references run in
//! the test, on fresh random inputs: Welch's t against
//! `scipy.stats.ttest_ind(equal_var=False)` and Moran's I against PySAL's
//! `esda.Moran` on `libpysal.weights.lat2W(rows, cols, rook=False)`, to
//! 1e-9, on random maps and on the t-maps `topo.selectivity` writes;
//! `stimuli.langloc` against pandas reading the localizer's CSVs;
//! `stimuli.contrast` against the corpus library and a user's table.
//! Through the binary: a planted cluster of selective units gives p < 0.05
//! against the label-permutation null and the same units spread apart do
//! not; the null is the same bytes for a seed on one thread or several;
//! changing only `permutations` reruns only `topo.moran`; bad input fails
//! naming the stage, the file and line or value, with a hint.

mod common;

use std::process::Command;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use common::*;
use voxflow::numeric::spatial::{welch_t, QueenLattice};

/// The localizer scripts/setup-python.sh links into the repository.
fn localizer_dir() -> String {
    format!("{}/data/fedorenko2010_localization", env!("CARGO_MANIFEST_DIR"))
}

/// The files of output `output` of stage `name`, from `voxflow show`.
fn output_path(file: &str, name: &str, output: &str) -> String {
    let shown = voxflow_json(&["show", file, name, "--format", "json"], 0);
    let stage = &shown["stages"][0];
    let directory = stage["directory"].as_str().expect("directory");
    let file = stage["outputs"][output]["file"].as_str().unwrap_or_else(|| panic!("no output {output}: {stage}"));
    format!("{directory}/{file}")
}

#[test]
fn welch_t_and_moran_i_match_scipy_and_esda_on_random_inputs() {
    let mut rng = ChaCha8Rng::seed_from_u64(fresh_seed());
    let mut cases = Vec::new();
    for _ in 0..6 {
        let (n_p, n_n) = (rng.random_range(2..40), rng.random_range(2..40));
        let shift: f64 = rng.random_range(-2.0..2.0);
        let scale: f64 = rng.random_range(0.1..5.0);
        let positive: Vec<f64> = (0..n_p).map(|_| shift + scale * rng.sample::<f64, _>(StandardNormal)).collect();
        let negative: Vec<f64> = (0..n_n).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
        let t = welch_t(&positive, &negative);
        cases.push(serde_json::json!({"kind": "t", "a": positive, "b": negative, "ours": t}));
    }
    for (rows, cols) in [(2, 2), (3, 7), (8, 8), (10, 6), (16, 16), (28, 28)] {
        // Smooth-ish maps (a random field plus a blob) and plain noise.
        let blob = rng.random_range(0.0..3.0);
        let (cr, cc) = (rng.random_range(0..rows) as f64, rng.random_range(0..cols) as f64);
        let values: Vec<f64> = (0..rows * cols)
            .map(|k| {
                let (r, c) = ((k / cols) as f64, (k % cols) as f64);
                let d2 = (r - cr).powi(2) + (c - cc).powi(2);
                blob * (-d2 / 8.0).exp() + rng.sample::<f64, _>(StandardNormal)
            })
            .collect();
        let ours = QueenLattice::new(rows, cols).moran_i(&values);
        cases.push(serde_json::json!({"kind": "moran", "rows": rows, "cols": cols, "y": values, "ours": ours}));
    }
    let scratch = Scratch::new("topo-reference");
    let path = scratch.write("cases.json", &serde_json::to_string(&cases).unwrap());
    let report = run_python(
        r#"
import sys, json, warnings
import numpy as np
from scipy import stats
from libpysal.weights import lat2W
from esda.moran import Moran
warnings.filterwarnings("ignore")
worst = {"t": 0.0, "moran": 0.0}
for case in json.load(open(sys.argv[1])):
    if case["kind"] == "t":
        ref = stats.ttest_ind(np.array(case["a"]), np.array(case["b"]), equal_var=False).statistic
    else:
        w = lat2W(case["rows"], case["cols"], rook=False)
        ref = Moran(np.array(case["y"]), w, transformation="r", permutations=0).I
    error = abs(case["ours"] - ref) / max(1.0, abs(ref))
    assert error < 1e-9, (case["kind"], case.get("rows"), case["ours"], ref)
    worst[case["kind"]] = max(worst[case["kind"]], error)
print(json.dumps(worst))
"#,
        &[path.to_str().unwrap()],
    );
    eprintln!("largest relative differences: {report}");
}

#[test]
fn stimuli_langloc_reads_the_fedorenko_localizer() {
    let scratch = Scratch::new("topo-langloc");
    let dir = localizer_dir();
    assert!(
        std::path::Path::new(&dir).join("langloc_fmri_run1_stim_set1.csv").exists(),
        "{dir} is missing: run scripts/setup-python.sh"
    );
    let file = scratch.write(
        "langloc.yaml",
        &format!(
            "name: langloc\nstages:\n  all:\n    kind: stimuli.langloc\n    params: {{dir: {dir}}}\n  some:\n    kind: stimuli.langloc\n    params: {{dir: {dir}, runs: [2], sets: [1, 4], case: keep}}\n"
        ),
    );
    let file = file.to_str().unwrap();
    let run = voxflow_json(&["run", file, "--format", "json"], 0);
    assert_eq!(stage(&run, "all")["status"], "ran", "{run}");
    let check = r#"
import sys, os, json, pandas as pd, pyarrow.parquet as pq
path, dir, runs, sets, lower = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5] == "lower"
table = pq.read_table(path)
assert table.schema.names[:5] == ["item", "text", "label", "file", "index"], table.schema
assert [str(t) for t in table.schema.types] == ["uint32", "string", "string", "string", "uint32"], table.schema
got = table.to_pandas()
rows = []
for run in runs:
    for s in sets:
        name = f"langloc_fmri_run{run}_stim_set{s}.csv"
        frame = pd.read_csv(os.path.join(dir, name))
        for _, row in frame.iterrows():
            words = " ".join(str(row[f"stim{k}"]) for k in range(2, 14))
            rows.append((words.lower() if lower else words, row["stim14"], name, int(row["stim1"])))
assert list(got["item"]) == list(range(len(rows)))
assert list(zip(got["text"], got["label"], got["file"], got["index"])) == rows
print(json.dumps({"items": len(rows), "S": int((got["label"] == "S").sum()), "N": int((got["label"] == "N").sum())}))
"#;
    let all = run_python(check, &[&output_path(file, "all", "stimuli"), &dir, "[1, 2]", "[1, 2, 3, 4, 5]", "lower"]);
    let counts: serde_json::Value = serde_json::from_str(all.trim()).unwrap();
    assert_eq!(counts, serde_json::json!({"items": 480, "S": 240, "N": 240}));
    run_python(check, &[&output_path(file, "some", "stimuli"), &dir, "[2]", "[1, 4]", "keep"]);

    // A malformed row names the file and line; a missing directory says
    // how to get the localizer before anything runs.
    let copy = scratch.join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    let original = std::fs::read_to_string(format!("{dir}/langloc_fmri_run1_stim_set1.csv")).unwrap();
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    lines[5] = lines[5].replacen(",S", ",Q", 1).replacen(",N", ",Q", 1);
    std::fs::write(copy.join("langloc_fmri_run1_stim_set1.csv"), lines.join("\n")).unwrap();
    let bad = scratch.write(
        "bad.yaml",
        "name: bad\nstages:\n  broken:\n    kind: stimuli.langloc\n    params: {dir: copy, runs: [1], sets: [1]}\n  absent:\n    kind: stimuli.langloc\n    params: {dir: copy, runs: [1], sets: [2]}\n",
    );
    let run = voxflow_json(&["run", bad.to_str().unwrap(), "--format", "json"], 1);
    let broken = stage(&run, "broken");
    let message = broken["error"].as_str().unwrap_or_default();
    assert!(message.contains("langloc_fmri_run1_stim_set1.csv:6: the label is `Q`, expected S or N"), "{broken}");
    assert!(broken["hint"].as_str().unwrap_or_default().contains("12 words"), "{broken}");
    let absent = stage(&run, "absent");
    assert!(absent["error"].as_str().unwrap_or_default().contains("langloc_fmri_run1_stim_set2.csv"), "{absent}");
    let missing = scratch.write("missing.yaml", "name: missing\nstages:\n  loc:\n    kind: stimuli.langloc\n");
    let output = voxflow(&["validate", missing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    for expected in ["stage `loc`", "data/fedorenko2010_localization", "does not exist", "scripts/setup-python.sh"] {
        assert!(message.contains(expected), "no `{expected}` in:\n{message}");
    }
}

#[test]
fn stimuli_contrast_from_the_grammar_and_from_a_table() {
    let scratch = Scratch::new("topo-contrast");
    let seed = fresh_seed() % 10_000;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rows: Vec<(String, String)> = (0..rng.random_range(4..12))
        .map(|k| (format!("item, \"number\" {k} {}", rng.random::<u16>()), ["A", "B", "C"][k % 3].to_string()))
        .collect();
    let mut csv = String::from("label,text,other\n");
    for (text, label) in &rows {
        csv.push_str(&format!("{label},\"{}\",{}\n", text.replace('"', "\"\""), rng.random::<u8>()));
    }
    scratch.write("mine.csv", &csv);
    let file = scratch.write(
        "contrast.yaml",
        &format!(
            "name: contrast\nstages:\n  nv:\n    kind: stimuli.contrast\n    params: {{contrast: noun_verb, n: 7, words: 5, grammar: {{seed: {seed}}}}}\n  sw:\n    kind: stimuli.contrast\n    params: {{contrast: sentences_word_lists, n: 4, grammar: {{seed: {seed}}}}}\n  mine:\n    kind: stimuli.contrast\n    params: {{table: mine.csv}}\n"
        ),
    );
    let file = file.to_str().unwrap();
    voxflow_json(&["run", file, "--format", "json"], 0);
    let read = r#"
import sys, json, pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
assert table.schema.names == ["item", "text", "label"], table.schema
assert [str(t) for t in table.schema.types] == ["uint32", "string", "string"], table.schema
rows = table.to_pylist()
assert [r["item"] for r in rows] == list(range(len(rows)))
print(json.dumps([[r["text"], r["label"]] for r in rows]))
"#;
    let got = |name: &str| -> Vec<(String, String)> {
        serde_json::from_str(run_python(read, &[&output_path(file, name, "stimuli")]).trim()).unwrap()
    };
    let config = voxflow::corpus::GrammarConfig { seed, ..Default::default() };
    for (name, contrast, n, words) in [
        ("nv", voxflow::corpus::Contrast::NounsVerbs, 7, 5),
        ("sw", voxflow::corpus::Contrast::SentencesWordLists, 4, 12),
    ] {
        let expected: Vec<(String, String)> = voxflow::corpus::contrast_set(&config, contrast, n, words)
            .unwrap()
            .iter()
            .map(|item| (item.text(), item.condition.to_string()))
            .collect();
        assert_eq!(got(name), expected, "{name}");
    }
    assert_eq!(got("nv")[..2].iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(), ["noun", "verb"]);
    assert_eq!(got("mine"), rows);
    // The library's spelling and the short one are one key.
    let plan = voxflow_json(&["plan", file, "--format", "json", "--set", "nv.contrast=nouns_verbs"], 0);
    assert_eq!(statuses(&plan)["nv"], "fresh", "{plan}");

    let bad = scratch.write(
        "bad.yaml",
        "name: bad\nstages:\n  both:\n    kind: stimuli.contrast\n    params: {contrast: nouns_verbs, table: mine.csv}\n  typo:\n    kind: stimuli.contrast\n    params: {contrast: noun_verbs}\n",
    );
    let output = voxflow(&["validate", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    for expected in
        ["stage `both`", "give `contrast` or `table`, not both", "stage `typo`", "did you mean `noun_verb`?"]
    {
        assert!(message.contains(expected), "no `{expected}` in:\n{message}");
    }
}

/// Writes topo.responses's three outputs (the interface of that kind):
/// responses.arrow (items x units, float32, layer-major, attn before mlp),
/// units.parquet, items.parquet. 2 layers x {attn, mlp} on a 16 x 16
/// grid; 30 S, 30 N and 6 X items. Layer 0 attn has a planted 6 x 6 block
/// of units that answer S more (+2.5 sd); with `spread` 1 the same units
/// sit at cells no two of which touch and the others fill the rest at
/// random. (A block's units share the label effect, so a permutation that
/// puts more true S on one side shifts the whole block in the null too:
/// the grid must be large enough for the noise to outweigh that.)
const FIXTURE: &str = r#"
import sys, json, numpy as np, pyarrow as pa, pyarrow.feather as feather, pyarrow.parquet as pq
responses_path, units_path, items_path, seed, spread = sys.argv[1:6]
rng = np.random.default_rng(int(seed))
side, layers, subs = 16, 2, ["attn", "mlp"]
labels = ["S"] * 30 + ["N"] * 30 + ["X"] * 6
order = rng.permutation(len(labels))
labels = [labels[k] for k in order]
n_items, width = len(labels), side * side
scale = rng.uniform(0.5, 2.0)
data = rng.standard_normal((n_items, layers * len(subs) * width)) * scale + rng.uniform(-1, 1)
block = [r * side + c for r in range(5, 11) for c in range(5, 11)]
is_s = np.array([l == "S" for l in labels])
for u in block:
    data[is_s, u] += 2.5 * scale
cells = list(range(width))
if spread == "1":
    apart = [r * side + c for r in range(0, 12, 2) for c in range(0, 12, 2)]
    rest = [c for c in range(width) if c not in apart]
    rng.shuffle(rest)
    others = [u for u in range(width) if u not in block]
    cells = [0] * width
    for u, cell in zip(block, apart):
        cells[u] = cell
    for u, cell in zip(others, rest):
        cells[u] = cell
units = {"column": [], "layer": [], "sublayer": [], "unit": [], "row": [], "col": []}
for layer in range(layers):
    for s, sub in enumerate(subs):
        for u in range(width):
            cell = cells[u] if (layer, sub) == (0, "attn") else u
            units["column"].append((layer * len(subs) + s) * width + u)
            units["layer"].append(layer); units["sublayer"].append(sub); units["unit"].append(u)
            units["row"].append(cell // side); units["col"].append(cell % side)
schema = pa.schema({"column": pa.uint32(), "layer": pa.int32(), "sublayer": pa.string(), "unit": pa.uint32(), "row": pa.uint32(), "col": pa.uint32()})
pq.write_table(pa.table(units, schema=schema), units_path)
pq.write_table(pa.table({"item": pa.array(range(n_items), pa.uint32()), "text": [f"item {k}" for k in range(n_items)], "label": labels}), items_path)
values = pa.array(data.astype(np.float32).ravel())
column = pa.FixedSizeListArray.from_arrays(values, data.shape[1])
meta = {"voxflow.type": "matrix", "voxflow.shape": json.dumps(list(data.shape)), "voxflow.dtype": "float32"}
table = pa.table({"data": column}).replace_schema_metadata(meta)
feather.write_feather(table, responses_path, compression="uncompressed")
"#;

/// Checks tmap.parquet against scipy and moran.parquet against esda on
/// those t-maps; prints each map's (layer, sublayer, i, p) and the
/// selective units' (layer, sublayer, row, col).
const CHECK: &str = r#"
import sys, json, warnings
import numpy as np, pyarrow.feather as feather, pyarrow.parquet as pq
from scipy import stats
from libpysal.weights import lat2W
from esda.moran import Moran
warnings.filterwarnings("ignore")
responses_path, items_path, tmap_path, moran_path = sys.argv[1:5]
data = np.stack(feather.read_table(responses_path).column("data").to_numpy(zero_copy_only=False)).astype(np.float64)
labels = np.array(pq.read_table(items_path).column("label").to_pylist())
tmap = pq.read_table(tmap_path).to_pandas()
assert list(tmap.columns) == ["column", "layer", "sublayer", "unit", "row", "col", "t", "selective"], tmap.columns
ref = stats.ttest_ind(data[labels == "S"], data[labels == "N"], equal_var=False).statistic
t = tmap.sort_values("column")["t"].to_numpy()
assert np.all(np.abs(t - ref) <= 1e-9 * np.maximum(1, np.abs(ref))), np.max(np.abs(t - ref))
moran = pq.read_table(moran_path).to_pandas()
maps = []
for _, row in moran.iterrows():
    part = tmap[(tmap.layer == row.layer) & (tmap.sublayer == row.sublayer)]
    grid = np.full((row.rows, row.cols), np.nan)
    grid[part["row"], part["col"]] = part["t"]
    reference = Moran(grid.ravel(), lat2W(int(row.rows), int(row.cols), rook=False), transformation="r", permutations=0)
    assert abs(reference.I - row.i) < 1e-9 * max(1, abs(reference.I)), (row.layer, row.sublayer, reference.I, row.i)
    assert abs(reference.EI - row.expected_i) < 1e-12
    maps.append([int(row.layer), row.sublayer, float(row.i), float(row.p), float(row.z)])
selective = tmap[tmap.selective][["layer", "sublayer", "row", "col"]].values.tolist()
print(json.dumps({"maps": maps, "selective": selective}))
"#;

fn topo_pipeline(scratch: &Scratch, seed: u64, spread: u8) -> String {
    scratch.write("fixture.py", FIXTURE);
    let python = python().display().to_string();
    let file = scratch.write(
        &format!("topo{spread}.yaml"),
        &format!(
            r#"name: topo
stages:
  resp:
    kind: command
    run: {python} fixture.py {{outputs.responses}} {{outputs.units}} {{outputs.items}} {{params.seed}} {{params.spread}}
    outputs: {{responses: responses.arrow, units: units.parquet, items: items.parquet}}
    params: {{files: [fixture.py], seed: {seed}, spread: {spread}}}
  sel:
    kind: topo.selectivity
    inputs: {{responses: resp}}
    params: {{positive: S, negative: N, top_k: 36}}
  moran:
    kind: topo.moran
    inputs: {{responses: resp.responses, units: resp.units, items: resp.items}}
    params: {{permutations: 200, seed: {}}}
  moran_loc:
    kind: topo.moran
    inputs: {{responses: resp}}
    params: {{permute: locations, permutations: 2000, seed: {}}}
  pca:
    kind: topo.pca
    inputs: {{responses: resp}}
  tgi:
    kind: topo.tgi
    inputs: {{responses: resp}}
"#,
            seed % 977,
            seed % 991
        ),
    );
    file.to_str().unwrap().to_string()
}

/// Checks the `permute: locations` table against esda's randomisation moments
/// of I on the same t-maps (E[I] = -1/(n-1) and VI_rand, closed forms):
/// the null's mean within 5 standard errors, its variance within 15% (2000
/// permutations: the variance's own sd is about 3%). Prints each map's p.
const LOCATIONS_CHECK: &str = r#"
import sys, json, warnings
import numpy as np, pyarrow.parquet as pq
from libpysal.weights import lat2W
from esda.moran import Moran
warnings.filterwarnings("ignore")
tmap = pq.read_table(sys.argv[1]).to_pandas()
moran = pq.read_table(sys.argv[2]).to_pandas()
ps = []
for _, row in moran.iterrows():
    part = tmap[(tmap.layer == row.layer) & (tmap.sublayer == row.sublayer)]
    grid = np.full((row.rows, row.cols), np.nan)
    grid[part["row"], part["col"]] = part["t"]
    ref = Moran(grid.ravel(), lat2W(int(row.rows), int(row.cols), rook=False), transformation="r", permutations=0)
    assert abs(ref.I - row.i) < 1e-9 * max(1, abs(ref.I)), (ref.I, row.i)
    se = np.sqrt(ref.VI_rand / 2000)
    assert abs(row.null_mean - ref.EI) < 5 * se, (row.null_mean, ref.EI, se)
    assert abs(row.null_sd ** 2 / ref.VI_rand - 1) < 0.15, (row.null_sd ** 2, ref.VI_rand)
    ps.append(float(row.p))
print(json.dumps(ps))
"#;

/// Every `pc<N>_layer<L>_<sublayer>` heatmap of topo.pca against its
/// `components` rows, and topo.tgi's `tgi_by_distance` curves against its
/// `by_distance` rows; prints the number of heatmaps and of curves.
const FIGURES_CHECK: &str = r#"
import sys, json, os
import numpy as np, pandas as pd
components, by_distance = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
figures = os.path.join(os.path.dirname(sys.argv[1]), "figures")
maps = 0
for (layer, sub, c), part in components.groupby(["layer", "sublayer", "component"]):
    chart = json.load(open(os.path.join(figures, f"pc{c + 1}_layer{layer}_{sub}.json")))
    assert chart["chart"] == "heatmap", chart["chart"]
    grid = np.full((chart["rows"], chart["cols"]), np.nan)
    grid[part["row"], part["col"]] = part["loading"]
    shown = np.array([np.nan if v is None else v for v in chart["values"]]).reshape(grid.shape)
    assert np.allclose(shown, grid, rtol=0, atol=1e-12), (layer, sub, c)
    assert os.path.exists(os.path.join(figures, f"pc{c + 1}_layer{layer}_{sub}.svg"))
    maps += 1
chart = json.load(open(os.path.join(os.path.dirname(sys.argv[2]), "figures", "tgi_by_distance.json")))
assert chart["chart"] == "lines", chart["chart"]
curves = {s["name"]: s["points"] for s in chart["series"]}
for (layer, sub), part in by_distance.groupby(["layer", "sublayer"]):
    points = curves[f"layer {layer} {sub}"]
    assert [p[0] for p in points] == list(part["max_distance"]), (layer, sub)
    for p, stat in zip(points, part["stat"]):
        assert (p[1] is None and np.isnan(stat)) or abs(p[1] - stat) < 1e-12, (layer, sub, p, stat)
print(maps, len(curves))
"#;

fn locations_p(file: &str) -> Vec<f64> {
    let report =
        run_python(LOCATIONS_CHECK, &[&output_path(file, "sel", "tmap"), &output_path(file, "moran_loc", "moran")]);
    serde_json::from_str(report.trim()).unwrap()
}

fn check(file: &str) -> serde_json::Value {
    let report = run_python(
        CHECK,
        &[
            &output_path(file, "resp", "responses"),
            &output_path(file, "resp", "items"),
            &output_path(file, "sel", "tmap"),
            &output_path(file, "moran", "moran"),
        ],
    );
    serde_json::from_str(report.trim()).unwrap()
}

#[test]
fn a_planted_cluster_is_significant_and_the_same_units_spread_apart_are_not() {
    let scratch = Scratch::new("topo-moran");
    let seed = fresh_seed();
    let file = topo_pipeline(&scratch, seed, 0);
    let run = voxflow_json(&["run", &file, "--format", "json"], 0);
    assert_eq!(stage(&run, "moran")["status"], "ran", "{run}");
    let report = check(&file);
    eprintln!("clustered: {report}");
    let maps = report["maps"].as_array().unwrap();
    assert_eq!(maps.len(), 4);
    assert_eq!((maps[0][0].as_i64(), maps[0][1].as_str()), (Some(0), Some("attn")));
    let (i, p) = (maps[0][2].as_f64().unwrap(), maps[0][3].as_f64().unwrap());
    assert!(p < 0.05 && i > 0.2, "the planted cluster: I {i}, p {p}");
    let p_locations = locations_p(&file);
    assert!(p_locations[0] < 0.05, "the planted cluster against values placed at random: {p_locations:?}");
    let mut selective: Vec<(i64, String, i64, i64)> = report["selective"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (s[0].as_i64().unwrap(), s[1].as_str().unwrap().to_string(), s[2].as_i64().unwrap(), s[3].as_i64().unwrap())
        })
        .collect();
    selective.sort();
    let block: Vec<(i64, String, i64, i64)> =
        (5..11).flat_map(|r| (5..11).map(move |c| (0, "attn".to_string(), r, c))).collect();
    assert_eq!(selective, block, "top_k 36 is the planted block");

    // The report's figures: each t-map as a heatmap, each null as a histogram.
    for (name, output, figure) in [("sel", "tmap", "tmap_layer1_mlp"), ("moran", "moran", "null_layer0_attn")] {
        let path = output_path(&file, name, output);
        let svg = std::path::Path::new(&path).with_file_name(format!("figures/{figure}.svg"));
        let text = std::fs::read_to_string(&svg).unwrap_or_else(|e| panic!("{}: {e}", svg.display()));
        assert!(text.starts_with("<svg") && text.ends_with("</svg>"), "{}", svg.display());
    }

    // topo.pca's maps and topo.tgi's curves: the charts the report draws
    // hold the stages' tables (read with pandas), cell by cell.
    let figures = run_python(
        FIGURES_CHECK,
        &[&output_path(&file, "pca", "components"), &output_path(&file, "tgi", "by_distance")],
    );
    assert_eq!(figures.trim(), "12 4", "PCA heatmaps and TGI curves checked");

    // The null is the same bytes on one thread and on several.
    let moran_file = output_path(&file, "moran", "moran");
    let before = std::fs::read(&moran_file).unwrap();
    let output = Command::new(voxflow_bin())
        .args(["run", &file, "--format", "json", "--force=moran"])
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(output_path(&file, "moran", "moran")).unwrap(), before, "one thread changed the null");

    // Only the permutation count changes: only topo.moran reruns.
    let plan = statuses(&voxflow_json(&["plan", &file, "--format", "json", "--set", "moran.permutations=300"], 0));
    assert_eq!((plan["resp"].as_str(), plan["sel"].as_str(), plan["moran"].as_str()), ("fresh", "fresh", "dirty"));
    let rerun = voxflow_json(&["run", &file, "--format", "json", "--set", "moran.permutations=300"], 0);
    let ran: Vec<&str> =
        ["resp", "sel", "moran"].into_iter().filter(|name| stage(&rerun, name)["status"] == "ran").collect();
    assert_eq!(ran, ["moran"], "{rerun}");

    // The same units with the selective block spread apart: not clustered.
    let spread = topo_pipeline(&scratch, seed, 1);
    voxflow_json(&["run", &spread, "--format", "json"], 0);
    let report = check(&spread);
    eprintln!("spread: {report}");
    let (i, p) = (report["maps"][0][2].as_f64().unwrap(), report["maps"][0][3].as_f64().unwrap());
    assert!(p > 0.5 && i < 0.0, "the spread block: I {i}, p {p}");
    let p_locations = locations_p(&spread);
    assert!(p_locations[0] > 0.5, "the spread block against values placed at random: {p_locations:?}");
}

#[test]
fn bad_topo_input_names_the_stage_the_value_and_the_fix() {
    let scratch = Scratch::new("topo-bad");
    let file = topo_pipeline(&scratch, fresh_seed(), 0);
    let text = std::fs::read_to_string(&file).unwrap()
        + "  unknown:\n    kind: topo.moran\n    inputs: {responses: resp}\n    params: {positive: sentence, negative: N, permutations: 20}\n  half:\n    kind: topo.selectivity\n    inputs: {responses: resp.responses}\n    params: {threshold: 2}\n";
    std::fs::write(&file, text).unwrap();
    let run = voxflow_json(&["run", &file, "--format", "json"], 1);
    let unknown = stage(&run, "unknown");
    let message = unknown["error"].as_str().unwrap_or_default();
    assert!(message.contains("label `sentence` has 0 items") && message.contains("S (30)"), "{unknown}");
    assert!(unknown["hint"].as_str().unwrap_or_default().contains("`positive`"), "{unknown}");
    let half = stage(&run, "half");
    assert!(half["error"].as_str().unwrap_or_default().contains("`units` is missing"), "{half}");
    assert!(half["hint"].as_str().unwrap_or_default().contains("units: resp.units"), "{half}");

    let invalid = scratch.write(
        "invalid.yaml",
        "name: invalid\nstages:\n  r:\n    kind: command\n    run: touch {outputs.a}\n    outputs: {a: a.arrow}\n  sel:\n    kind: topo.selectivity\n    inputs: {responses: r, units: r}\n    params: {top_k: 3}\n  none:\n    kind: topo.selectivity\n    inputs: {responses: r}\n  moran:\n    kind: topo.moran\n    inputs: {responses: r}\n    params: {permutations: 5, positive: S, negative: S}\n",
    );
    let output = voxflow(&["validate", invalid.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    for expected in [
        "topo.selectivity needs `top_k` or `threshold`",
        "give both `units` and `items` inputs",
        "5 permutations cannot give p < 0.05",
        "positive and negative are both `S`",
    ] {
        assert!(message.contains(expected), "no `{expected}` in:\n{message}");
    }
}

/// topo.tgi's kernel against the Topoformer reference's recipe run in
/// numpy and scipy: `np.corrcoef` of the units (NaN set to 0), the distances
/// of every ordered pair (both (i, j) and (j, i), as the reference flattens
/// the matrix) up to each cut-off, `-scipy.stats.spearmanr`, averaged.
#[test]
fn the_topography_index_matches_scipy_spearman_on_every_ordered_pair() {
    use voxflow::numeric::spatial::{topography_index, UnitResponses, TGI_MAX_DISTANCES};
    let mut rng = ChaCha8Rng::seed_from_u64(fresh_seed());
    let mut cases = Vec::new();
    // Side 4 and 8: the cut-off 0.1 holds no pair (NaN, left out of the mean).
    for (side, wrap) in [(4usize, true), (7, true), (8, false), (10, true)] {
        let (units, items) = (side * side, rng.random_range(5..40usize));
        // A smooth field per item (random waves on the torus) plus noise,
        // so that the index is far from 0; one constant unit.
        let smooth: f64 = rng.random_range(0.0..2.0);
        let mut matrix = voxflow::numeric::Matrix::zeros(items, units);
        for i in 0..items {
            let (fr, fc, phase) =
                (rng.random_range(0..3) as f64, rng.random_range(0..3) as f64, rng.random_range(0.0..6.3));
            for u in 0..units {
                let (r, c) = ((u / side) as f64 / side as f64, (u % side) as f64 / side as f64);
                let wave = (std::f64::consts::TAU * (fr * r + fc * c) + phase).sin();
                matrix.row_mut(i)[u] = (smooth * wave + rng.sample::<f64, _>(StandardNormal)) as f32;
            }
            matrix.row_mut(i)[units - 1] = 0.5;
        }
        let responses = UnitResponses::from_rows(&matrix, &(0..items).collect::<Vec<_>>());
        let cells: Vec<usize> = (0..units).collect();
        let (index, by_distance) = topography_index(&responses, &cells, side, wrap, &TGI_MAX_DISTANCES);
        let values: Vec<Vec<f64>> = (0..items).map(|i| matrix.row(i).iter().map(|&v| v as f64).collect()).collect();
        let stats: Vec<f64> = by_distance.iter().map(|t| t.stat).collect();
        cases.push(serde_json::json!({"side": side, "wrap": wrap, "x": values, "index": index, "stats": stats}));
    }
    let scratch = Scratch::new("tgi-reference");
    let path = scratch.write("cases.json", &serde_json::to_string(&cases).unwrap());
    let report = run_python(
        r#"
import sys, json, warnings
import numpy as np
from scipy.stats import spearmanr
warnings.filterwarnings("ignore")
worst = 0.0
for case in json.load(open(sys.argv[1])):
    s, x = case["side"], np.array(case["x"])
    c = np.corrcoef(x.T)
    # np.corrcoef is not exactly symmetric (last bits): the (i, j), (j, i)
    # duplicates must tie, as they do in the reference's intent.
    corrs = ((c + c.T) / 2).reshape(-1)
    corrs[np.isnan(corrs)] = 0
    rc = np.indices((s, s)).reshape(2, s * s).T
    dr = np.abs(rc[:, None, 0] - rc[None, :, 0]); dc = np.abs(rc[:, None, 1] - rc[None, :, 1])
    if case["wrap"]:
        dr = np.minimum(dr, s - dr); dc = np.minimum(dc, s - dc)
    dist = (np.sqrt(dr ** 2 + dc ** 2) / s).reshape(-1)
    stats = []
    for cut in np.linspace(0.1, 0.8, 8):
        keep = (dist <= cut) & (dist != 0)
        stats.append(-spearmanr(corrs[keep], dist[keep])[0] if keep.sum() >= 3 else np.nan)
    for ours, ref in zip(case["stats"] + [case["index"]], stats + [np.nanmean(stats)]):
        ours = np.nan if ours is None else ours
        if np.isnan(ref):
            assert np.isnan(ours), (s, case["wrap"], ours, ref)
            continue
        err = abs(ours - ref)
        assert err < 1e-9, (s, case["wrap"], ours, ref)
        worst = max(worst, err)
print(worst, [round(v, 3) for v in [c["index"] for c in json.load(open(sys.argv[1]))]])
"#,
        &[path.to_str().unwrap()],
    );
    eprintln!("largest difference, and the indices: {report}");
}

/// topo.pca's kernel against `sklearn.decomposition.PCA` on fresh random
/// responses with a few planted directions (distinct eigenvalues).
#[test]
fn principal_components_match_scikit_learn() {
    use voxflow::numeric::spatial::{principal_components, UnitResponses};
    let mut rng = ChaCha8Rng::seed_from_u64(fresh_seed());
    let mut cases = Vec::new();
    for (units, items) in [(16usize, 40usize), (49, 30), (64, 200)] {
        let mut matrix = voxflow::numeric::Matrix::zeros(items, units);
        let directions: Vec<Vec<f64>> =
            (0..3).map(|_| (0..units).map(|_| rng.sample::<f64, _>(StandardNormal)).collect()).collect();
        for i in 0..items {
            let scores: Vec<f64> = (0..3).map(|d| (3.0 - d as f64) * rng.sample::<f64, _>(StandardNormal)).collect();
            for u in 0..units {
                let planted: f64 = (0..3).map(|d| scores[d] * directions[d][u]).sum();
                matrix.row_mut(i)[u] = (planted + 0.3 * rng.sample::<f64, _>(StandardNormal) + 2.0) as f32;
            }
        }
        let responses = UnitResponses::from_rows(&matrix, &(0..items).collect::<Vec<_>>());
        let (components, ratios) = principal_components(&responses, 3);
        let x: Vec<Vec<f64>> = (0..items).map(|i| matrix.row(i).iter().map(|&v| v as f64).collect()).collect();
        cases.push(serde_json::json!({"x": x, "components": components, "ratios": ratios}));
    }
    let scratch = Scratch::new("pca-reference");
    let path = scratch.write("cases.json", &serde_json::to_string(&cases).unwrap());
    let report = run_python(
        r#"
import sys, json
import numpy as np
from sklearn.decomposition import PCA
worst = 0.0
for case in json.load(open(sys.argv[1])):
    pca = PCA(n_components=3, svd_solver="full").fit(np.array(case["x"]))
    ref = pca.components_ * np.sign(pca.components_[np.arange(3), np.abs(pca.components_).argmax(1)])[:, None]
    err = max(np.abs(np.array(case["components"]) - ref).max(), np.abs(np.array(case["ratios"]) - pca.explained_variance_ratio_).max())
    assert err < 1e-8, err
    worst = max(worst, err)
print(worst)
"#,
        &[path.to_str().unwrap()],
    );
    eprintln!("largest difference: {report}");
}
