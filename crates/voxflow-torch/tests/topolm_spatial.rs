//! TopoLM's spatial loss (`voxflow_torch::train::spatial`): the loss on
//! random activations against a float64 numpy/scipy recomputation; its
//! gradient through a tiny float64 model against finite differences; and a
//! `train.gpt` stage with `spatial` through the `voxflow` binary: the
//! metrics have `spatial_loss`, a rerun and a killed-and-resumed run give
//! the same bytes, and training on the loss lowers it against the alpha = 0
//! control.

#[path = "../../../tests/common/mod.rs"]
mod common;
mod training;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fresh_seed, python, run_python, stage, stderr, voxflow, voxflow_bin, voxflow_json, Scratch};
use tch::{Device, Kind, Tensor};
use training::{corpus_script, output_digests};
use voxflow_torch::train::spatial::{Correlate, PositionsInit, SpatialConfig, SpatialLayout, SpatialLoss};

const REFERENCE: &str = r#"
import json, sys
import numpy as np
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr
d = json.load(open(sys.argv[1]))
side, total = d["side"], 0.0
for acts, cells, drawn in zip(d["acts"], d["cells"], d["drawn"]):
    acts, cells = np.array(acts, dtype=np.float64), np.array(cells)
    losses = []
    for members in drawn:
        a = acts[:, members]
        r = np.corrcoef(a.T)
        xy = np.stack([cells[members] // side, cells[members] % side], axis=1).astype(np.float64)
        D = 1.0 / (1.0 + pdist(xy))           # the pairs i < j, in the same order as triu
        iu = np.triu_indices(len(members), 1)
        losses.append(0.5 * (1.0 - pearsonr(r[iu], D)[0]))
    total += np.mean(losses)
print(repr(float(total)))
"#;

#[test]
fn the_spatial_loss_matches_a_float64_numpy_scipy_recomputation() {
    let seed = fresh_seed();
    tch::manual_seed((seed >> 1) as i64);
    let (side, radius, outputs, tokens) = (8usize, 3usize, 3usize, 60i64);
    // Activations with some spatial structure (cumulative sums along the
    // units) plus noise, so that r and D correlate.
    let acts: Vec<Tensor> = (0..outputs)
        .map(|_| {
            Tensor::randn([tokens, (side * side) as i64], (Kind::Double, Device::Cpu)).cumsum(1, Kind::Double) * 0.3
                + Tensor::randn([tokens, (side * side) as i64], (Kind::Double, Device::Cpu))
        })
        .collect();
    let mut layout = SpatialLayout::grid(side, radius, outputs, seed);
    layout.preoptimize(&acts, seed);
    let config = SpatialConfig { alpha: 2.5, neighborhoods: 4, radius, positions: PositionsInit::Preoptimized };
    let spatial = SpatialLoss::new(config, layout.clone(), seed, Device::Cpu);
    let step = (seed % 1000) as usize;
    let ours = spatial.loss(&acts, step).double_value(&[]);
    // Both routes (a covariance per neighbourhood, or one over the union of
    // the drawn neighbourhoods) give the same loss.
    let routes =
        [Correlate::PerNeighborhood, Correlate::Union].map(|r| spatial.loss_by(&acts, step, r).double_value(&[]));

    let drawn: Vec<Vec<Vec<u32>>> = spatial
        .drawn(step)
        .iter()
        .enumerate()
        .map(|(l, d)| d.iter().map(|&n| layout.layers[l].neighborhoods[n].clone()).collect())
        .collect();
    let data = serde_json::json!({
        "side": side,
        "acts": acts.iter().map(|a| Vec::<Vec<f64>>::try_from(a).unwrap()).collect::<Vec<_>>(),
        "cells": layout.layers.iter().map(|l| l.cell.clone()).collect::<Vec<_>>(),
        "drawn": drawn,
    });
    let dir = Scratch::new("topolm-reference");
    let path = dir.write("data.json", &data.to_string());
    let theirs: f64 = run_python(REFERENCE, &[path.to_str().unwrap()]).trim().parse().unwrap();
    let error = (ours - theirs).abs();
    eprintln!("spatial loss: voxflow {ours:.15} numpy/scipy {theirs:.15} (|diff| {error:.2e})");
    assert!(error < 1e-10 * theirs.abs().max(1.0), "voxflow {ours} != reference {theirs}");
    for (route, value) in ["per neighbourhood", "union"].iter().zip(routes) {
        assert!(
            (value - theirs).abs() < 1e-10 * theirs.abs().max(1.0),
            "{route}: voxflow {value} != reference {theirs}"
        );
    }
    assert!(ours > 0.0 && ours < outputs as f64, "{ours}");
}

#[test]
fn the_gradient_through_a_tiny_model_matches_finite_differences() {
    let seed = fresh_seed();
    tch::manual_seed((seed >> 1) as i64);
    let opts = (Kind::Double, Device::Cpu);
    // A tiny two-"block" model in float64: h1 = tanh(x W1), h2 = h1 + tanh(h1 W2),
    // units on a 4 x 4 grid, neighbourhoods of 3 x 3.
    let x = Tensor::randn([30, 6], opts);
    let mut w1 = (Tensor::randn([6, 16], opts) * 0.5).set_requires_grad(true);
    let mut w2 = (Tensor::randn([16, 16], opts) * 0.3).set_requires_grad(true);
    let layout = SpatialLayout::grid(4, 2, 2, seed);
    let config = SpatialConfig { alpha: 1.0, neighborhoods: 3, radius: 2, positions: PositionsInit::Grid };
    let spatial = SpatialLoss::new(config, layout, seed, Device::Cpu);
    for route in [Correlate::PerNeighborhood, Correlate::Union] {
        w1.zero_grad();
        w2.zero_grad();
        gradient_check(&spatial, route, &x, &w1, &w2);
    }
}

/// The analytic gradient of the spatial loss of `h1 = tanh(x W1)`, `h2 = h1 +
/// tanh(h1 W2)` by `route` against central differences.
fn gradient_check(spatial: &SpatialLoss, route: Correlate, x: &Tensor, w1: &Tensor, w2: &Tensor) {
    let step = 11;
    let loss_of = |w1: &Tensor, w2: &Tensor| {
        let h1 = x.matmul(w1).tanh();
        let h2 = &h1 + h1.matmul(w2).tanh();
        spatial.loss_by(&[h1, h2], step, route)
    };
    let loss = loss_of(w1, w2);
    loss.backward();
    let eps = 1e-6;
    let mut worst: f64 = 0.0;
    for w in [w1, w2] {
        let grad = Vec::<f64>::try_from(w.grad().view([-1])).unwrap();
        let base = w.detach().view([-1]);
        for i in 0..grad.len() {
            let shifted = |delta: f64| {
                let v = base.copy();
                let _ = v.get(i as i64).f_add_scalar_(delta).unwrap();
                v.view_as(w)
            };
            let numeric = tch::no_grad(|| {
                if std::ptr::eq(w, w1) {
                    (loss_of(&shifted(eps), w2).double_value(&[]) - loss_of(&shifted(-eps), w2).double_value(&[]))
                        / (2.0 * eps)
                } else {
                    (loss_of(w1, &shifted(eps)).double_value(&[]) - loss_of(w1, &shifted(-eps)).double_value(&[]))
                        / (2.0 * eps)
                }
            });
            // Relative, with a floor for near-zero entries (central differences at
            // eps 1e-6 carry ~1e-10 of round-off).
            let error = (numeric - grad[i]).abs() / (1e-4 + numeric.abs().max(grad[i].abs()));
            worst = worst.max(error);
            assert!(error < 1e-5, "{route:?}, weight {i}: analytic {} numeric {numeric}", grad[i]);
        }
    }
    eprintln!("{route:?}: loss {:.6}; worst relative gradient error {worst:.2e}", loss.double_value(&[]));
    assert!(w1.grad().abs().sum(Kind::Double).double_value(&[]) > 0.0);
}

/// Stages `topo` (alpha 2.5, pre-optimised positions) and `control` (alpha 0).
fn write_pipeline(dir: &Scratch, seed: u64) -> PathBuf {
    let script = corpus_script(dir, seed);
    let train = "n_layer: 2, n_head: 2, n_embd: 36, context_length: 16, batch_tokens: 128, steps: 240, warmup_steps: 10, eval_every: 60, save_every: 10, checkpoints: [240], seed: 3, device: cpu, dropout: 0.1";
    dir.write(
        "topo.yaml",
        &format!(
            "name: topo\nstages:\n  corpus:\n    kind: command\n    run: {} {} {{out_dir}} {{params.docs}}\n    params: {{docs: 200}}\n    outputs: {{train: train.parquet, valid: valid.parquet, tokenizer: tokenizer.json}}\n  topo:\n    kind: train.gpt\n    inputs: {{corpus: corpus}}\n    resources: {{threads: 1}}\n    params: {{{train}, spatial: {{alpha: 2.5, neighborhoods: 5, radius: 3, positions: preoptimized}}}}\n  control:\n    kind: train.gpt\n    inputs: {{corpus: corpus}}\n    resources: {{threads: 1}}\n    params: {{{train}, spatial: {{alpha: 0, radius: 3}}}}\n",
            python().display(),
            script.display()
        ),
    )
}

fn saved_step(store: &Path, key: &str) -> Option<usize> {
    std::fs::read_dir(store.join("work").join(key))
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_prefix("state-").and_then(|s| s.parse().ok()))
        .max()
}

#[test]
fn a_train_gpt_stage_with_spatial_writes_its_curve_and_reruns_and_resumes_to_the_same_bytes() {
    let seed = fresh_seed();
    let dir = Scratch::new("topolm-stage");
    let pipeline = write_pipeline(&dir, seed);
    let path = pipeline.to_str().unwrap();

    let first = dir.join("first");
    let summary = voxflow_json(&["run", path, "--store", first.to_str().unwrap(), "--format", "json"], 0);
    let key = stage(&summary, "topo")["key"].as_str().unwrap().to_string();
    let control_key = stage(&summary, "control")["key"].as_str().unwrap().to_string();
    let expected = output_digests(&first, &key);

    // The metrics: a spatial_loss on every row; training on it (alpha 2.5)
    // ends lower than the control's.
    let read = |key: &str| -> Vec<f64> {
        let out = run_python(
            "import sys, pyarrow.parquet as pq; t = pq.read_table(sys.argv[1]).to_pydict(); s = t['spatial_loss']; assert all(v is not None for v in s), s; print(len(s), sum(s[:10]) / 10, sum(s[-20:]) / 20, t['loss'][0], sum(t['loss'][-20:]) / 20)",
            &[first.join("objects").join(key).join("metrics.parquet").to_str().unwrap()],
        );
        out.split_whitespace().map(|v| v.parse().unwrap()).collect()
    };
    let (topo, control) = (read(&key), read(&control_key));
    eprintln!("topo [rows, spatial first 10, last 20, loss first, last 20]: {topo:?}\ncontrol: {control:?}");
    assert_eq!(topo[0], 240.0);
    assert!(topo[2] < control[2], "training on the spatial loss should lower it: {topo:?} vs control {control:?}");
    assert!(topo[4] < topo[3] - 0.5 && control[4] < control[3] - 0.5, "the LM loss falls: {topo:?} {control:?}");

    // A rerun in a fresh store: the same bytes.
    let second = dir.join("second");
    voxflow_json(&["run", path, "--store", second.to_str().unwrap(), "--format", "json"], 0);
    assert_eq!(output_digests(&second, &key), expected, "rerun != first run");

    // Killed after a saved state, resumed: the same bytes.
    let store = dir.join("killed");
    let mut child = Command::new(voxflow_bin())
        .args(["run", path, "--store", store.to_str().unwrap(), "--jobs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while saved_step(&store, &key).is_none_or(|step| step < 40) {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        assert!(Instant::now() < deadline, "no training state was saved");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let step = saved_step(&store, &key).unwrap();
    assert!(store.join("work").join(&key).join(format!("state-{step}")).join("spatial.json").exists());
    let output = voxflow(&["run", path, "--store", store.to_str().unwrap(), "--format", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let said = stderr(&output);
    assert!(said.contains("topo: resuming from step"), "{said}");
    assert_eq!(output_digests(&store, &key), expected, "resumed != uninterrupted");
}

#[test]
fn spatial_params_are_checked_with_the_param_and_the_fix() {
    let dir = Scratch::new("topolm-params");
    let pipeline = dir.write(
        "bad.yaml",
        "name: bad\nstages:\n  corpus:\n    kind: command\n    run: echo\n    outputs: {train: a, valid: b, tokenizer: c}\n  topo:\n    kind: train.gpt\n    inputs: {corpus: corpus}\n    params: {n_embd: 64, n_head: 2, steps: 10, spatial: {radius: 5, neighborhoods: 0, alpha: -1}}\n",
    );
    let output = voxflow(&["validate", pipeline.to_str().unwrap()]);
    let said = format!("{}{}", common::stdout(&output), stderr(&output));
    assert!(!output.status.success(), "{said}");
    for needle in ["spatial.radius", "spatial.neighborhoods", "spatial.alpha"] {
        assert!(said.contains(needle), "{needle} not in: {said}");
    }
    let pipeline = dir.write(
        "square.yaml",
        "name: sq\nstages:\n  corpus:\n    kind: command\n    run: echo\n    outputs: {train: a, valid: b, tokenizer: c}\n  topo:\n    kind: train.gpt\n    inputs: {corpus: corpus}\n    params: {n_embd: 96, n_head: 2, steps: 10, spatial: {}}\n",
    );
    let output = voxflow(&["validate", pipeline.to_str().unwrap()]);
    let said = format!("{}{}", common::stdout(&output), stderr(&output));
    assert!(!output.status.success() && said.contains("not a square number") && said.contains("81 or 100"), "{said}");
}
