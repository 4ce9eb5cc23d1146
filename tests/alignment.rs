//! The alignment sweep's kinds through the `voxflow` binary:
//! `localize.units` against transformers' hidden states and
//! `scipy.stats.ttest_ind(equal_var=False)` (a random GPT-NeoX model that
//! transformers writes, and all-MiniLM-L6-v2); `benchmark.generate` and
//! `benchmark.sentences` on the localizer's sentences (MiniLM, the
//! generator's own model, near the ceiling; an untrained GPT checkpoint far
//! below; the ceilings against the closed form of the generator's noise);
//! `alignment.summary` gathering a sweep (`stage[*]`) against polars and
//! numpy; and pipelines/alignment.yaml shrunk: a checkpoint's score does not
//! depend on the others in the sweep, and adding one checkpoint to the
//! matrix plans only that checkpoint's stages.

mod common;
#[allow(dead_code)]
mod lm_support;

use std::path::PathBuf;

use common::{fresh_seed, python, run_python, stage, statuses, voxflow_json, Scratch};
use lm_support::minilm;
use serde_json::json;

fn langloc_dir() -> String {
    format!("{}/data/fedorenko2010_localization", env!("CARGO_MANIFEST_DIR"))
}

/// The stored directory of stage `name` in a run's JSON summary.
fn object(store: &std::path::Path, summary: &serde_json::Value, name: &str) -> PathBuf {
    store.join("objects").join(stage(summary, name)["key"].as_str().unwrap())
}

fn random_neox(dir: &Scratch, seed: u64) -> String {
    let path = dir.join("neox");
    let config = json!({
        "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 64, "max_position_embeddings": 64, "use_parallel_residual": true,
        "rotary_pct": 0.25, "tie_word_embeddings": false,
    });
    run_python(
        r#"
import json, sys, shutil, torch, transformers
torch.manual_seed(int(sys.argv[2]) % 2**31)
model = transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(**json.loads(sys.argv[3]))).eval()
with torch.no_grad():
    for p in model.parameters():
        p.add_(torch.randn_like(p) * 0.1)
model.save_pretrained(sys.argv[1], safe_serialization=True)
shutil.copy(sys.argv[4] + "/tokenizer.json", sys.argv[1] + "/tokenizer.json")
"#,
        &[path.to_str().unwrap(), &seed.to_string(), &config.to_string(), &minilm()],
    );
    path.to_str().unwrap().to_string()
}

const LOCALIZE_REFERENCE: &str = r#"
import sys, json
import numpy as np, torch, pyarrow.parquet as pq, scipy.stats
from transformers import AutoModel
from tokenizers import Tokenizer
torch.set_num_threads(2)
cfg = json.loads(sys.argv[1])
stim = pq.read_table(cfg["stimuli"]).to_pydict()
worst_t = 0.0
for check in cfg["checks"]:
    model = AutoModel.from_pretrained(check["model"], attn_implementation="eager").eval()
    tok = Tokenizer.from_file(check["model"] + "/tokenizer.json")
    tok.no_padding(); tok.no_truncation()
    bert = model.config.model_type == "bert"
    rows, labels = [], []
    for text, label in zip(stim["text"], stim["label"]):
        if label not in ("S", "N"):
            continue
        ids = tok.encode(text, add_special_tokens=False).ids
        if bert:
            ids = [tok.token_to_id("[CLS]")] + ids + [tok.token_to_id("[SEP]")]
        with torch.no_grad():
            hs = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
        lo, hi = (1, len(ids) - 1) if bert else (0, len(ids))
        row = []
        for l in check["layers"]:
            h = hs[l][0].double().numpy()[lo:hi]
            row.append(h.mean(0) if check["pool"] == "mean" else h[-1])
        rows.append(np.concatenate(row))
        labels.append(label == "S")
    R, labels = np.array(rows), np.array(labels)
    t = scipy.stats.ttest_ind(R[labels], R[~labels], equal_var=False).statistic
    got = pq.read_table(check["dir"] + "/tvalues.parquet").to_pydict()
    hidden = R.shape[1] // len(check["layers"])
    assert got["layer"] == [l for l in check["layers"] for _ in range(hidden)]
    assert got["unit"] == [u for _ in check["layers"] for u in range(hidden)]
    err = np.abs(np.array(got["t"]) - t) / np.maximum(1.0, np.abs(t))
    worst_t = max(worst_t, float(err.max()))
    units = pq.read_table(check["dir"] + "/units.parquet")
    assert [str(f.type) for f in units.schema] == ["uint32", "int32", "uint32", "double", "string"], units.schema
    units = units.to_pydict()
    k = check["k"]
    assert units["rank"] == list(range(k)) and set(units["pool"]) == {check["pool"]}
    # The selection is the top k of the reference t (up to float rounding at the boundary).
    kth = np.sort(t)[::-1][k - 1]
    cols = [check["layers"].index(l) * hidden + u for l, u in zip(units["layer"], units["unit"])]
    assert len(set(cols)) == k
    assert all(t[c] >= kth - 1e-3 * max(1.0, abs(kth)) for c in cols), (sorted(t[cols]), kth)
    assert sum(got["selected"]) == k and all(got["selected"][c] for c in cols)
    assert list(units["t"]) == sorted(units["t"], reverse=True)
