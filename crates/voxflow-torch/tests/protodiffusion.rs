//! ProtoDiffusion's stages against references: the noise schedule and
//! q(x_t | x_0), one DDIM step and the prototype logits against float64
//! numpy, the Frechet distance against scipy.linalg.sqrtm, classifier-free
//! guidance with weight 0 against the conditional prediction; the pipeline
//! (pipelines/protodiffusion.yaml, shrunk with `--set`) through the binary,
//! where every conditioning mode's samples are classified as their class
//! well above chance; and a train.ddpm killed with SIGKILL resuming from
//! its last state to the bytes of an uninterrupted run.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fresh_seed, run_python, stage, stderr, voxflow, voxflow_bin, voxflow_json, Scratch};
use rand::{Rng, SeedableRng};
use tch::{Device, Kind, Tensor};
use voxflow_torch::diffusion::classifier::prototype_logits;
use voxflow_torch::diffusion::schedule::NoiseSchedule;
use voxflow_torch::diffusion::unet::{guided_eps, UNet, UNetConfig, FORMAT};
use voxflow_torch::diffusion::{step_seed, to_vec};

fn random(rng: &mut impl Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-1.0..1.0) * scale).collect()
}

fn tensor(values: &[f64], shape: &[i64]) -> Tensor {
    let floats: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    Tensor::from_slice(&floats).view(shape)
}

fn close(got: &[f32], expected: &[f64], tolerance: f64, what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: lengths");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!((*g as f64 - e).abs() <= tolerance * (1.0 + e.abs()), "{what}[{i}]: {g} vs {e}");
    }
}

/// The float64 references of numpy and scipy for the kernels, from one Python process.
const REFERENCE: &str = r#"
import json, sys
import numpy as np, scipy.linalg
d = json.load(open(sys.argv[1]))
betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
abar = np.cumprod(1.0 - betas)
x0, noise, t = np.array(d['x0']).reshape(4, 64), np.array(d['noise']).reshape(4, 64), np.array(d['t'])
q = np.sqrt(abar[t])[:, None] * x0 + np.sqrt(1 - abar[t])[:, None] * noise
def ddim(xt, eps, t, prev):
    a = abar[t]; ap = 1.0 if prev is None else abar[prev]
    x0 = np.clip((xt - np.sqrt(1 - a) * eps) / np.sqrt(a), -1, 1)
    eps = (xt - np.sqrt(a) * x0) / np.sqrt(1 - a)
    return np.sqrt(ap) * x0 + np.sqrt(1 - ap) * eps
xt, eps = np.array(d['xt']), np.array(d['eps'])
f, c = np.array(d['f']).reshape(6, 5), np.array(d['c']).reshape(3, 5)
logits = -2.0 * ((f[:, None, :] - c[None, :, :]) ** 2).sum(-1)
a, b = np.array(d['a']).reshape(-1, 6), np.array(d['b']).reshape(-1, 6)
m1, m2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
root = scipy.linalg.sqrtm(s1 @ s2).real
fid = float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))
print(json.dumps({'betas': betas.tolist(), 'abar': abar.tolist(), 'q': q.ravel().tolist(),
  'ddim': ddim(xt, eps, d['step_t'], d['step_prev']).tolist(), 'ddim_last': ddim(xt, eps, d['step_prev'], None).tolist(),
  'logits': logits.ravel().tolist(), 'fid': fid}))
"#;

