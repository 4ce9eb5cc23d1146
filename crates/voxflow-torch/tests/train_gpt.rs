//! The training core of `train.gpt` (src/train/) against PyTorch: the same
//! initial checkpoint loaded into `transformers.GPT2LMHeadModel` and trained
//! on the same batches with `torch.optim.AdamW` and `clip_grad_norm_` gives
//! the same loss curve; checkpoints open in transformers and in voxflow's
//! own `LanguageModel`; runs are deterministic and resume exactly.

#[path = "../../../tests/common/mod.rs"]
mod common;

use common::{fresh_seed, run_python, Scratch};
use rand::{Rng, SeedableRng};
use serde_json::json;
use tch::{Device, Kind, Tensor};
use voxflow_torch::lm::model::LanguageModel;
use voxflow_torch::train::{GptConfig, GptModel, TrainConfig, Trainer};

fn tiny(dropout: f64) -> GptConfig {
    GptConfig {
        vocab_size: 97,
        n_layer: 2,
        n_head: 2,
        n_embd: 32,
        context_length: 16,
        dropout,
        layer_norm_epsilon: 1e-5,
    }
}

fn random_tokens(seed: u64, n: usize, vocab: u32) -> Vec<u32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(0..vocab)).collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().to_kind(Kind::Double).double_value(&[])
}

const REFERENCE: &str = r#"
import json, math, sys
import torch, torch.nn.functional as F
from transformers import GPT2LMHeadModel
torch.set_num_threads(1)
cfg = json.load(open(sys.argv[1]))
model, info = GPT2LMHeadModel.from_pretrained(cfg["init"], output_loading_info=True)
model = model.float()
problems = {k: v for k, v in info.items() if v}
assert not problems, problems
assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr(), "head not tied"
batches = torch.tensor(cfg["batches"], dtype=torch.long)
t = cfg["train"]
def lr_at(s):
    if s < t["warmup_steps"]:
        return t["learning_rate"] * (s + 1) / t["warmup_steps"]
    p = (s - t["warmup_steps"]) / (t["steps"] - t["warmup_steps"])
    return t["min_lr"] + 0.5 * (1 + math.cos(math.pi * p)) * (t["learning_rate"] - t["min_lr"])
model.eval()
with torch.no_grad():
    logits0 = model(batches[0][:, :-1]).logits
model.train()
named = list(model.named_parameters())
decay = [p for n, p in named if p.dim() >= 2]
other = [p for n, p in named if p.dim() < 2]
opt = torch.optim.AdamW(
    [{"params": decay, "weight_decay": t["weight_decay"]}, {"params": other, "weight_decay": 0.0}],
    lr=t["learning_rate"], betas=(t["beta1"], t["beta2"]), eps=t["eps"])
losses, norms, lrs = [], [], []
for s, batch in enumerate(batches):
    lr = lr_at(s)
    for group in opt.param_groups:
        group["lr"] = lr
    x, y = batch[:, :-1], batch[:, 1:]
    logits = model(x).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
    opt.step()
    losses.append(loss.item()); norms.append(norm.item()); lrs.append(lr)
model.save_pretrained(cfg["out"])
print(json.dumps({"logits0": logits0.flatten().tolist(), "losses": losses, "grad_norms": norms, "lrs": lrs,
                  "decay": [n for n, p in named if p.dim() >= 2]}))
"#;