print(worst_t)
"#;

/// Random stimuli: 30 items of 3 to 12 English words, labels S or N (and a
/// few of another label, which the localizer leaves out).
fn stimuli_script(dir: &Scratch, seed: u64) -> PathBuf {
    dir.write(
        "make_stimuli.py",
        &format!(
            r#"
import sys, random
import pyarrow as pa, pyarrow.parquet as pq
rng = random.Random({seed})
words = "the a dog cat sees runs big small red blue house tree near river morning light dark walked quickly".split()
n = 34
texts = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(n)]
labels = ["S" if i % 2 else "N" for i in range(30)] + ["X"] * 4
rng.shuffle(labels)
pq.write_table(pa.table({{"item": pa.array(range(n), pa.uint32()), "text": texts, "label": labels}}), sys.argv[1])
"#
        ),
    )
}

#[test]
fn localized_t_values_match_scipy_on_transformers_hidden_states() {
    let seed = fresh_seed();
    let dir = Scratch::new("alignment-localize");
    let neox = random_neox(&dir, seed);
    let minilm = minilm();
    let stimuli = stimuli_script(&dir, seed);
    let pipeline = dir.write(
        "localize.yaml",
        &format!(
            r#"name: localize
stages:
  stim:
    kind: command
    run: {py} {stimuli} {{outputs.stimuli}}
    outputs: {{stimuli: stimuli.parquet}}
  neox:
    kind: localize.units
    inputs: {{stimuli: stim}}
    params: {{model: {neox}, k: 12, pool: mean, batch_size: 5, device: cpu}}
  bert:
    kind: localize.units
    inputs: {{stimuli: stim}}
    params: {{model: {minilm}, k: 40, layers: [0, 3, 6], pool: last, batch_size: 7, device: cpu}}
"#,
            py = python().display(),
            stimuli = stimuli.display(),
        ),
    );
    let store = dir.join("store");
    let summary =
        voxflow_json(&["run", pipeline.to_str().unwrap(), "--store", store.to_str().unwrap(), "--format", "json"], 0);
    let config = json!({
        "stimuli": object(&store, &summary, "stim").join("stimuli.parquet"),
        "checks": [
            {"model": neox, "dir": object(&store, &summary, "neox"), "layers": [1, 2], "pool": "mean", "k": 12},
            {"model": minilm, "dir": object(&store, &summary, "bert"), "layers": [0, 3, 6], "pool": "last", "k": 40},
        ],
    });
    let out = run_python(LOCALIZE_REFERENCE, &[&config.to_string()]);
    let worst: f64 = out.trim().parse().unwrap_or_else(|_| panic!("{out}"));
    eprintln!("max |t - scipy t| / max(1, |t|): {worst:.2e}");
    assert!(worst < 1e-4, "t-values differ from scipy by {worst}");
}

