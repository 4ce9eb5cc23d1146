//! The encoding-model path end to end on generated data with a known ground
//! truth, and the errors a researcher gets for bad input.

mod common;

use common::{statuses, stderr, voxflow, voxflow_json, Scratch};

/// The demo path with the synth and feature params filled in.
fn encoding_pipeline(synth: &str, embedding_seed: u64, extra_prep: &str) -> String {
    format!(
        r#"
name: encoding
stages:
  synth:
    kind: synth.stories
    params: {synth}
  words:
    kind: align.words
    inputs: {{words: synth.words}}
  trs:
    kind: align.trs
    inputs: {{responses: synth.responses}}
  rate:
    kind: features.word_rate
    inputs: [words]
  embedding:
    kind: features.random_embedding
    inputs: [words]
    params: {{dim: 16, seed: {embedding_seed}}}
  rate_tr:
    kind: downsample
    inputs: {{features: rate, words: words, trs: trs}}
  embedding_tr:
    kind: downsample
    inputs: {{features: embedding, words: words, trs: trs}}
  rate_lagged:
    kind: lag
    inputs: {{features: rate_tr}}
  embedding_lagged:
    kind: lag
    inputs: {{features: embedding_tr}}
  prep:
    kind: prep
    inputs: {{responses: synth.responses, repeats: synth.repeats, embedding: embedding_lagged, rate: rate_lagged{extra_prep}}}
    params: {{trim: {{start: 5, end: 5}}}}
  fit:
    kind: ridge
    inputs: {{data: prep}}
    params: {{alphas: [1, 10, 100, 1000, 10000]}}
  score:
    kind: evaluate
    inputs: {{predictions: fit.predictions, actual: prep.y_test, repeats: prep.y_test_repeats, truth: synth.truth}}
"#
    )
}

fn summary_of(dir: &Scratch, pipeline: &str) -> serde_json::Value {
    let compare = voxflow_json(&["compare", dir.join(pipeline).to_str().unwrap(), "--format", "json"], 0);
    compare["rows"][0].clone()
}

#[test]
fn recovered_correlations_track_the_ground_truth_ceiling() {
    let seed = common::fresh_seed() % 1_000_000;
    let dir = Scratch::new("truth");
    // About 8000 training TRs (LeBel 2023 has about 9000 per subject).
    let synth = format!(
        "{{stories: 24, words_per_story: 1500, test_words: 2500, voxels: 300, embedding_dim: 16, snr: [0.2, 2.0], repeats: 5, seed: {seed}}}"
    );
    dir.write("truth.yaml", &encoding_pipeline(&synth, 0, ""));
    let run = voxflow_json(&["run", dir.join("truth.yaml").to_str().unwrap(), "--format", "json"], 0);
    assert!(statuses(&run).values().all(|s| s == "ran"));
    let summary = summary_of(&dir, "truth.yaml");
    let error = summary["mean_abs_r_minus_ceiling"].as_f64().unwrap();
    let signal = summary["mean_r_signal_voxels"].as_f64().unwrap();
    let noise = summary["mean_r_noise_voxels"].as_f64().unwrap();
    eprintln!("mean |r - ceiling| = {error:.4}, signal voxels r = {signal:.3}, noise voxels r = {noise:.4}");
    assert!(error < 0.03, "mean |r - ceiling| on signal voxels is {error}");
    assert!(noise.abs() < 0.02, "pure-noise voxels have mean r {noise}");
    let normalized = summary["mean_r_normalized"].as_f64().unwrap();
    assert!(normalized > 0.5, "normalised correlation {normalized}");

    // The same features shuffled in blocks of 10 TRs within each story.
    let shuffled = encoding_pipeline(&synth, 0, "").replace(
        "params: {trim: {start: 5, end: 5}}",
        &format!("params: {{trim: {{start: 5, end: 5}}, shuffle: {{seed: {seed}, block: 10}}}}"),
    );
    dir.write("shuffled.yaml", &shuffled);
    voxflow_json(&["run", dir.join("shuffled.yaml").to_str().unwrap(), "--format", "json"], 0);
    let summary = summary_of(&dir, "shuffled.yaml");
    let mean_r = summary["mean_r"].as_f64().unwrap();
    eprintln!("shuffled features: mean r = {mean_r:.4}");
    assert!(mean_r.abs() < 0.02, "unrelated features give mean r {mean_r}");
}

