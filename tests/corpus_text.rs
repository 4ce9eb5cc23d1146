//! `corpus.text` through the binary, on fresh random documents each run:
//! the token ids are what the Python `tokenizers` library gives for the
//! written tokenizer.json (and the word vocabulary and the BPE are what
//! Python builds from the train documents), the split is a partition by
//! document of the size asked for, reruns write the same bytes, JSONL input
//! and a user's tokenizer.json work, bad input fails naming the stage, the
//! param and the fix with nothing cached, and corpus.grammar's text feeds it.

mod common;

use std::collections::BTreeSet;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use common::*;

/// Checks one corpus.text result against Python's tokenizers: every
/// document's ids are `tokenizer.encode(text, add_special_tokens=False)`
/// then `<|endoftext|>`, documents in order, splits disjoint and covering
/// the documents (a JSON list of texts), metadata and column types right.
/// With `word`, the vocabulary is rebuilt from the train documents; with
/// `bpe N`, a BPE is trained in Python with the same settings. Prints the
/// validation documents, the number of `[UNK]` ids in train and in valid.
const CHECK: &str = r#"
import sys, json, re, collections, pyarrow.parquet as pq
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
docs_path, train_path, valid_path, tok_path, reference_path, kind, requested = sys.argv[1:8]
docs = json.load(open(docs_path))
tok = Tokenizer.from_file(tok_path)
reference = Tokenizer.from_file(reference_path)
reference.no_truncation()
reference.no_padding()
eot = tok.token_to_id("<|endoftext|>")
vocab = tok.get_vocab(with_added_tokens=True)
splits, unknown = {}, {}
for name, path in (("train", train_path), ("valid", valid_path)):
    table = pq.read_table(path)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    assert int(meta["eot_id"]) == eot, meta
    assert int(meta["vocab_size"]) == max(vocab.values()) + 1, (meta, len(vocab))
    assert [str(f.type) for f in table.schema] == ["int32", "uint32"], table.schema
    assert table.schema.names == ["document", "id"], table.schema
    rows = table.to_pydict()
    by_document = {}
    for d, i in zip(rows["document"], rows["id"]):
        by_document.setdefault(d, []).append(i)
    order = list(by_document)
    assert order == sorted(order), order
    changes = sum(a != b for a, b in zip(rows["document"], rows["document"][1:]))
    assert changes == len(order) - 1, "a document's rows are not contiguous"
    for d, ids in by_document.items():
        assert ids[-1] == eot and eot not in ids[:-1], (d, ids)
        expected = reference.encode(docs[d], add_special_tokens=False).ids
        assert ids[:-1] == expected, (name, d, docs[d][:80], ids[:12], expected[:12])
    splits[name] = order
    unk = tok.token_to_id("[UNK]")
    unknown[name] = sum(i == unk for i in rows["id"]) if unk is not None else 0
train, valid = splits["train"], splits["valid"]
assert not set(train) & set(valid)
assert sorted(train + valid) == list(range(len(docs))), (len(train), len(valid), len(docs))
saved = json.load(open(tok_path))
if kind == "word":
    counts = collections.Counter(w for d in train for w in re.findall(r"\w+|[^\w\s]+", docs[d]))
    expected = ["<|endoftext|>", "[UNK]"] + sorted(counts, key=lambda w: (-counts[w], w))
    assert [w for w, _ in sorted(vocab.items(), key=lambda kv: kv[1])] == expected
    assert saved["model"]["type"] == "WordLevel" and saved["model"]["unk_token"] == "[UNK]", saved["model"]["type"]
    assert saved["pre_tokenizer"]["type"] == "Whitespace", saved["pre_tokenizer"]
    unseen = sum(w not in counts for d in valid for w in re.findall(r"\w+|[^\w\s]+", docs[d]))
    assert unknown["valid"] == unseen, (unknown["valid"], unseen)