#[test]
fn training_matches_pytorch_adamw_on_gpt2lmheadmodel() {
    tch::set_num_threads(1);
    let seed = fresh_seed();
    let dir = Scratch::new("train-gpt-ref");
    let config = TrainConfig {
        seed,
        steps: 20,
        batch_size: 4,
        learning_rate: 3e-3,
        warmup_steps: 5,
        min_lr: 3e-4,
        weight_decay: 0.1,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        grad_clip: 0.5,
        eval_every: 0,
        eval_batches: 1,
    };
    let mut trainer = Trainer::new(&tiny(0.0), config.clone(), Device::Cpu).unwrap();
    let init = dir.join("init");
    trainer.save_hf(&init, None).unwrap();
    // Half the tokens from a short repeating pattern, so that the loss moves.
    let mut tokens = random_tokens(seed ^ 1, 600, 97);
    let pattern = random_tokens(seed ^ 2, 9, 97);
    tokens.extend((0..600).map(|i| pattern[i % 9]));

    let mut batches = Vec::new();
    let mut stats = Vec::new();
    let mut logits0 = None;
    for _ in 0..config.steps {
        let batch = trainer.next_batch(&tokens).unwrap();
        if logits0.is_none() {
            logits0 = Some(tch::no_grad(|| trainer.model.forward(&batch.inputs, false)));
        }
        batches.push(batch.windows());
        stats.push(trainer.train_step(&batch));
    }
    let out = dir.join("torch-final");
    let request = json!({"init": init, "out": out, "batches": batches, "train": config});
    let request_path = dir.write("request.json", &request.to_string());
    let reply: serde_json::Value =
        serde_json::from_str(run_python(REFERENCE, &[request_path.to_str().unwrap()]).trim().lines().last().unwrap())
            .unwrap();

    // The initial checkpoint: transformers' logits equal voxflow's forward.
    let theirs: Vec<f32> = reply["logits0"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let ours = logits0.unwrap();
    let diff = max_abs_diff(&ours, &Tensor::from_slice(&theirs).view(ours.size().as_slice()));
    eprintln!("initial logits: max abs diff {diff:.2e}");
    assert!(diff < 1e-4, "initial logits differ by {diff}");

    // Weight decay on the same parameters: every matrix.
    let decayed: Vec<&str> = reply["decay"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let ours_decayed: Vec<String> = trainer
        .model
        .parameters()
        .iter()
        .filter(|(n, _)| voxflow_torch::train::gpt::decays(n))
        .map(|(n, _)| format!("transformer.{n}"))
        .collect();
    let mut sorted = decayed.clone();
    sorted.sort();
    let mut ours_sorted = ours_decayed.clone();
    ours_sorted.sort();
    assert_eq!(sorted, ours_sorted);

    let series =
        |key: &str| -> Vec<f64> { reply[key].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect() };
    let (losses, norms, lrs) = (series("losses"), series("grad_norms"), series("lrs"));
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-12);
    let mut worst_loss = 0.0f64;
    let mut worst_norm = 0.0f64;
    for (i, s) in stats.iter().enumerate() {
        assert!(rel(s.lr, lrs[i]) < 1e-12, "step {i}: lr {} vs {}", s.lr, lrs[i]);
        worst_loss = worst_loss.max(rel(s.loss, losses[i]));
        worst_norm = worst_norm.max(rel(s.grad_norm, norms[i]));
    }
    eprintln!(
        "losses {:.4} -> {:.4}; max relative diff vs PyTorch: loss {worst_loss:.2e}, grad norm {worst_norm:.2e}",
        losses[0],
        losses[losses.len() - 1]
    );
    assert!(worst_loss < 1e-4, "loss curves differ by {worst_loss:.2e} relative\nours {stats:?}\ntheirs {losses:?}");
    assert!(worst_norm < 1e-3, "grad norms differ by {worst_norm:.2e} relative");
    assert!(norms.iter().any(|&n| n > 0.5), "clipping was never exercised: {norms:?}");
    assert!(losses[19] < losses[0], "{losses:?}");

    // The weights after 20 steps, as transformers saved them, load here and match ours.
    let final_torch = GptModel::load_hf(&out, Device::Cpu).unwrap();
    let mut worst_weight = 0.0f64;
    for ((name, a), (_, b)) in trainer.model.parameters().iter().zip(final_torch.parameters()) {
        let d = max_abs_diff(a, b);
        assert!(d < 1e-4, "{name} differs by {d}");
        worst_weight = worst_weight.max(d);
    }
    eprintln!("weights after 20 steps: max abs diff {worst_weight:.2e}");
}

/// A WordLevel tokenizer of `n` tokens `t0`..`t{n-1}`.
fn word_tokenizer(dir: &Scratch, n: usize) -> std::path::PathBuf {
    let vocab: serde_json::Map<String, serde_json::Value> = (0..n).map(|i| (format!("t{i}"), json!(i))).collect();
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "t0"}
    });
    dir.write("tokenizer.json", &tokenizer.to_string())
}