const BENCHMARK_CHECK: &str = r#"
import sys, json
import numpy as np, polars as pl
cfg = json.loads(sys.argv[1])
bench = pl.read_parquet(cfg["bench"])
assert bench.columns[:4] == ["sentence", "passage", "subject", "text"], bench.columns
units = [c for c in bench.columns[4:]]
subjects = bench["subject"].unique().sort().to_list()
assert len(units) == cfg["units"] and len(subjects) == cfg["subjects"], (units, subjects)
n = bench.filter(pl.col("subject") == subjects[0]).height
assert bench.group_by("passage").agg(pl.len() / len(subjects)).get_column("len").max() == 4
out = {"n": n}
for name in ["reference", "untrained"]:
    s = pl.read_parquet(cfg[name] + "/summary.parquet").row(0, named=True)
    sc = pl.read_parquet(cfg[name] + "/scores.parquet")
    assert sc["unit"].to_list() == units
    # Summary = medians of the per-unit table; score = raw / ceiling.
    assert abs(s["raw"] - float(np.median(sc["r"].to_numpy()))) < 1e-12
    assert abs(s["ceiling"] - float(np.median(sc["ceiling_split_half"].to_numpy()))) < 1e-12
    assert abs(s["score"] - s["raw"] / s["ceiling"]) < 1e-12
    assert s["ceiling_method"] == "split_half" and s["n_sentences"] == n and s["n_subjects"] == len(subjects)
    out[name] = [s["raw"], s["ceiling"], s["score"], float(np.median(sc["ceiling_extrapolation"].to_numpy()))]
print(json.dumps(out))
"#;

#[test]
fn the_reference_model_reaches_the_ceiling_and_an_untrained_checkpoint_does_not() {
    let seed = fresh_seed();
    let dir = Scratch::new("alignment-benchmark");
    let (subjects, snr) = (5usize, 0.5f64);
    let pipeline = dir.write(
        "bench.yaml",
        &format!(
            r#"name: bench
stages:
  grammar:
    kind: corpus.grammar
    params: {{seed: {s}, documents: 150, sentences_per_document: 6}}
  tokens:
    kind: corpus.text
    inputs: {{text: grammar.text}}
    params: {{tokenizer: bpe, vocab_size: 300, valid_fraction: 0.1, seed: 0}}
  train:
    kind: train.gpt
    inputs: {{corpus: tokens}}
    resources: {{threads: 1}}
    params: {{n_layer: 2, n_head: 2, n_embd: 32, context_length: 128, batch_tokens: 128, steps: 1, eval_every: 0, checkpoints: [0], seed: {s}, device: cpu}}
  langloc:
    kind: stimuli.langloc
    params: {{dir: {langloc}, case: lower}}
  bench:
    kind: benchmark.generate
    inputs: {{stimuli: langloc.stimuli}}
    params: {{model: {minilm}, subjects: {subjects}, units: 12, snr: {snr}, seed: {s}, device: cpu}}
  localize:
    kind: localize.units
    inputs: {{model: train.step0, stimuli: langloc.stimuli}}
    params: {{k: 32, device: cpu}}
  untrained:
    kind: benchmark.sentences
    inputs: {{model: train.step0, units: localize.units, benchmark: bench.benchmark}}
    params: {{seed: {s}, bootstraps: 30, device: cpu}}
  reference:
    kind: benchmark.sentences
    inputs: {{benchmark: bench.benchmark}}
    params: {{model: {minilm}, layers: [6], seed: {s}, bootstraps: 30, device: cpu}}
"#,
            s = seed % 1000,
            langloc = langloc_dir(),
            minilm = minilm(),
        ),
    );
    let store = dir.join("store");
    let summary =
        voxflow_json(&["run", pipeline.to_str().unwrap(), "--store", store.to_str().unwrap(), "--format", "json"], 0);
    let config = json!({
        "bench": object(&store, &summary, "bench").join("benchmark.parquet"),
        "reference": object(&store, &summary, "reference"),
        "untrained": object(&store, &summary, "untrained"),
        "units": 12, "subjects": subjects,
    });
    let out: serde_json::Value = serde_json::from_str(&run_python(BENCHMARK_CHECK, &[&config.to_string()])).unwrap();
    let figures =
        |name: &str| -> Vec<f64> { out[name].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect() };
    let (reference, untrained) = (figures("reference"), figures("untrained"));
    eprintln!("reference raw, ceiling, score, extrapolated ceiling: {reference:?}; untrained: {untrained:?}");
    // The generator's noise gives the mean of N subjects reliability
    // N snr / (1 + N snr); a perfect model reaches its square root.
    let n = subjects as f64;
    let want_ceiling = (n * snr / (1.0 + n * snr)).sqrt();
    assert!((reference[1] - want_ceiling).abs() < 0.06, "split-half ceiling {} vs {want_ceiling}", reference[1]);
    // The extrapolation falls short here: scipy's curve_fit on the
    // noise-free held-out curve of this generator gives 0.795, not 0.845.
    assert!((reference[3] - 0.795).abs() < 0.08, "extrapolated ceiling {} vs 0.795", reference[3]);
    assert!(reference[2] > 0.8, "MiniLM scores {} of the ceiling on its own benchmark", reference[2]);
    assert!(untrained[2] < 0.5 * reference[2], "untrained {} vs reference {}", untrained[2], reference[2]);
}