if kind == "bpe":
    assert saved["pre_tokenizer"]["type"] == "ByteLevel" and not saved["pre_tokenizer"]["add_prefix_space"]
    assert saved["decoder"]["type"] == "ByteLevel", saved["decoder"]
    assert vocab["<|endoftext|>"] == 0 and len(vocab) == int(requested), (len(vocab), requested)
    python_bpe = Tokenizer(models.BPE())
    python_bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=int(requested), min_frequency=0, show_progress=False,
        special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    python_bpe.train_from_iterator([docs[d] for d in train], trainer=trainer)
    assert python_bpe.get_vocab() == vocab, "the vocabulary differs from Python's BPE"
    assert json.loads(python_bpe.to_str())["model"]["merges"] == saved["model"]["merges"]
    assert tok.decode(tok.encode(docs[valid[0]]).ids) == docs[valid[0]]
print(json.dumps({"valid": valid, "unknown_train": unknown["train"], "unknown_valid": unknown["valid"]}))
"#;

/// Random documents: sentences of words drawn unevenly from a random
/// lexicon (some capitalised, some with punctuation, a few not ASCII), one
/// to four lines each.
fn random_documents(rng: &mut ChaCha8Rng, n: usize) -> Vec<String> {
    let letters: Vec<char> = "abcdefghijklmnopqrstuvwxyzéü".chars().collect();
    let lexicon: Vec<String> =
        (0..80).map(|_| (0..rng.random_range(1..8)).map(|_| *letters.choose(rng).unwrap()).collect()).collect();
    let word = |rng: &mut ChaCha8Rng| {
        // Squaring a uniform draw makes the first words the frequent ones.
        let u: f64 = rng.random();
        let mut word = lexicon[((u * u) * lexicon.len() as f64) as usize].clone();
        match rng.random_range(0..12) {
            0 => {
                let mut chars = word.chars();
                let first = chars.next().unwrap();
                word = first.to_uppercase().chain(chars).collect();
            }
            1 => word.push(','),
            2 => word.push_str("'s"),
            _ => {}
        }
        word
    };
    (0..n)
        .map(|_| {
            let lines: Vec<String> = (0..rng.random_range(1..5))
                .map(|_| {
                    let words: Vec<String> = (0..rng.random_range(2..14)).map(|_| word(rng)).collect();
                    format!("{} .", words.join(" "))
                })
                .collect();
            lines.join("\n")
        })
        .collect()
}

/// Writes the documents into .txt files, separated by one to three blank
/// (or whitespace-only) lines; returns the files' names.
fn write_text_files(scratch: &Scratch, rng: &mut ChaCha8Rng, documents: &[String]) -> Vec<String> {
    let cut = rng.random_range(1..documents.len());
    let mut names = Vec::new();
    for (i, part) in [&documents[..cut], &documents[cut..]].into_iter().enumerate() {
        let mut text = String::new();
        for document in part {
            text.push_str(document);
            text.push('\n');
            for _ in 0..rng.random_range(1..4) {
                text.push_str(if rng.random_bool(0.3) { "  \n" } else { "\n" });
            }
        }
        let name = format!("corpus/part{i}.txt");
        scratch.write(&name, &text);
        names.push(name);
    }
    names
}

/// The directory and outputs of stage `name`, from `voxflow show`.
fn output_paths(file: &str, name: &str) -> (serde_json::Value, impl Fn(&str) -> String) {
    let shown = voxflow_json(&["show", file, name, "--format", "json"], 0);
    let outputs = shown["stages"][0]["outputs"].clone();
    let directory = shown["stages"][0]["directory"].as_str().expect("directory").to_string();
    let listed = outputs.clone();
    let path = move |output: &str| {
        let file = listed[output]["file"].as_str().unwrap_or_else(|| panic!("no output {output}: {listed}"));
        format!("{directory}/{file}")
    };
    (outputs, path)
}

/// Runs [`CHECK`] on stage `name`; returns its JSON report.
fn check_with_python(
    file: &str,
    name: &str,
    documents: &std::path::Path,
    kind: &str,
    requested: usize,
    reference: Option<&str>,
) -> serde_json::Value {
    let (_, path) = output_paths(file, name);
    let tokenizer = path("tokenizer");
    let report = run_python(
        CHECK,
        &[
            documents.to_str().unwrap(),
            &path("train"),
            &path("valid"),
            &tokenizer,
            reference.unwrap_or(&tokenizer),
            kind,
            &requested.to_string(),
        ],
    );
    serde_json::from_str(report.trim()).unwrap_or_else(|e| panic!("{e}: {report}"))
}