#[test]
fn checkpoints_load_in_languagemodel_with_the_same_hidden_states() {
    tch::set_num_threads(1);
    let seed = fresh_seed();
    let dir = Scratch::new("train-gpt-lm");
    let config =
        TrainConfig { seed, steps: 4, warmup_steps: 1, batch_size: 3, learning_rate: 1e-2, ..Default::default() };
    let mut trainer = Trainer::new(&tiny(0.1), config, Device::Cpu).unwrap();
    let tokens = random_tokens(seed, 400, 97);
    for _ in 0..4 {
        trainer.train_on(&tokens).unwrap();
    }
    let tokenizer = word_tokenizer(&dir, 97);
    let checkpoint = dir.join("ckpt");
    trainer.save_hf(&checkpoint, Some(&tokenizer)).unwrap();
    let lm = LanguageModel::load(&checkpoint, Device::Cpu).unwrap();
    assert_eq!((lm.config.layers, lm.config.hidden, lm.config.heads), (2, 32, 2));
    let words: Vec<String> = tokens[..12].iter().map(|i| format!("t{i}")).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let ids: Vec<i64> = lm.tokenize_words(&words).unwrap().ids;
    assert_eq!(ids, tokens[..12].iter().map(|&i| i as i64).collect::<Vec<_>>());
    let ids = Tensor::from_slice(&ids).view([1, 12]);
    let theirs = lm.hidden_states(&ids, &ids.ones_like(), &[0, 1, 2]);
    let ours = trainer.model.hidden_states(&ids);
    for (l, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        let d = max_abs_diff(a, b);
        assert!(d < 1e-5, "hidden state {l} differs by {d}");
    }
    // And the checkpoint reloads for training with the same weights.
    let again = GptModel::load_hf(&checkpoint, Device::Cpu).unwrap();
    assert_eq!(again.config, trainer.model.config);
    for ((name, a), (_, b)) in trainer.model.parameters().iter().zip(again.parameters()) {
        assert!(a.equal(b), "{name}");
    }
}

fn weights_bytes(trainer: &Trainer, dir: &Scratch, name: &str) -> Vec<u8> {
    trainer.save_hf(&dir.join(name), None).unwrap();
    std::fs::read(dir.join(name).join("model.safetensors")).unwrap()
}