const SUMMARY_INPUTS: &str = r#"
import sys, random
import pyarrow as pa, pyarrow.parquet as pq
out, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
for size in ["a", "b"]:
    steps, losses, vals = [], [], []
    for step in range(0, 31, 5):
        steps.append(step); losses.append(rng.uniform(1, 5)); vals.append(rng.uniform(1, 5) if step % 10 == 5 else None)
    pq.write_table(pa.table({"step": pa.array(steps, pa.int64()), "loss": losses, "val_loss": pa.array(vals, pa.float64())}), f"{out}/metrics_{size}.parquet")
    for step in [0, 10, 20, 30]:
        raw, ceiling = rng.uniform(0, 0.5), rng.uniform(0.5, 1)
        pq.write_table(pa.table({"raw": [raw], "ceiling": [ceiling], "score": [raw / ceiling], "ceiling_method": ["split_half"]}),
                       f"{out}/scores_{size}_{step}.parquet")
        # An evaluate summary of the story path (mean r over CC_max).
        r, cc = rng.uniform(0, 0.4), rng.uniform(0.5, 0.9)
        pq.write_table(pa.table({"n_voxels": pa.array([100], pa.int64()), "mean_r": [r], "median_r": [r * 0.9],
                                 "mean_cc_max": [cc], "mean_r_normalized": [rng.uniform(0, 0.8)]}),
                       f"{out}/story_{size}_{step}.parquet")
        for comp in ["formal", "formal2", "functional"]:
            suites = ["s1", "s2", "overall"]
            n = [rng.randint(5, 20) for _ in suites[:2]]
            correct = [rng.randint(0, k) for k in n]
            n.append(sum(n)); correct.append(sum(correct))
            pq.write_table(pa.table({"source": ["gen"] * 3, "suite": suites, "n": pa.array(n, pa.int64()),
                                     "correct": pa.array(correct, pa.int64()), "accuracy": [c / k for c, k in zip(correct, n)]}),
                           f"{out}/{comp}_{size}_{step}.parquet")
"#;

const SUMMARY_CHECK: &str = r#"
import sys
import numpy as np, polars as pl
d, obj = sys.argv[1], sys.argv[2]
rows = []
for bench in ["scores", "story"]:
    for size in ["a", "b"]:
        m = pl.read_parquet(f"{d}/metrics_{size}.parquet")
        for step in [0, 10, 20, 30]:
            s = pl.read_parquet(f"{d}/{bench}_{size}_{step}.parquet").row(0, named=True)
            if bench == "story":
                s = {"raw": s["mean_r"], "ceiling": s["mean_cc_max"], "score": s["mean_r_normalized"]}
            acc = lambda c: pl.read_parquet(f"{d}/{c}_{size}_{step}.parquet").filter(pl.col("suite") == "overall")["accuracy"][0]
            v = m.filter((pl.col("step") <= step) & pl.col("val_loss").is_not_null()).sort("step")
            # Two formal inputs: their mean.
            rows.append({"benchmark": bench, "size": size, "step": step, "raw": s["raw"], "ceiling": s["ceiling"],
                         "score": s["score"], "formal": (acc("formal") + acc("formal2")) / 2,
                         "functional": acc("functional"), "loss": v["val_loss"][-1] if v.height else None})