fn valid_documents(report: &serde_json::Value) -> BTreeSet<u64> {
    report["valid"].as_array().expect("valid").iter().map(|d| d.as_u64().unwrap()).collect()
}

#[test]
fn word_and_bpe_ids_match_python_and_the_split_is_by_document() {
    let scratch = Scratch::new("corpus-text");
    let seed = fresh_seed();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = rng.random_range(30..60);
    let documents = random_documents(&mut rng, n);
    let files = write_text_files(&scratch, &mut rng, &documents);
    let documents_json = scratch.write("documents.json", &serde_json::to_string(&documents).unwrap());
    let fraction: f64 = format!("{:.3}", rng.random_range(0.1..0.4)).parse().unwrap();
    let split_seed = rng.random_range(0..1_000_000u64);
    let vocab_size = rng.random_range(300..360);
    let pipeline = |split_seed: u64| {
        format!(
            "name: corpus-text\nstages:\n  word:\n    kind: corpus.text\n    params: {{files: [{files}], tokenizer: word, valid_fraction: {fraction}, seed: {split_seed}}}\n  bpe:\n    kind: corpus.text\n    params: {{files: [{files}], tokenizer: bpe, vocab_size: {vocab_size}, valid_fraction: {fraction}, seed: {split_seed}}}\n",
            files = files.join(", ")
        )
    };
    let file = scratch.write("text.yaml", &pipeline(split_seed));
    let file = file.to_str().unwrap();
    let run = voxflow_json(&["run", file, "--format", "json"], 0);
    assert_eq!(
        (stage(&run, "word")["status"].as_str(), stage(&run, "bpe")["status"].as_str()),
        (Some("ran"), Some("ran"))
    );

    let word = check_with_python(file, "word", &documents_json, "word", 0, None);
    let bpe = check_with_python(file, "bpe", &documents_json, "bpe", vocab_size, None);
    let expected_valid = ((fraction * n as f64).round() as usize).max(1);
    assert_eq!(valid_documents(&word).len(), expected_valid, "{word}");
    assert_eq!(valid_documents(&word), valid_documents(&bpe), "one seed, one split whatever the tokenizer");
    assert_eq!(word["unknown_train"], 0, "a train word is unknown: {word}");

    // A forced rerun writes the same bytes.
    let digests = |name: &str| output_paths(file, name).0.to_string();
    let before = (digests("word"), digests("bpe"));
    let rerun = voxflow_json(&["run", file, "--format", "json", "--force"], 0);
    assert_eq!(stage(&rerun, "bpe")["status"], "ran");
    assert_eq!(before, (digests("word"), digests("bpe")));

    // Another seed, another split of the same size.
    let other = scratch.write("other.yaml", &pipeline(split_seed + 1));
    let other = other.to_str().unwrap();
    voxflow_json(&["run", other, "--format", "json", "--stage", "word"], 0);
    let reseeded = check_with_python(other, "word", &documents_json, "word", 0, None);
    assert_eq!(valid_documents(&reseeded).len(), expected_valid);
    assert_ne!(valid_documents(&reseeded), valid_documents(&word), "seed {split_seed} and the next split alike");
}