#[test]
fn schedule_ddim_logits_and_frechet_match_numpy_and_scipy() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(fresh_seed());
    let x0 = random(&mut rng, 256, 1.0);
    let noise = random(&mut rng, 256, 2.0);
    let t: Vec<i64> = (0..4).map(|_| rng.random_range(0..1000)).collect();
    let xt = random(&mut rng, 64, 2.0);
    let eps = random(&mut rng, 64, 1.5);
    let step_t = rng.random_range(500..1000usize);
    let step_prev = rng.random_range(1..step_t);
    let f = random(&mut rng, 30, 2.0);
    let c = random(&mut rng, 15, 2.0);
    let a = random(&mut rng, 300 * 6, 1.0);
    // b: another covariance (columns mixed) and mean.
    let b: Vec<f64> = random(&mut rng, 250 * 6, 1.0)
        .chunks(6)
        .flat_map(|r| (0..6).map(|j| r[j] * (1.0 + j as f64 * 0.3) + 0.5 * r[(j + 1) % 6] + 0.2).collect::<Vec<_>>())
        .collect();
    let dir = Scratch::new("protodiffusion-reference");
    let input = dir.write(
        "input.json",
        &serde_json::json!({"x0": x0, "noise": noise, "t": t, "xt": xt, "eps": eps, "step_t": step_t,
            "step_prev": step_prev, "f": f, "c": c, "a": a, "b": b})
        .to_string(),
    );
    let reference: serde_json::Value =
        serde_json::from_str(&run_python(REFERENCE, &[input.to_str().unwrap()])).unwrap();
    let numbers =
        |key: &str| -> Vec<f64> { reference[key].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect() };

    let schedule = NoiseSchedule::linear(1000, 1e-4, 0.02);
    for (key, ours) in [("betas", &schedule.betas), ("abar", &schedule.alphas_cumprod)] {
        for (i, (o, r)) in ours.iter().zip(numbers(key)).enumerate() {
            assert!((o - r).abs() <= 1e-12 * r.abs().max(1e-3), "{key}[{i}]: {o} vs {r}");
        }
    }
    let q = schedule.q_sample(&tensor(&x0, &[4, 1, 8, 8]), &Tensor::from_slice(&t), &tensor(&noise, &[4, 1, 8, 8]));
    close(&to_vec(&q), &numbers("q"), 1e-5, "q_sample");

    let (xt_t, eps_t) = (tensor(&xt, &[1, 1, 8, 8]), tensor(&eps, &[1, 1, 8, 8]));
    close(&to_vec(&schedule.ddim_step(&xt_t, &eps_t, step_t, Some(step_prev))), &numbers("ddim"), 1e-4, "ddim");
    close(&to_vec(&schedule.ddim_step(&xt_t, &eps_t, step_prev, None)), &numbers("ddim_last"), 1e-4, "ddim to x0");
    let ts = schedule.ddim_timesteps(50);
    assert_eq!((ts.len(), ts[0], ts[49]), (50, 999, 0));

    let logits = prototype_logits(&tensor(&f, &[6, 5]), &tensor(&c, &[3, 5]), 2.0);
    assert_eq!(logits.size(), [6, 3]);
    close(&to_vec(&logits), &numbers("logits"), 1e-5, "prototype logits");

    let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let fid = voxflow::numeric::frechet::frechet_distance_of(&to32(&a), &to32(&b), 6);
    let expected = reference["fid"].as_f64().unwrap();
    assert!(expected > 0.5, "a distance worth comparing: {expected}");
    assert!((fid - expected).abs() < 1e-5 * expected.max(1.0), "fid {fid} vs scipy {expected}");
}

#[test]
fn guidance_weight_zero_is_the_conditional_prediction() {
    let seed = fresh_seed();
    tch::manual_seed(step_seed(seed, 1));
    let config = UNetConfig {
        format: FORMAT.to_string(),
        image_size: 8,
        channels: 8,
        embed_dim: 5,
        classes: 3,
        timesteps: 1000,
        beta_start: 1e-4,
        beta_end: 0.02,
        mode: "regular".into(),
        learned_table: true,
        class_names: vec!["a".into(), "b".into(), "c".into()],
    };
    let table = Tensor::randn([3, 5], (Kind::Float, Device::Cpu));
    let unet = UNet::new(config, &table, Device::Cpu);
    let x = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
    let t = Tensor::from_slice(&[3i64, 500, 999, 42]);
    let labels = Tensor::from_slice(&[0i64, 2, 1, 2]);
    let _guard = tch::no_grad_guard();
    let conditional = unet.forward(&x, &t, &labels);
    let unconditional = unet.forward(&x, &t, &labels.full_like(3));
    let zero = guided_eps(&unet, &x, &t, &labels, 0.0);
    close(&to_vec(&zero), &to_vec(&conditional).iter().map(|&v| v as f64).collect::<Vec<_>>(), 1e-5, "w = 0");
    // w = 1.5: 2.5 conditional - 1.5 unconditional, and not the conditional.
    let guided = guided_eps(&unet, &x, &t, &labels, 1.5);
    let expected: Vec<f64> = to_vec(&conditional)
        .iter()
        .zip(to_vec(&unconditional))
        .map(|(c, u)| 2.5 * *c as f64 - 1.5 * u as f64)
        .collect();
    close(&to_vec(&guided), &expected, 1e-4, "w = 1.5");
    assert!((&guided - &conditional).abs().max().double_value(&[]) > 1e-3, "the null embedding changes the prediction");
}

fn pipeline() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/protodiffusion.yaml")
}