#[test]
fn head_motion_regression_and_dropping() {
    let seed = common::fresh_seed() % 1_000_000;
    let dir = Scratch::new("motion");
    let synth = format!("{{stories: 6, words_per_story: 800, voxels: 150, embedding_dim: 8, motion: true, snr: [0.5, 2.0], seed: {seed}}}");
    let base = encoding_pipeline(&synth, 0, ", confounds: synth.confounds").replace("dim: 16", "dim: 8");
    let with_mode = |mode: &str| {
        base.replace(
            "params: {trim: {start: 5, end: 5}}",
            &format!("params: {{trim: {{start: 5, end: 5}}, motion: {{mode: {mode}, threshold: 0.5}}}}"),
        )
    };
    let mut mean_r = std::collections::BTreeMap::new();
    for mode in ["none", "regress", "drop"] {
        let file = format!("{mode}.yaml");
        dir.write(&file, &with_mode(mode));
        let run = voxflow_json(&["run", dir.join(&file).to_str().unwrap(), "--format", "json"], 0);
        if mode == "drop" {
            let prep = common::stage(&run, "prep");
            let warning = prep["warnings"][0].as_str().unwrap_or_default();
            assert!(warning.starts_with("dropped ") && warning.contains("framewise displacement above 0.5"), "{prep}");
        }
        mean_r.insert(mode, summary_of(&dir, &file)["mean_r_signal_voxels"].as_f64().unwrap());
    }
    eprintln!("mean r on signal voxels by motion handling: {mean_r:?}");
    assert!(mean_r["regress"] > mean_r["none"] + 0.05, "{mean_r:?}");
}

#[test]
fn lebel_layout_files_give_the_same_answer_as_the_store() {
    let seed = common::fresh_seed() % 1_000_000;
    let dir = Scratch::new("lebel");
    let data = dir.join("ds003020");
    let params = format!("{{stories: 4, words_per_story: 400, test_words: 400, voxels: 60, embedding_dim: 16, test_story: wheretheressmoke, seed: {seed}}}");
    let output = voxflow(&["example-data", data.to_str().unwrap(), "--params", &params]);
    assert!(output.status.success(), "{}", stderr(&output));
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/lebel.yaml"), dir.join("lebel.yaml")).unwrap();
    let pipeline = dir.join("lebel.yaml");
    let sets = [
        "--set",
        "responses.dir=ds003020/derivative/preprocessed_data/UTS01",
        "--set",
        "words.dir=ds003020/derivative/TextGrids",
    ];
    let mut args = vec!["run", pipeline.to_str().unwrap(), "--format", "json"];
    args.extend(sets);
    let run = voxflow_json(&args, 0);
    assert!(statuses(&run).values().all(|s| s == "ran"), "{run}");
    let mut args = vec!["show", pipeline.to_str().unwrap(), "prep", "--format", "json"];
    args.extend(sets);
    let shown = voxflow_json(&args, 0);
    let respdict: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("derivative/respdict.json")).unwrap()).unwrap();
    let test_trs = respdict["wheretheressmoke"].as_u64().unwrap() as usize;
    let shape = &shown["stages"][0]["outputs"]["y_test"]["shape"];
    assert_eq!(shape[0].as_u64().unwrap() as usize, test_trs - 15, "LeBel's [10:-5] trimming");
    assert_eq!(shape[1], 60);
    let mut args = vec!["compare", pipeline.to_str().unwrap(), "--format", "json"];
    args.extend(sets);
    let compare = voxflow_json(&args, 0);
    let row = &compare["rows"][0];
    let mean_r = row["mean_r"].as_f64().unwrap();
    assert!(mean_r > 0.2, "the generated signal is recovered from the files: mean r {mean_r}");
    // Counts stay integers through the summary and the comparison table.
    assert_eq!(row["n_voxels"].as_u64(), Some(60), "{row}");
    assert_eq!(row["n_test_trs"].as_u64(), Some((test_trs - 15) as u64), "{row}");
    let parquet = std::path::Path::new(compare["files"][0].as_str().unwrap());
    let table = voxflow::artifact::read_batch(parquet).unwrap();
    let field = table.schema().field_with_name("n_voxels").unwrap().clone();
    assert_eq!(field.data_type(), &arrow::datatypes::DataType::Int64, "{}", parquet.display());
    // --columns picks the printed metrics; an unknown one lists the known.
    let mut args = vec!["compare", pipeline.to_str().unwrap(), "--columns", "n_voxels,mean_r"];
    args.extend(sets);
    let output = common::voxflow(&args);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let printed = common::stdout(&output);
    let header = printed.lines().find(|l| l.contains("stage")).unwrap();
    let names: Vec<&str> = header.split('|').map(str::trim).filter(|n| !n.is_empty()).collect();
    assert_eq!(names, ["stage", "base", "n_voxels", "mean_r"], "{printed}");
    assert!(printed.contains(&format!("| {:<8} |", 60)), "{printed}");
    let mut args = vec!["compare", pipeline.to_str().unwrap(), "--columns", "mean_r,man_r"];
    args.extend(sets);
    let output = common::voxflow(&args);
    assert_eq!(output.status.code(), Some(2));
    let error = common::stderr(&output);
    assert!(error.contains("`man_r`") && error.contains("median_r"), "{error}");
}