want = pl.DataFrame(rows)
got = pl.read_parquet(f"{obj}/alignment.parquet")
assert got.columns == ["benchmark", "size", "step", "tokens", "raw", "ceiling", "score", "formal", "functional", "loss"], got.columns
assert got["tokens"].null_count() == got.height
from polars.testing import assert_frame_equal
assert_frame_equal(got.drop("tokens"), want.select(got.drop("tokens").columns), check_dtypes=False)
fits = pl.read_parquet(f"{obj}/fits.parquet")
worst = 0.0
for bench in ["scores", "story"]:
    for comp in ["formal", "functional"]:
        for size in ["a", "b", "all"]:
            sub = want.filter(pl.col("benchmark") == bench)
            sub = sub if size == "all" else sub.filter(pl.col("size") == size)
            x, y = sub[comp].to_numpy(), sub["score"].to_numpy()
            r2 = np.corrcoef(x, y)[0, 1] ** 2
            slope, intercept = np.polyfit(x, y, 1)
            f = fits.filter((pl.col("benchmark") == bench) & (pl.col("competence") == comp) & (pl.col("size") == size)).row(0, named=True)
            assert f["n"] == len(x)
            worst = max(worst, abs(f["r2"] - r2), abs(f["slope"] - slope), abs(f["intercept"] - intercept))
summary = pl.read_parquet(f"{obj}/summary.parquet")
assert summary["benchmark"].to_list() == ["scores", "story"], summary
for row in summary.iter_rows(named=True):
    pooled = fits.filter((pl.col("size") == "all") & (pl.col("benchmark") == row["benchmark"]))
    assert row["r2_formal"] == pooled.filter(pl.col("competence") == "formal")["r2"][0]
    assert row["checkpoints"] == 8
print(worst)
"#;

#[test]
fn the_summary_gathers_a_sweep_and_fits_match_numpy() {
    let seed = fresh_seed();
    let dir = Scratch::new("alignment-summary");
    run_python(SUMMARY_INPUTS, &[dir.join("").to_str().unwrap(), &seed.to_string()]);
    let pipeline = dir.write(
        "summary.yaml",
        r#"name: summary
matrix:
  size: [a, b]
  step: [0, 10, 20, 30]
stages:
  scores:
    kind: load.table
    params: {path: "scores_${matrix.size}_${matrix.step}.parquet"}
  formal:
    kind: load.table
    params: {path: "formal_${matrix.size}_${matrix.step}.parquet"}
  formal2:
    kind: load.table
    params: {path: "formal2_${matrix.size}_${matrix.step}.parquet"}
  story:
    kind: load.table
    params: {path: "story_${matrix.size}_${matrix.step}.parquet"}
  functional:
    kind: load.table
    params: {path: "functional_${matrix.size}_${matrix.step}.parquet"}
  metrics:
    kind: load.table
    params: {path: "metrics_${matrix.size}.parquet"}
  summary:
    kind: alignment.summary
    inputs:
      scores: "scores[*].table"
      scores_story: "story[*].table"
      formal: "formal[*].table"
      formal_syntaxgym: "formal2[*].table"
      functional: "functional[*].table"
      loss: "metrics[*].table"
"#,
    );
    let store = dir.join("store");
    let summary =
        voxflow_json(&["run", pipeline.to_str().unwrap(), "--store", store.to_str().unwrap(), "--format", "json"], 0);
    let out = run_python(
        SUMMARY_CHECK,
        &[dir.join("").to_str().unwrap(), object(&store, &summary, "summary").to_str().unwrap()],
    );
    let worst: f64 = out.trim().parse().unwrap_or_else(|_| panic!("{out}"));
    assert!(worst < 1e-10, "fits differ from numpy by {worst}");
}