#[test]
fn jsonl_documents_with_a_users_tokenizer() {
    let scratch = Scratch::new("corpus-text-jsonl");
    let seed = fresh_seed();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = rng.random_range(12..30);
    let documents = random_documents(&mut rng, n);
    let mut lines = String::new();
    for (i, document) in documents.iter().enumerate() {
        lines.push_str(&serde_json::json!({"id": i, "text": document, "source": "test"}).to_string());
        lines.push('\n');
        if rng.random_bool(0.2) {
            lines.push('\n');
        }
    }
    scratch.write("docs.jsonl", &lines);
    // The user's tokenizer: a lower-casing BPE with an unknown token, a
    // [CLS] template and truncation to 5 tokens, none of which may apply.
    let other_text = random_documents(&mut rng, 20).join("\n\n");
    scratch.write("other.txt", &other_text);
    let user = scratch.join("tok/tokenizer.json");
    std::fs::create_dir_all(user.parent().unwrap()).unwrap();
    let write_user_tokenizer = |vocab_size: usize| {
        run_python(
            r#"
import sys
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
text, path, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
tok = Tokenizer(models.BPE(unk_token="[UNK]"))
tok.normalizer = normalizers.Lowercase()
tok.pre_tokenizer = pre_tokenizers.Whitespace()
trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=["[UNK]", "[CLS]", "<|endoftext|>"], show_progress=False)
tok.train_from_iterator(open(text).read().split("\n\n"), trainer=trainer)
tok.post_processor = processors.TemplateProcessing(single="[CLS] $A", special_tokens=[("[CLS]", 1)])
tok.enable_truncation(max_length=5)
tok.save(path)
"#,
            &[scratch.join("other.txt").to_str().unwrap(), user.to_str().unwrap(), &vocab_size.to_string()],
        )
    };
    write_user_tokenizer(120);
    let split_seed = rng.random_range(0..1000u64);
    let file = scratch.write(
        "jsonl.yaml",
        &format!("name: jsonl\nstages:\n  text:\n    kind: corpus.text\n    params: {{files: [docs.jsonl], tokenizer: {{path: tok/tokenizer.json}}, valid_fraction: 0.25, seed: {split_seed}}}\n"),
    );
    let file = file.to_str().unwrap();
    voxflow_json(&["run", file, "--format", "json"], 0);

    // Python reads the documents from the .jsonl itself.
    let documents_json = scratch.write(
        "documents.json",
        &run_python(
            "import sys, json\nprint(json.dumps([json.loads(l)['text'] for l in open(sys.argv[1]) if l.strip()]))",
            &[scratch.join("docs.jsonl").to_str().unwrap()],
        ),
    );
    let report = check_with_python(file, "text", &documents_json, "user", 0, Some(user.to_str().unwrap()));
    assert_eq!(valid_documents(&report).len(), ((0.25 * documents.len() as f64).round() as usize).max(1));
    let (_, path) = output_paths(file, "text");
    assert_eq!(
        std::fs::read(path("tokenizer")).unwrap(),
        std::fs::read(&user).unwrap(),
        "the tokenizer is not the user's"
    );

    // The tokenizer is keyed by content: another one makes the stage dirty.
    assert_eq!(statuses(&voxflow_json(&["plan", file, "--format", "json"], 0))["text"], "fresh");
    write_user_tokenizer(150);
    assert_eq!(statuses(&voxflow_json(&["plan", file, "--format", "json"], 0))["text"], "dirty");
}

