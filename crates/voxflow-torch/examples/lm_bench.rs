//! Feature-extraction throughput of `features.lm` (tokens of text per second)
//! against one forward pass per word (LITcoder's way, batch size one) and
//! the floor (the whole text in back-to-back chunks of the model's length,
//! one batched pass). benches/lm_bench.sh runs it for MiniLM and a GPT
//! checkpoint on the CPU; scripts/gpu-check on CUDA.
//!
//! ```text
//! cargo run --release --example lm_bench -- --model models/all-MiniLM-L6-v2 \
//!     --words 2000 --lookback 64 --context fullcontext --device cpu
//! ```
//! Options: `--layer 6` (the deepest layer computed), `--per-word-words 300` (the per-word way runs on
//! the first N words only: it is slow; its rate is per token of those words),
//! `--batch-tokens N` (default as features.lm: 2048 on the CPU, 16384 on CUDA), `--threads N`. The last line is JSON for scripts.

use std::path::PathBuf;
use std::time::Instant;

use rand::seq::IndexedRandom;
use rand::SeedableRng;
use voxflow::lm::windows::ContextMode;
use voxflow_torch::lm::extract::{extract_story, floor_pass, ExtractOptions, Pool, Strategy};
use voxflow_torch::lm::model::LanguageModel;

const WORDS: &[&str] = &[
    "the",
    "a",
    "and",
    "she",
    "he",
    "they",
    "walked",
    "into",
    "room",
    "house",
    "said",
    "never",
    "again",
    "quickly",
    "river",
    "morning",
    "light",
    "dark",
    "of",
    "to",
    "was",
    "were",
    "that",
    "it",
    "don't",
    "it's",
    "well",
    "okay",
    "yesterday",
    "Brooklyn",
    "unbelievably",
    "o'clock",
    "yes",
    "maybe",
    "forty",
    "I",
    "you",
    "we",
    "because",
    "through",
    "window",
    "remember",
    "mother",
    "called",
    "told",
    "story",
    "about",
    "old",
    "city",
    "summer",
];

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // Before any libtorch call: loads libtorch's CUDA backend.
    voxflow_torch::device::init_torch();
    let args: Vec<String> = std::env::args().collect();
    let model_dir: PathBuf = arg(&args, "--model", PathBuf::from("models/all-MiniLM-L6-v2"));
    let n_words: usize = arg(&args, "--words", 2000);
    let per_word_words: usize = arg(&args, "--per-word-words", 300);
    let lookback: usize = arg(&args, "--lookback", 64);
    let context: String = arg(&args, "--context", "fullcontext".to_string());
    let device: String = arg(&args, "--device", "cpu".to_string());
    let layer: usize = arg(&args, "--layer", 6);
    let batch_tokens: usize = arg(&args, "--batch-tokens", if device == "cpu" { 2048 } else { 16384 });
    let threads: i32 = arg(&args, "--threads", 0);
    if threads > 0 {
        tch::set_num_threads(threads);
    }
    let device = match device.as_str() {
        "cpu" => tch::Device::Cpu,
        other => tch::Device::Cuda(other.strip_prefix("cuda:").and_then(|i| i.parse().ok()).unwrap_or(0)),
    };
    let model = LanguageModel::load(&model_dir, device).unwrap_or_else(|e| panic!("{e}"));
    let layer = layer.min(model.config.layers);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let text: Vec<&str> = (0..n_words).map(|_| *WORDS.choose(&mut rng).unwrap()).collect();
    let story = model.tokenize_words(&text).unwrap();
    let prefix = model.tokenize_words(&text[..per_word_words.min(n_words)]).unwrap();
    let options = |strategy| ExtractOptions {
        layers: vec![layer],
        mode: ContextMode::parse(&context).expect("context: fullcontext, nocontext or halfcontext"),
        lookback,
        pool: Pool::Last,
        batch_tokens,
        strategy,
    };
    let sync = || {
        if let tch::Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    // Warm-up (kernels, allocator).
    let _ = extract_story(&model, &prefix, &options(Strategy::Shared), |_, _| ()).unwrap();
    floor_pass(&model, &story.ids, &[layer]);
    sync();

    let time = |f: &mut dyn FnMut() -> usize| {
        let started = Instant::now();
        let processed = f();
        sync();
        (started.elapsed().as_secs_f64(), processed)
    };
    let (floor_s, floor_processed) = time(&mut || floor_pass(&model, &story.ids, &[layer]));
    let (shared_s, shared_processed) =
        time(&mut || extract_story(&model, &story, &options(Strategy::Shared), |_, _| ()).unwrap().tokens_processed);
    let (per_word_s, per_word_processed) =
        time(&mut || extract_story(&model, &prefix, &options(Strategy::PerWord), |_, _| ()).unwrap().tokens_processed);
    let rate = |tokens: usize, s: f64| tokens as f64 / s;
    let floor = rate(story.ids.len(), floor_s);
    let shared = rate(story.ids.len(), shared_s);
    let per_word = rate(prefix.ids.len(), per_word_s);
    println!(
        "model {} ({:?}, {} layers, hidden {}), device {device:?}, {} words = {} tokens, context {context}, lookback {lookback}, layer {layer}",
        model_dir.display(),
        model.config.arch,
        model.config.layers,
        model.config.hidden,
        n_words,
        story.ids.len()
    );
    println!("{:<28} {:>12} {:>12} {:>16}", "way", "seconds", "tokens/s", "tokens processed");
    println!("{:<28} {:>12.3} {:>12.0} {:>16}", "floor (one batched pass)", floor_s, floor, floor_processed);
    println!("{:<28} {:>12.3} {:>12.0} {:>16}", "voxflow features.lm", shared_s, shared, shared_processed);
    println!(
        "{:<28} {:>12.3} {:>12.0} {:>16}",
        format!("one pass per word ({} w)", prefix.spans.len()),
        per_word_s,
        per_word,
        per_word_processed
    );
    println!("voxflow / per-word: {:.1}x faster; floor / voxflow: {:.2}x", shared / per_word, floor / shared);
    println!(
        "{}",
        serde_json::json!({
            "arch": format!("{:?}", model.config.arch), "device": format!("{device:?}"), "tokens": story.ids.len(),
            "context": context, "lookback": lookback,
            "floor_tokens_per_s": floor, "voxflow_tokens_per_s": shared, "per_word_tokens_per_s": per_word,
            "speedup_vs_per_word": shared / per_word, "floor_over_voxflow": floor / shared,
        })
    );
}
