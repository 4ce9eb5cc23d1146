//! `topo.responses` and `topo.smoothness` through the `voxflow` binary, on a
//! tiny TopoLM trained by `train.gpt` on a fresh random corpus: the
//! responses against transformers' GPT2LMHeadModel with forward hooks (each
//! item run alone, float32) within 1e-4, the units table against the
//! checkpoint's spatial.json, and the smoothness tables against a float64
//! numpy recomputation from the same hooks. Then the errors a researcher
//! meets (a checkpoint without positions, a stimulus table without a
//! column), and pipelines/topolm.yaml shrunk.

#[path = "../../../tests/common/mod.rs"]
mod common;
#[allow(dead_code)] // output_digests: the other training tests'
mod training;

use std::path::{Path, PathBuf};

use common::{fresh_seed, python, run_python, stage, statuses, stderr, voxflow, voxflow_json, Scratch};
use training::corpus_script;

/// Random stimuli: items with shuffled ids, 2 to 9 words of the corpus's
/// vocabulary (and a word it never saw), labels S or N.
fn stimuli_script(dir: &Scratch, seed: u64) -> PathBuf {
    dir.write(
        "make_stimuli.py",
        &format!(
            r#"
import sys, random
import pyarrow as pa, pyarrow.parquet as pq
rng = random.Random({seed})
words = "the a dog cat sees runs big small red blue house tree near zebra".split()
n = 23
items = rng.sample(range(1000), n)
texts = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 9))) for _ in range(n)]
labels = [rng.choice("SN") for _ in range(n)]
pq.write_table(pa.table({{"item": pa.array(items, pa.uint32()), "text": texts, "label": labels}}), sys.argv[1])
"#
        ),
    )
}

fn write_pipeline(dir: &Scratch, seed: u64) -> PathBuf {
    let corpus = corpus_script(dir, seed);
    let stimuli = stimuli_script(dir, seed);
    let py = python();
    dir.write(
        "topo.yaml",
        &format!(
            r#"name: topo-metrics
stages:
  corpus:
    kind: command
    run: {py} {corpus} {{out_dir}} 200
    outputs: {{train: train.parquet, valid: valid.parquet, tokenizer: tokenizer.json}}
  stim:
    kind: command
    run: {py} {stimuli} {{outputs.stimuli}}
    outputs: {{stimuli: stimuli.parquet}}
  train:
    kind: train.gpt
    inputs: {{corpus: corpus}}
    resources: {{threads: 1}}
    params: {{n_layer: 2, n_head: 2, n_embd: 16, context_length: 16, batch_tokens: 64, steps: 20, eval_every: 0, checkpoints: [20], seed: {s}, device: cpu, spatial: {{alpha: 2.5, radius: 2, positions: preoptimized}}}}
  mean:
    kind: topo.responses
    inputs: {{model: train.step20, stimuli: stim}}
    params: {{pool: mean, batch_size: 4, device: cpu}}
  last:
    kind: topo.responses
    inputs: {{model: train.step20, stimuli: stim}}
    params: {{pool: last, layers: [1], sublayers: [mlp], positions: grid, device: cpu}}
  smooth:
    kind: topo.smoothness
    inputs: {{model: train.step20, tokens: corpus.valid}}
    params: {{batches: 3, batch_size: 4, context_length: 8, distances: 3, device: cpu}}
"#,
            py = py.display(),
            corpus = corpus.display(),
            stimuli = stimuli.display(),
            s = seed % 1000
        ),
    )
}

const REFERENCE: &str = r#"
import sys, json
import numpy as np, torch, pyarrow.parquet as pq, pyarrow.feather as feather
from transformers import GPT2LMHeadModel
from tokenizers import Tokenizer
ckpt, mean_dir, last_dir, smooth_dir, stim_path, valid_path = sys.argv[1:]
torch.manual_seed(0)
model = GPT2LMHeadModel.from_pretrained(ckpt).eval()
tok = Tokenizer.from_file(ckpt + "/tokenizer.json")
layout = json.load(open(ckpt + "/spatial.json"))
side, E, L = layout["side"], model.config.n_embd, model.config.n_layer