/// The pipeline at a size that trains in seconds per mode on one thread.
const SHRINK: &[&str] = &[
    "matrix.seed=[0]",
    "digits.size=8",
    "prototypes.steps=80",
    "prototypes.channels=16",
    "judge.steps=120",
    "judge.channels=16",
    "ddpm.channels=16",
    "ddpm.steps=150",
    "ddpm.warmup_steps=20",
    "ddpm.learning_rate=3e-3",
    "ddpm.checkpoints=[50, 150]",
    "ddpm.save_every=50",
    "samples.samples_per_class=10",
    "samples.ddim_steps=15",
    "samples.device=cpu",
    "ddpm.device=cpu",
    "prototypes.device=cpu",
    "judge.device=cpu",
];

fn run_args(store: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec!["run".into(), pipeline().to_str().unwrap().into()];
    for set in SHRINK.iter().chain(extra) {
        args.push("--set".into());
        args.push(set.to_string());
    }
    args.extend(["--store".into(), store.to_str().unwrap().into()]);
    args
}

#[test]
fn every_mode_samples_its_classes_well_above_chance() {
    let dir = Scratch::new("protodiffusion-pipeline");
    let store = dir.join("store");
    let mut args = run_args(&store, &[]);
    args.extend(["--format".into(), "json".into()]);
    let output = Command::new(voxflow_bin()).args(&args).output().unwrap();
    assert!(output.status.success(), "{}\n{}", common::stdout(&output), stderr(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let object = |name: &str| store.join("objects").join(stage(&summary, name)["key"].as_str().unwrap());
    // Every artifact opens with one pyarrow call, labels included.
    let digits = object("digits");
    // The digits are scikit-learn's (load_digits), as v / 8 - 1, labels in order.
    let shapes = run_python(
        "import sys, numpy as np, pyarrow.feather as f, pyarrow.parquet as pq\nfrom sklearn.datasets import load_digits\nm = f.read_table(sys.argv[1] + '/images.arrow')\nl = pq.read_table(sys.argv[1] + '/labels.parquet').to_pydict()\np = f.read_table(sys.argv[2] + '/prototypes.arrow')\nd = load_digits()\nx = np.array(m.column('data').to_pylist())\nsame = np.array_equal(x, d.data / 8 - 1) and l['label'] == d.target.tolist() and m.column('label').to_pylist() == d.target.tolist()\nprint(m.num_rows, x.shape[1], same, l['split'].count('test'), p.num_rows, p.column('class').to_pylist() == list(range(10)))",
        &[digits.to_str().unwrap(), object("prototypes").to_str().unwrap()],
    );
    assert_eq!(shapes.trim(), "1797 64 True 359 10 True", "{shapes}");
    let mut report = String::new();
    for mode in ["regular", "proto_frozen", "proto_unfrozen", "random_rescaled", "proto_shuffled"] {
        let name = format!("samples[mode={mode},seed=0]");
        let dir = object(&name);
        let scores = run_python(
            "import sys, pyarrow.parquet as pq\nt = pq.read_table(sys.argv[1] + '/summary.parquet').to_pydict()\nprint(' '.join(f'{s} {m} {a} {f}' for s, m, a, f in zip(t['step'], t['mode'], t['accuracy'], t['fid'])))",
            &[dir.to_str().unwrap()],
        );
        let fields: Vec<&str> = scores.split_whitespace().collect();
        assert_eq!(fields.len(), 8, "two checkpoints: {scores}");
        assert_eq!((fields[0], fields[1], fields[4], fields[5]), ("50", mode, "150", mode), "{scores}");
        let accuracy: f64 = fields[6].parse().unwrap();
        let fid: f64 = fields[7].parse().unwrap();
        report.push_str(&format!("{mode}: {scores}\n"));
        assert!(accuracy > 0.35, "{mode}: accuracy {accuracy} at the end is not well above chance (0.1)\n{report}");
        assert!(fid.is_finite() && fid >= 0.0, "{mode}: fid {fid}");
        for step in [50, 150] {
            let png = std::fs::read(dir.join("grids").join(format!("step{step}.png"))).unwrap();
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        }
    }
    eprintln!("{report}");
}

/// The highest `state-<step>` in the store's work directories.
fn saved_step(store: &Path) -> Option<usize> {
    let work = std::fs::read_dir(store.join("work")).ok()?;
    work.flatten()
        .flat_map(|dir| std::fs::read_dir(dir.path()).into_iter().flatten().flatten())
        .filter_map(|e| e.file_name().to_string_lossy().strip_prefix("state-").and_then(|s| s.parse().ok()))
        .max()
}

fn output_digests(store: &Path, key: &str) -> Vec<(String, String)> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("objects").join(key).join("manifest.json")).unwrap()).unwrap();
    manifest["outputs"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v["digest"].to_string())).collect()
}