#[test]
fn example_data_checks_its_params_and_replaces_whole_files() {
    let dir = Scratch::new("example-data");
    let out = dir.join("ds");
    let output = voxflow(&["example-data", out.to_str().unwrap(), "--params", "{voxels: 0, snr: [2, 1]}"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let error = stderr(&output);
    assert!(error.contains("`voxels`") && error.contains("`snr`"), "{error}");
    assert!(!out.exists(), "invalid params must not create {}", out.display());
    let output = voxflow(&["example-data", out.to_str().unwrap(), "--params", "{voxel: 3}"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("voxel"), "{}", stderr(&output));

    let small = |seed: u64| format!("{{stories: 2, words_per_story: 40, test_words: 40, voxels: 7, seed: {seed}}}");
    let output = voxflow(&["example-data", out.to_str().unwrap(), "--params", &small(1)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let respdict = out.join("derivative/respdict.json");
    let first = std::fs::read(out.join("truth.parquet")).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    // Into an existing directory: its files are replaced, others kept, and
    // no staging directory is left beside it.
    let output = voxflow(&["example-data", out.to_str().unwrap(), "--params", &small(2)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(respdict.exists());
    assert_ne!(std::fs::read(out.join("truth.parquet")).unwrap(), first, "seed 2 writes other data");
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
    let mut names: Vec<String> =
        std::fs::read_dir(dir.join("")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["ds"], "{names:?}");
}

fn run_failing(dir: &Scratch, yaml: &str) -> String {
    let path = dir.write("bad.yaml", yaml);
    let run = voxflow_json(&["run", path.to_str().unwrap(), "--format", "json"], 1);
    let stages = run["stages"].as_array().unwrap().iter();
    let failed =
        stages.filter_map(|s| Some(format!("{}\nhint: {}", s["error"].as_str()?, s["hint"].as_str().unwrap_or(""))));
    failed.collect::<Vec<_>>().join("\n")
}

#[test]
fn textgrid_without_the_word_tier_names_the_file_and_its_tiers() {
    let dir = Scratch::new("tier");
    dir.write(
        "grids/story1.TextGrid",
        "File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n\nxmin = 0\nxmax = 2\ntiers? <exists>\nsize = 1\nitem []:\n    item [1]:\n        class = \"IntervalTier\"\n        name = \"words\"\n        xmin = 0\n        xmax = 2\n        intervals: size = 1\n        intervals [1]:\n            xmin = 0\n            xmax = 2\n            text = \"hello\"\n",
    );
    let error = run_failing(
        &dir,
        "name: t\nstages:\n  words:\n    kind: align.words\n    params: {source: textgrid, dir: grids, tier: word}\n",
    );
    assert!(error.contains("story1.TextGrid") && error.contains("words"), "{error}");
}

#[test]
fn tr_counts_that_disagree_name_the_story() {
    let dir = Scratch::new("counts");
    let yaml = encoding_pipeline("{stories: 3, words_per_story: 200, test_words: 200, voxels: 20, seed: 3}", 0, "")
        .replace(
            "    inputs: {responses: synth.responses}\n",
            "    params: {source: counts, counts: {story01: 100, story02: 130, story03: 120, test: 110}}\n",
        );
    let error = run_failing(&dir, &yaml);
    assert!(error.contains("story `story01`") && error.contains("TRs but the responses have"), "{error}");
}

#[test]
fn nan_in_responses_names_the_story_and_file() {
    let dir = Scratch::new("nan");
    std::fs::create_dir_all(dir.join("resp")).unwrap();
    let mut good = voxflow::numeric::Matrix::zeros(10, 4);
    good.data.iter_mut().enumerate().for_each(|(i, v)| *v = (i as f32).sin());
    voxflow::formats::npy::write_npy(&dir.join("resp/alpha.npy"), &good).unwrap();
    let mut bad = good.clone();
    bad.set(7, 2, f32::NAN);
    voxflow::formats::npy::write_npy(&dir.join("resp/beta.npy"), &bad).unwrap();
    let error = run_failing(
        &dir,
        "name: t\nstages:\n  responses:\n    kind: load.responses\n    params: {format: npy, dir: resp}\n",
    );
    assert!(error.contains("story `beta`") && error.contains("beta.npy") && error.contains("TR 7, voxel 2"), "{error}");
}

#[test]
fn a_story_missing_from_the_words_is_named() {
    let dir = Scratch::new("missing");
    let yaml = encoding_pipeline("{stories: 3, words_per_story: 200, test_words: 200, voxels: 20, seed: 5}", 0, "")
        .replace(
            "    inputs: {words: synth.words}\n",
            "    inputs: {words: synth.words}\n    params: {stories: [story01, story02, test]}\n",
        );
    let error = run_failing(&dir, &yaml);
    assert!(error.contains("story `story03` is in the TR grid but not in the words"), "{error}");
    assert!(error.contains("they cover 3 stories: story01, story02, test"), "{error}");
    assert!(error.contains("`story03.TextGrid`") && error.contains("`stories: [...]`"), "{error}");
}