def run(ids):
    """logits [B, T, V] and the spatial outputs (block 0 attn, block 0 mlp, ...) as float64 [B, T, E]."""
    outs, hooks = [], []
    for block in model.transformer.h:
        # ln_2's input is x + attn(ln_1(x)); the block's output is that plus the MLP's.
        hooks.append(block.ln_2.register_forward_pre_hook(lambda m, a: outs.append(a[0].double().numpy().copy())))
        hooks.append(block.register_forward_hook(
            lambda m, a, o: outs.append((o[0] if isinstance(o, tuple) else o).double().numpy().copy())))
    with torch.no_grad():
        logits = model(torch.tensor(ids)).logits
    for h in hooks:
        h.remove()
    return logits, outs

def matrix(path):
    t = feather.read_table(path)
    return np.stack(t.column("data").to_numpy(zero_copy_only=False)).astype(np.float64)

stim = pq.read_table(stim_path).to_pydict()
encoded = [tok.encode(t, add_special_tokens=False).ids for t in stim["text"]]
per_item = [run([ids])[1] for ids in encoded]
worst = 0.0
for d, pool, chosen, positions in [(mean_dir, "mean", [(l, s) for l in range(L) for s in range(2)], "preoptimized"),
                                   (last_dir, "last", [(1, 1)], "grid")]:
    R = matrix(d + "/responses.arrow")
    assert R.shape == (len(encoded), len(chosen) * E), R.shape
    for i, ids in enumerate(encoded):
        want = []
        for l, s in chosen:
            a = per_item[i][2 * l + s][0]
            want.append(a.mean(0) if pool == "mean" else a[len(ids) - 1])
        worst = max(worst, np.abs(R[i] - np.concatenate(want)).max())
    u = pq.read_table(d + "/units.parquet")
    assert [str(f.type) for f in u.schema] == ["uint32", "int32", "string", "uint32", "uint32", "uint32"], u.schema
    u = u.to_pydict()
    assert u["column"] == list(range(len(chosen) * E))
    for c in range(len(chosen) * E):
        l, s = chosen[c // E]
        unit = c % E
        cell = layout["layers"][2 * l + s]["cell"][unit] if positions == "preoptimized" else unit
        assert (u["layer"][c], u["sublayer"][c], u["unit"][c]) == (l, ["attn", "mlp"][s], unit), c
        assert (u["row"][c], u["col"][c]) == (cell // side, cell % side), (c, cell, u["row"][c], u["col"][c])
    items = pq.read_table(d + "/items.parquet")
    assert [str(f.type) for f in items.schema] == ["uint32", "string", "string"], items.schema
    assert items.to_pydict() == stim
moved = sum(c != u for l in layout["layers"] for u, c in enumerate(l["cell"]))
assert moved > 0, "pre-optimisation moved no unit"

# Smoothness: windows of T + 1 every T tokens, batches of B, float64.
T, B, NB, DMAX = 8, 4, 3, 3
tokens = pq.read_table(valid_path).column("id").to_numpy().astype(np.int64)
windows = [tokens[i * T:i * T + T + 1] for i in range(B * NB)]
losses = {o: [] for o in range(2 * L)}
acts_all = {o: [] for o in range(2 * L)}
ce = []
for b in range(NB):
    w = np.stack(windows[b * B:(b + 1) * B])
    logits, outs = run(w[:, :-1].tolist())
    ce.append(torch.nn.functional.cross_entropy(logits.double().reshape(-1, logits.shape[-1]),
                                                torch.tensor(w[:, 1:]).reshape(-1)).item())
    for o in range(2 * L):
        X = outs[o].reshape(-1, E)
        acts_all[o].append(X)
        cells = np.array(layout["layers"][o]["cell"])
        nl = []
        for members in layout["layers"][o]["neighborhoods"]:
            r = np.corrcoef(X[:, members].T)
            xy = np.stack([cells[members] // side, cells[members] % side], 1).astype(np.float64)
            iu = np.triu_indices(len(members), 1)
            dist = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))[iu]
            nl.append(0.5 * (1 - np.corrcoef(r[iu], 1 / (1 + dist))[0, 1]))
        losses[o].append(np.mean(nl))
sm = pq.read_table(smooth_dir + "/smoothness.parquet").to_pydict()
cor = pq.read_table(smooth_dir + "/correlation.parquet").to_pydict()
summary = pq.read_table(smooth_dir + "/summary.parquet").to_pydict()
err_loss = err_corr = 0.0
d1 = []
for o in range(2 * L):
    assert (sm["layer"][o], sm["sublayer"][o]) == (o // 2, ["attn", "mlp"][o % 2])
    err_loss = max(err_loss, abs(sm["spatial_loss"][o] - np.mean(losses[o])))
    X = np.concatenate(acts_all[o])
    r = np.corrcoef(X.T)
    cells = np.array(layout["layers"][o]["cell"])
    rr, cc = cells // side, cells % side
    cheb = np.maximum(np.abs(rr[:, None] - rr[None, :]), np.abs(cc[:, None] - cc[None, :]))
    iu = np.triu_indices(E, 1)
    for d in range(1, DMAX + 1):
        sel = cheb[iu] == d
        rows = [i for i in range(len(cor["layer"])) if (cor["layer"][i], cor["sublayer"][i], cor["distance"][i]) == (o // 2, ["attn", "mlp"][o % 2], d)]
        assert len(rows) == 1 and cor["n_pairs"][rows[0]] == sel.sum(), (o, d, rows)
        err_corr = max(err_corr, abs(cor["mean_correlation"][rows[0]] - r[iu][sel].mean()))
        if d == 1:
            d1.append(r[iu][sel].mean())
err_summary = max(abs(summary["mean_spatial_loss"][0] - np.mean([np.mean(losses[o]) for o in range(2 * L)])),
                  abs(summary["mean_correlation_d1"][0] - np.mean(d1)))
err_ce = abs(summary["val_loss"][0] - np.mean(ce))
assert summary["tokens"][0] == B * NB * T
print(worst, err_loss, err_corr, err_summary, err_ce, np.mean([np.mean(losses[o]) for o in range(2 * L)]))
"#;

#[test]
fn responses_and_smoothness_match_transformers_and_float64_numpy() {
    let seed = fresh_seed();
    let dir = Scratch::new("topolm-metrics");
    let pipeline = write_pipeline(&dir, seed);
    let store = dir.join("store");
    let summary =
        voxflow_json(&["run", pipeline.to_str().unwrap(), "--store", store.to_str().unwrap(), "--format", "json"], 0);
    let object = |name: &str| store.join("objects").join(stage(&summary, name)["key"].as_str().unwrap());
    let checkpoint = object("train").join("step20");
    let stimuli = object("stim").join("stimuli.parquet");
    let valid = object("corpus").join("valid.parquet");
    let out = run_python(
        REFERENCE,
        &[
            checkpoint.to_str().unwrap(),
            object("mean").to_str().unwrap(),
            object("last").to_str().unwrap(),
            object("smooth").to_str().unwrap(),
            stimuli.to_str().unwrap(),
            valid.to_str().unwrap(),
        ],
    );
    let numbers: Vec<f64> = out.split_whitespace().map(|v| v.parse().unwrap()).collect();
    let [responses, loss, correlation, summary_error, cross_entropy, spatial_loss] = numbers[..] else {
        panic!("{out}")
    };
    eprintln!(
        "max |diff|: responses {responses:.2e}, spatial loss {loss:.2e}, correlation {correlation:.2e}, summary {summary_error:.2e}, val_loss {cross_entropy:.2e} (spatial loss {spatial_loss:.4})"
    );
    assert!(responses < 1e-4, "responses differ from transformers by {responses}");
    assert!(loss < 1e-5 && correlation < 1e-5 && summary_error < 1e-5, "{out}");
    assert!(cross_entropy < 1e-4, "val_loss differs by {cross_entropy}");
    assert!(spatial_loss > 0.0 && spatial_loss < 1.0, "{spatial_loss}");
}

#[test]
fn a_checkpoint_without_positions_and_a_table_without_labels_are_named_with_a_fix() {
    let seed = fresh_seed();
    let dir = Scratch::new("topolm-metrics-errors");
    let corpus = corpus_script(&dir, seed);
    let py = python();
    let no_label = dir.write(
        "no_label.py",
        "import sys, pyarrow as pa, pyarrow.parquet as pq\npq.write_table(pa.table({'item': pa.array([0, 1], pa.uint32()), 'text': ['the dog', 'a cat']}), sys.argv[1])\n",
    );
    let pipeline = dir.write(
        "bad.yaml",
        &format!(
            r#"name: topo-errors
stages:
  corpus:
    kind: command
    run: {py} {corpus} {{out_dir}} 60
    outputs: {{train: train.parquet, valid: valid.parquet, tokenizer: tokenizer.json}}
  nolabel:
    kind: command
    run: {py} {no_label} {{outputs.stimuli}}
    outputs: {{stimuli: stimuli.parquet}}
  plain:
    kind: train.gpt
    inputs: {{corpus: corpus}}
    resources: {{threads: 1}}
    params: {{n_layer: 1, n_head: 2, n_embd: 16, context_length: 8, batch_tokens: 32, steps: 2, eval_every: 0, checkpoints: [2], device: cpu}}
  nopositions:
    kind: topo.responses
    inputs: {{model: plain.step2, stimuli: nolabel}}
    params: {{device: cpu}}
  nolabels:
    kind: topo.responses
    inputs: {{model: plain.step2, stimuli: nolabel}}
    params: {{positions: grid, device: cpu}}
  beyond:
    kind: topo.smoothness
    inputs: {{model: plain.step2, tokens: corpus.valid}}
    params: {{positions: grid, layers: [3], radius: 2, device: cpu}}
  short:
    kind: topo.smoothness
    inputs: {{model: plain.step2, tokens: corpus.valid}}
    params: {{positions: grid, radius: 2, batch_size: 5000, device: cpu}}
"#,
            py = py.display(),
            corpus = corpus.display(),
            no_label = no_label.display()
        ),
    );
    let store = dir.join("store");
    let output = voxflow(&["run", pipeline.to_str().unwrap(), "--store", store.to_str().unwrap()]);
    let said = format!("{}{}", common::stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(1), "{said}");
    for needle in [
        "`positions: preoptimized`, but the checkpoint of `plain.step2`",
        "has no spatial.json",
        "use `positions: grid`",
        "the table of `nolabel`: no column `label`",
        "columns item (uint32), text and label",
        "param `layers` has block 3, but the model of `plain.step2` has 1 block (0 to 0)",
        "fewer than one batch (5000)",
        "hold out more text (corpus.text's valid_fraction)",
    ] {
        assert!(said.contains(needle), "{needle:?} not in:\n{said}");
    }
}

#[test]
fn topo_params_are_checked_before_anything_runs() {
    let dir = Scratch::new("topolm-metrics-params");
    let pipeline = dir.write(
        "bad.yaml",
        "name: bad\nstages:\n  m:\n    kind: command\n    run: echo\n    outputs: {a: a, b: b}\n  r:\n    kind: topo.responses\n    inputs: {model: m.a, stimuli: m.b}\n    params: {sublayers: [attn, mpl]}\n  r2:\n    kind: topo.responses\n    inputs: {model: m.a, stimuli: m.b}\n    params: {pool: first}\n  r3:\n    kind: topo.responses\n    inputs: {model: m.a, stimuli: m.b}\n    params: {layers: [1, 1], batch_size: 0}\n  s:\n    kind: topo.smoothness\n    inputs: {model: m.a, tokens: m.b}\n    params: {positions: gird}\n  s2:\n    kind: topo.smoothness\n    inputs: {model: m.a, tokens: m.b}\n    params: {batches: 0, radius: 1}\n",
    );
    let output = voxflow(&["validate", pipeline.to_str().unwrap()]);
    let said = format!("{}{}", common::stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(2), "{said}");
    for needle in
        ["mpl", "mlp", "layers", "listed twice", "batch_size", "pool", "last", "batches", "radius", "gird", "grid"]
    {
        assert!(said.contains(needle), "{needle:?} not in:\n{said}");
    }
}

/// The pipeline's own file, shrunk with `--set` to a test's size.
fn topolm_pipeline() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/topolm.yaml")
}

#[test]
fn the_topolm_pipeline_shrunk_trains_both_models_and_measures_them() {
    let dir = Scratch::new("topolm-pipeline");
    let store = dir.join("store");
    let pipeline = topolm_pipeline();
    let mut args: Vec<String> = vec!["run".into(), pipeline.to_str().unwrap().into()];
    for set in SHRINK {
        args.push("--set".into());
        args.push(set.to_string());
    }
    args.extend(["--store".into(), store.to_str().unwrap().into(), "--format".into(), "json".into()]);
    let output = std::process::Command::new(common::voxflow_bin()).args(&args).output().unwrap();
    assert!(output.status.success(), "{}\n{}", common::stdout(&output), stderr(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let smooth = |alpha: &str| {
        store
            .join("objects")
            .join(stage(&summary, &format!("smoothness[alpha={alpha},steps=150]"))["key"].as_str().unwrap())
    };
    let read = |alpha: &str| -> Vec<f64> {
        // One pyarrow call per table.
        let out = run_python(
            "import sys, pyarrow.parquet as pq\nd = sys.argv[1]\ns = pq.read_table(d + '/summary.parquet').to_pydict()\nt = pq.read_table(d + '/smoothness.parquet')\nc = pq.read_table(d + '/correlation.parquet')\nassert t.num_rows > 0 and c.num_rows > 0\nprint(s['mean_spatial_loss'][0], s['mean_correlation_d1'][0], s['val_loss'][0])",
            &[smooth(alpha).to_str().unwrap()],
        );
        out.split_whitespace().map(|v| v.parse().unwrap()).collect()
    };
    let (topo, control) = (read("2.5"), read("0"));
    eprintln!("[spatial loss, r at distance 1, val_loss] topo {topo:?} control {control:?}");
    assert!(topo[0] < control[0] - 0.05, "alpha 2.5 should be smoother on held-out text: {topo:?} vs {control:?}");
    assert!(topo[1] > control[1], "neighbours should correlate more: {topo:?} vs {control:?}");
    // The responses to the localizer stimuli: every item, both models.
    let responses = store
        .join("objects")
        .join(stage(&summary, "responses[alpha=2.5,steps=150]")["key"].as_str().unwrap())
        .join("responses.arrow");
    let out = run_python(
        "import sys, pyarrow.feather as f; t = f.read_table(sys.argv[1]); print(t.num_rows)",
        &[responses.to_str().unwrap()],
    );
    assert_eq!(out.trim(), "480");
    // Moran's I of every S > N and noun > verb map (2 layers x 2 sublayers),
    // against its permutation null: one pyarrow call each.
    for name in ["moran[alpha=2.5,steps=150]", "moran[alpha=0,steps=150]", "moran_nv[alpha=2.5,steps=150]"] {
        let table = store.join("objects").join(stage(&summary, name)["key"].as_str().unwrap()).join("moran.parquet");
        let out = run_python(
            "import sys, math, pyarrow.parquet as pq\nt = pq.read_table(sys.argv[1]).to_pydict()\nassert all(-1 <= i <= 1 and 0 < p <= 1 for i, p in zip(t['i'], t['p']))\nprint(len(t['i']))",
            &[table.to_str().unwrap()],
        );
        assert_eq!(out.trim(), "4", "{name}");
    }
    // Changing only the permutation count reruns only the Moran stages.
    let args: Vec<String> = args
        .into_iter()
        .map(|a| if a == "moran.permutations=100" { "moran.permutations=50".into() } else { a })
        .collect();
    let output = std::process::Command::new(common::voxflow_bin()).args(&args).output().unwrap();
    assert!(output.status.success(), "{}\n{}", common::stdout(&output), stderr(&output));
    let rerun: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for (name, status) in statuses(&rerun) {
        let expected = if name.starts_with("moran[") { "ran" } else { "cached" };
        assert_eq!(status, expected, "{name}");
    }
}

/// The test's size for pipelines/topolm.yaml.
const SHRINK: &[&str] = &[
    "matrix.steps=[150]",
    "grammar.documents=600",
    "train.warmup_steps=10",
    "smoothness.batches=2",
    "moran.permutations=100",
    "moran_nv.permutations=100",
];