#[test]
fn a_killed_ddpm_training_resumes_to_the_bytes_of_an_uninterrupted_run() {
    let seed = fresh_seed() % 1000;
    let dir = Scratch::new("protodiffusion-resume");
    // One mode; only the DDPM and what it needs (`--stage`).
    let extra = [
        "matrix.mode=[proto_unfrozen]".to_string(),
        format!("matrix.seed=[{seed}]"),
        "ddpm.steps=120".to_string(),
        "ddpm.checkpoints=[60, 120]".to_string(),
        "ddpm.save_every=20".to_string(),
    ];
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let name = format!("ddpm[mode=proto_unfrozen,seed={seed}]");
    let whole = dir.join("whole");
    let mut args = run_args(&whole, &extra);
    args.extend(["--stage".into(), name.clone(), "--format".into(), "json".into()]);
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    let summary = voxflow_json(&args_ref, 0);
    let key = stage(&summary, &name)["key"].as_str().unwrap().to_string();
    let expected = output_digests(&whole, &key);
    assert_eq!(expected.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["metrics", "step120", "step60"]);

    let store = dir.join("killed");
    let mut args = run_args(&store, &extra);
    args.extend(["--stage".into(), name.clone()]);
    let mut child =
        Command::new(voxflow_bin()).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while saved_step(&store).is_none_or(|step| step < 40) {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        assert!(Instant::now() < deadline, "no training state was saved");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let step = saved_step(&store).unwrap();
    assert!(step < 120, "killed before the end ({step})");
    let output = voxflow(&args.iter().map(String::as_str).chain(["--format", "json"]).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", stderr(&output));
    let said = stderr(&output);
    assert!(said.contains("resuming from step") && said.contains("of 120"), "{said}");
    assert_eq!(output_digests(&store, &key), expected, "resumed != uninterrupted");
}

#[test]
fn bad_params_are_reported_together_with_the_stage_param_and_fix() {
    let dir = Scratch::new("protodiffusion-bad");
    let store = dir.join("store");
    let path = pipeline();
    let output = voxflow(&[
        "run",
        path.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--set",
        "ddpm.mode=proto_frozn",
        "--set",
        "digits.size=12",
        "--set",
        "samples.guidance=-1",
        "--set",
        "judge.learning_rate=0",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let said = stderr(&output);
    for needle in [
        "stage `ddpm`: param `mode`: unknown value `proto_frozn`",
        "did you mean `proto_frozen`?",
        "stage `digits`: param `size`: size is 12, not a multiple of 8",
        "stage `samples`: param `guidance`: guidance is -1",
        "stage `judge`: param `learning_rate`: learning_rate is 0",
        "4 errors found; nothing ran",
    ] {
        assert!(said.contains(needle), "{needle:?} not in:\n{said}");
    }
    assert!(!store.join("objects").exists() || std::fs::read_dir(store.join("objects")).unwrap().next().is_none());
}

#[test]
fn shapes_open_with_one_pyarrow_call_and_split_every_class() {
    let seed = fresh_seed() % 10_000;
    let dir = Scratch::new("protodiffusion-shapes");
    let pipeline = dir.write(
        "shapes.yaml",
        &format!(
            "name: shapes\nstages:\n  shapes:\n    kind: images.shapes\n    params: {{classes: 5, per_class: 30, size: 12, test_fraction: 0.2, seed: {seed}}}\n"
        ),
    );
    let summary = voxflow_json(&["run", pipeline.to_str().unwrap(), "--format", "json"], 0);
    let object = dir.join(".voxflow/objects").join(stage(&summary, "shapes")["key"].as_str().unwrap());
    let out = run_python(
        "import sys, numpy as np, pyarrow.feather as f, pyarrow.parquet as pq\nm = f.read_table(sys.argv[1] + '/images.arrow')\nl = pq.read_table(sys.argv[1] + '/labels.parquet').to_pandas()\nx = np.array(m.column('data').to_pylist())\nprint(m.num_rows, x.shape[1], x.min() >= -1 and x.max() <= 1, sorted(l['class'].unique()), l[l.split == 'test'].groupby('label').size().tolist(), m.column('label').to_pylist() == l['label'].tolist())",
        &[object.to_str().unwrap()],
    );
    assert_eq!(
        out.trim(),
        "150 144 True ['circle', 'cross', 'ring', 'square', 'triangle'] [6, 6, 6, 6, 6] True",
        "{out}"
    );
}