#[test]
fn bad_input_fails_naming_the_stage_the_param_and_the_fix() {
    let scratch = Scratch::new("corpus-text-bad");
    scratch.write("one.txt", "a single document\nof two lines\n\n\n");
    scratch.write("two.txt", "one document\n\nand another\n");
    scratch.write("broken.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": ");
    scratch.write(
        "no_eot.json",
        r#"{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
            "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
            "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "one": 1}, "unk_token": "[UNK]"}}"#,
    );
    let objects = scratch.join(".voxflow/objects");
    let cached = || std::fs::read_dir(&objects).map(|entries| entries.count()).unwrap_or(0);

    // Problems validation sees: all reported at once, exit 2, nothing run.
    let file = scratch.write(
        "invalid.yaml",
        "name: bad\nstages:\n  small:\n    kind: corpus.text\n    params: {files: [two.txt], tokenizer: bpe, vocab_size: 200}\n  nothing:\n    kind: corpus.text\n    params: {tokenizer: word}\n  csv:\n    kind: corpus.text\n    params: {files: [two.csv]}\n  sized:\n    kind: corpus.text\n    params: {files: [two.txt], tokenizer: word, vocab_size: 500}\n",
    );
    scratch.write("two.csv", "text\nx\n");
    let file = file.to_str().unwrap();
    for command in ["validate", "run"] {
        let output = voxflow(&[command, file]);
        assert_eq!(output.status.code(), Some(2), "{command}: {}", stderr(&output));
        let message = stderr(&output);
        for expected in [
            "stage `small`: param `vocab_size`: vocab_size must exceed 257",
            "vocab_size: 1024",
            "stage `nothing`: kind `corpus.text` needs `files` or an input named `text`",
            "inputs: {text: <corpus.grammar stage>.text}",
            "stage `csv`: param `files.0`: `two.csv` is neither a .txt nor a .jsonl file",
            "stage `sized`: param `vocab_size`: vocab_size applies only to `tokenizer: bpe`",
        ] {
            assert!(message.contains(expected), "no `{expected}` in:\n{message}");
        }
    }
    assert_eq!(cached(), 0, "a pipeline that fails validation cached something");

    // Problems the stage finds: exit 1, the error and hint in the outcome, nothing cached.
    let file = scratch.write(
        "failing.yaml",
        "name: bad\nstages:\n  few:\n    kind: corpus.text\n    params: {files: [one.txt]}\n  broken:\n    kind: corpus.text\n    params: {files: [two.txt], tokenizer: {path: broken.json}}\n  no_eot:\n    kind: corpus.text\n    params: {files: [two.txt], tokenizer: {path: no_eot.json}}\n",
    );
    let file = file.to_str().unwrap();
    let run = voxflow_json(&["run", file, "--format", "json"], 1);
    for (name, error, hint) in [
        (
            "few",
            "param `files` (one.txt) holds 1 document: a train/validation split needs at least 2",
            "a blank line ends a document",
        ),
        ("broken", "param `tokenizer.path`: ", "or use `tokenizer: bpe` or `tokenizer: word`"),
        ("no_eot", "param `tokenizer.path`: the tokenizer has no `<|endoftext|>` token", "add_special_tokens"),
    ] {
        let outcome = stage(&run, name);
        assert_eq!(outcome["status"], "failed", "{outcome}");
        let (message, advice) =
            (outcome["error"].as_str().unwrap_or_default(), outcome["hint"].as_str().unwrap_or_default());
        assert!(message.contains(error) && advice.contains(hint), "{name}: {message} / {advice}");
    }
    assert!(stage(&run, "broken")["error"].as_str().unwrap().contains("broken.json"), "{run}");
    let plan = statuses(&voxflow_json(&["plan", file, "--format", "json"], 0));
    for name in ["few", "broken", "no_eot"] {
        assert_eq!(plan[name], "dirty", "{name} looks cached after failing");
    }
    assert_eq!(cached(), 0);
}

#[test]
fn corpus_grammar_text_through_the_word_tokenizer_has_no_unknown_train_word() {
    let scratch = Scratch::new("corpus-text-grammar");
    let seed = fresh_seed();
    let file = scratch.write(
        "grammar.yaml",
        &format!(
            "name: grammar-text\nstages:\n  corpus:\n    kind: corpus.grammar\n    params: {{seed: {seed}, documents: 8, sentences_per_document: 10}}\n  tokens:\n    kind: corpus.text\n    inputs: {{text: corpus.text}}\n    params: {{tokenizer: word, valid_fraction: 0.25, seed: {}}}\n",
            seed % 1000
        ),
    );
    let file = file.to_str().unwrap();
    let run = voxflow_json(&["run", file, "--format", "json"], 0);
    assert_eq!(stage(&run, "tokens")["status"], "ran", "{run}");
    let (_, grammar) = output_paths(file, "corpus");
    let (_, text) = output_paths(file, "tokens");
    // Each train document's tokens are the words of corpus.grammar's token
    // table for that document, none of them [UNK].
    let report = run_python(
        r#"
import sys, re, pyarrow.parquet as pq
from tokenizers import Tokenizer
words_path, train_path, valid_path, tok_path = sys.argv[1:5]
tok = Tokenizer.from_file(tok_path)
unk, eot = tok.token_to_id("[UNK]"), tok.token_to_id("<|endoftext|>")
words = {}
for row in pq.read_table(words_path).to_pylist():
    words.setdefault(row["document"], []).extend(re.findall(r"\w+|[^\w\s]+", row["word"]))
seen = []
for name, path in (("train", train_path), ("valid", valid_path)):
    ids = {}
    for row in pq.read_table(path).to_pylist():
        ids.setdefault(row["document"], []).append(row["id"])
    for d, got in ids.items():
        assert got[-1] == eot
        assert [tok.id_to_token(i) for i in got[:-1]] == words[d] or name == "valid", (d, got[:10])
        assert name == "valid" or unk not in got, (d, "[UNK] in train")
    seen += list(ids)
assert sorted(seen) == sorted(words), (sorted(seen), sorted(words))
print(len(seen))
"#,
        &[&grammar("tokens"), &text("train"), &text("valid"), &text("tokenizer")],
    );
    assert_eq!(report.trim(), "8");
}