#[test]
fn adding_a_checkpoint_plans_only_its_stages_and_scores_do_not_depend_on_the_sweep() {
    let dir = Scratch::new("alignment-pipeline");
    let pipeline = format!("{}/pipelines/alignment.yaml", env!("CARGO_MANIFEST_DIR"));
    let store = dir.join("store");
    let shrink = [
        "--store",
        store.to_str().unwrap(),
        "--set",
        "grammar.documents=200",
        "--set",
        "train.steps=30",
        "--set",
        "train.checkpoints=[0, 10, 20, 30]",
        "--set",
        "train.eval_every=10",
        "--set",
        "train.save_every=10",
        "--set",
        "train.warmup_steps=5",
        "--set",
        "train.device=cpu",
        "--set",
        "matrix.size=[16, 32]",
        "--set",
        "localize.k=16",
        "--set",
        "sentences.bootstraps=20",
        "--set",
        "pairs.n=5",
        "--set",
        "syntaxgym.suites=[number_prep]",
        "--set",
        "synth.stories=3",
        "--set",
        "synth.words_per_story=200",
        "--set",
        "synth.test_words=200",
        "--set",
        "synth.voxels=50",
        "--set",
        "story_fit.alphas=[10, 1000, 100000]",
    ];
    let with = |steps: &str, command: &str| -> serde_json::Value {
        let mut args = vec![command, pipeline.as_str()];
        args.extend(shrink);
        let set = format!("matrix.step={steps}");
        args.extend(["--set", set.as_str(), "--format", "json"]);
        voxflow_json(&args, 0)
    };
    let first = with("[0, 30]", "run");
    let plan = statuses(&with("[0, 10, 30]", "plan"));
    let dirty: Vec<&String> =
        plan.iter().filter(|(_, status)| status.as_str() != "fresh").map(|(name, _)| name).collect();
    let mut want: Vec<String> = [
        "localize",
        "sentences",
        "formal",
        "formal_syntaxgym",
        "functional",
        "story_lm",
        "story_lagged",
        "story_prep",
        "story_fit",
        "stories",
    ]
    .iter()
    .flat_map(|base| [16, 32].map(|size| format!("{base}[size={size},step=10]")))
    .chain(["summary".to_string()])
    .collect();
    want.sort();
    let mut dirty: Vec<String> = dirty.into_iter().cloned().collect();
    dirty.sort();
    assert_eq!(dirty, want, "{plan:?}");
    let second = with("[0, 10, 30]", "run");
    for name in [
        "sentences[size=16,step=30]",
        "sentences[size=32,step=0]",
        "formal[size=32,step=30]",
        "stories[size=16,step=0]",
    ] {
        assert_eq!(stage(&first, name)["key"], stage(&second, name)["key"], "{name}");
    }
    let table = |run: &serde_json::Value| object(&store, run, "summary").join("alignment.parquet");
    let out = run_python(
        r#"
import sys, polars as pl
a, b = pl.read_parquet(sys.argv[1]), pl.read_parquet(sys.argv[2])
# Two benchmarks (sentences and stories) x 2 sizes x the steps.
assert a.height == 8 and b.height == 12, (a, b)
assert sorted(set(b["benchmark"])) == ["sentences", "stories"]
from polars.testing import assert_frame_equal
assert_frame_equal(a, b.filter(pl.col("step") != 10))
assert b["tokens"].to_list() == [s * 1024 for s in b["step"].to_list()]
assert b.filter(pl.col("step") > 0)["loss"].null_count() == 0
# Competence is wired: minimal pairs and SyntaxGym averaged, and facts.
assert b["formal"].null_count() == 0 and b["functional"].null_count() == 0
assert ((b["formal"] >= 0) & (b["formal"] <= 1)).all()
print(b)
"#,
        &[table(&first).to_str().unwrap(), table(&second).to_str().unwrap()],
    );
    eprintln!("{out}");
}