#[test]
fn runs_are_deterministic_and_resume_exactly() {
    tch::set_num_threads(2);
    let seed = fresh_seed();
    let dir = Scratch::new("train-gpt-det");
    let config =
        TrainConfig { seed, steps: 6, warmup_steps: 2, batch_size: 4, learning_rate: 3e-3, ..Default::default() };
    let tokens = random_tokens(seed, 1000, 97);
    for dropout in [0.0, 0.1] {
        let model = tiny(dropout);
        let run = |steps: usize| {
            let mut trainer = Trainer::new(&model, config.clone(), Device::Cpu).unwrap();
            let losses: Vec<f64> = (0..steps).map(|_| trainer.train_on(&tokens).unwrap().loss).collect();
            (trainer, losses)
        };
        let (a, losses_a) = run(5);
        let (b, losses_b) = run(5);
        assert_eq!(losses_a, losses_b);
        assert_eq!(weights_bytes(&a, &dir, "a"), weights_bytes(&b, &dir, "b"), "dropout {dropout}");

        let (straight, losses) = run(6);
        let (half, _) = run(3);
        let state = dir.join("state");
        half.save_state(&state).unwrap();
        drop(half);
        let mut resumed = Trainer::load_state(&state, Device::Cpu).unwrap();
        assert_eq!(resumed.step(), 3);
        let resumed_losses: Vec<f64> = (0..3).map(|_| resumed.train_on(&tokens).unwrap().loss).collect();
        assert_eq!(&losses[3..], &resumed_losses[..], "dropout {dropout}");
        assert!(resumed.finished());
        assert_eq!(weights_bytes(&straight, &dir, "straight"), weights_bytes(&resumed, &dir, "resumed"));
        // Saving the resumed state again gives the same optimizer bytes as the straight run's.
        straight.save_state(&dir.join("s1")).unwrap();
        resumed.save_state(&dir.join("s2")).unwrap();
        for file in ["optimizer.safetensors", "trainer.json", "model.safetensors"] {
            assert_eq!(
                std::fs::read(dir.join("s1").join(file)).unwrap(),
                std::fs::read(dir.join("s2").join(file)).unwrap(),
                "{file}"
            );
        }
        eprintln!("dropout {dropout}: 5-step runs identical; 6 straight == 3 + resume + 3 (losses {losses:?})");
    }
}

#[test]
fn loss_falls_on_a_repeating_sequence() {
    tch::set_num_threads(1);
    let seed = fresh_seed();
    let pattern = random_tokens(seed, 11, 97);
    let tokens: Vec<u32> = (0..2000).map(|i| pattern[i % 11]).collect();
    let validation: Vec<u32> = (5..600).map(|i| pattern[i % 11]).collect();
    let config = TrainConfig {
        seed,
        steps: 40,
        warmup_steps: 5,
        batch_size: 8,
        learning_rate: 1e-2,
        min_lr: 1e-3,
        eval_every: 20,
        eval_batches: 2,
        ..Default::default()
    };
    let mut trainer = Trainer::new(&tiny(0.0), config, Device::Cpu).unwrap();
    let before = trainer.eval_loss(&validation).unwrap();
    let mut evals = Vec::new();
    let mut last = None;
    while !trainer.finished() {
        last = Some(trainer.train_on(&tokens).unwrap());
        if trainer.eval_due() {
            evals.push((trainer.step(), trainer.eval_loss(&validation).unwrap()));
        }
    }
    eprintln!("validation loss {before:.3} -> {evals:?}; last step {last:?}");
    assert!(before > 4.0, "{before}");
    assert_eq!(evals.iter().map(|e| e.0).collect::<Vec<_>>(), vec![20, 40]);
    assert!(evals[1].1 < 0.5, "{evals:?}");
}

#[test]
fn bad_configs_and_tokens_get_clear_messages() {
    let bad = GptConfig { n_embd: 50, n_head: 3, ..tiny(0.0) };
    let message = Trainer::new(&bad, TrainConfig::default(), Device::Cpu).err().unwrap().to_string();
    assert!(message.contains("`n_embd` (50) is not divisible by `n_head` (3)"), "{message}");
    assert!(message.contains("set n_embd to a multiple of 3"), "{message}");

    let mut trainer = Trainer::new(&tiny(0.0), TrainConfig::default(), Device::Cpu).unwrap();
    let message = trainer.train_on(&[1, 2, 3]).err().unwrap().to_string();
    assert!(message.contains("fewer than context_length + 1 (17)"), "{message}");
    let message = trainer.train_on(&[200; 40]).err().unwrap().to_string();
    assert!(message.contains("id 200") && message.contains("vocab_size 97"), "{message}");
    let message =
        Trainer::load_state(std::path::Path::new("/nonexistent/state"), Device::Cpu).err().unwrap().to_string();
    assert!(message.contains("/nonexistent/state/trainer.json"), "{message}");
}