#[test]
fn bad_benchmarks_sweeps_and_labels_are_named_with_a_fix() {
    let dir = Scratch::new("alignment-errors");
    run_python(
        r#"
import sys, pyarrow as pa, pyarrow.parquet as pq
d = sys.argv[1]
pq.write_table(pa.table({"sentence": [0, 1], "text": ["a b", "c d"], "r0": [0.1, 0.2]}), d + "/nopassage.parquet")
pq.write_table(pa.table({"item": pa.array([0, 1, 2], pa.uint32()), "text": ["a b", "c d", "e f"], "label": ["A", "B", "A"]}), d + "/stim.parquet")
pq.write_table(pa.table({"raw": [0.1], "ceiling": [0.5], "score": [0.2]}), d + "/scores.parquet")
"#,
        &[dir.join("").to_str().unwrap()],
    );
    let pipeline = dir.write(
        "bad.yaml",
        &format!(
            r#"name: bad
matrix:
  size: [a, b]
stages:
  table:
    kind: load.table
    params: {{path: nopassage.parquet}}
  score:
    kind: benchmark.sentences
    inputs: {{benchmark: table}}
    params: {{model: {minilm}, device: cpu}}
  stim:
    kind: load.table
    params: {{path: stim.parquet}}
  localize:
    kind: localize.units
    inputs: {{stimuli: stim}}
    params: {{model: {minilm}, k: 4, device: cpu}}
  scores:
    kind: load.table
    params: {{path: scores.parquet, delimiter: "${{matrix.size}}"}}
  summary:
    kind: alignment.summary
    inputs: {{scores: "scores[*]"}}
"#,
            minilm = minilm()
        ),
    );
    let output = common::voxflow(&["run", pipeline.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));
    let text = common::stderr(&output);
    for expected in [
        "the benchmark of `table`: no column `passage`",
        "a benchmark table has columns sentence, passage",
        "0 items labelled `S` and 0 labelled `N`",
        "set `positive` and `negative` to labels of the stimulus table",
        "input `scores[size=a]` (stage `scores[size=a]`)",
        "lack the axis `size` or `step`",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn a_benchmark_from_npy_and_a_csv_of_ids_scores_as_the_same_table() {
    let seed = fresh_seed();
    let dir = Scratch::new("alignment-npy");
    run_python(
        r#"
import sys, numpy as np, pandas as pd
d, seed = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(seed)
words = "the cat dog sat ran on a mat big small red house tree walked slowly".split()
n_sent, n_subj, n_units = 24, 3, 5
rows = []
for subject in ["s1", "s2", "s3"]:
    for sentence in rng.permutation(n_sent):
        rows.append({"sentence": int(sentence), "passage": int(sentence) // 4, "text": "", "subject": subject})
ids = pd.DataFrame(rows)
# One text per sentence, whatever the subject.
texts = {s: " ".join(rng.choice(words, 6)) for s in range(n_sent)}
ids["text"] = ids["sentence"].map(texts)
responses = rng.standard_normal((len(ids), n_units)).astype(np.float32)
ids.assign(note="x").to_csv(d + "/ids.csv", index=False)
np.save(d + "/responses.npy", responses)
np.save(d + "/short.npy", responses[:-1])
full = ids.copy()
for u in range(n_units):
    full[f"v{u}"] = responses[:, u].astype(np.float64)
full.to_parquet(d + "/full.parquet", index=False)
"#,
        &[dir.join("").to_str().unwrap(), &seed.to_string()],
    );
    let pipeline = dir.write(
        "npy.yaml",
        &format!(
            r#"name: npy
stages:
  full:
    kind: load.table
    params: {{path: full.parquet}}
  ids:
    kind: load.table
    params: {{path: ids.csv}}
  responses:
    kind: load.matrix
    params: {{path: responses.npy}}
  assembled:
    kind: benchmark.table
    inputs: {{sentences: ids, responses: responses}}
    params: {{units: [v0, v1, v2, v3, v4]}}
  score_full:
    kind: benchmark.sentences
    inputs: {{benchmark: full}}
    params: {{model: {minilm}, layers: [6], seed: 3, bootstraps: 10, device: cpu}}
  score_npy:
    kind: benchmark.sentences
    inputs: {{benchmark: assembled}}
    params: {{model: {minilm}, layers: [6], seed: 3, bootstraps: 10, device: cpu}}
"#,
            minilm = minilm()
        ),
    );
    let store = dir.join("store");
    let summary =
        voxflow_json(&["run", pipeline.to_str().unwrap(), "--store", store.to_str().unwrap(), "--format", "json"], 0);
    run_python(
        r#"
import sys, pandas as pd, numpy as np
full, assembled, a, b = sys.argv[1:5]
want = pd.read_parquet(full)
got = pd.read_parquet(assembled + "/benchmark.parquet")
assert list(got.columns) == ["sentence", "passage", "text", "subject", "v0", "v1", "v2", "v3", "v4"], got.columns
pd.testing.assert_frame_equal(got, want[got.columns], check_dtype=False)
for name in ["summary", "scores"]:
    x, y = pd.read_parquet(f"{a}/{name}.parquet"), pd.read_parquet(f"{b}/{name}.parquet")
    pd.testing.assert_frame_equal(x, y)
"#,
        &[
            dir.join("full.parquet").to_str().unwrap(),
            object(&store, &summary, "assembled").to_str().unwrap(),
            object(&store, &summary, "score_full").to_str().unwrap(),
            object(&store, &summary, "score_npy").to_str().unwrap(),
        ],
    );
    // A matrix with one row too few is refused, naming both stages.
    let short = std::fs::read_to_string(&pipeline).unwrap().replace("responses.npy", "short.npy");
    let short = dir.write("short.yaml", &short);
    let output = common::voxflow(&["run", short.to_str().unwrap(), "--store", store.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));
    let text = common::stderr(&output);
    assert!(
        text.contains("the sentences table of `ids` has 72 rows but the responses of `responses` have 71"),
        "{text}"
    );
}
