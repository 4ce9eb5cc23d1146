//! `corpus.grammar` through the binary: its outputs open in Python with one
//! call each, the token table and the text agree, the fact probes say
//! truly which sentences are in the corpus, reruns write the same bytes,
//! and bad params fail validation naming the stage.

mod common;

use common::*;

fn pipeline(seed: u64, extra: &str) -> String {
    format!(
        "name: corpus\nstages:\n  corpus:\n    kind: corpus.grammar\n    params: {{seed: {seed}, documents: 6, sentences_per_document: 12{extra}}}\n"
    )
}

#[test]
fn the_token_table_the_text_and_the_fact_probes_agree() {
    let scratch = Scratch::new("corpus-grammar");
    let seed = fresh_seed();
    let file = scratch.write(
        "corpus.yaml",
        &pipeline(seed, ", facts: {entities: 4, places: 3, repetitions: 2, held_out_fraction: 0.5}"),
    );
    let file = file.to_str().unwrap();
    let run = voxflow_json(&["run", file, "--format", "json"], 0);
    assert_eq!(stage(&run, "corpus")["status"], "ran");
    let shown = voxflow_json(&["show", file, "corpus", "--format", "json"], 0);
    let outputs = &shown["stages"][0]["outputs"];
    let directory = shown["stages"][0]["directory"].as_str().expect("directory");
    let path = |name: &str| {
        let file = outputs[name]["file"].as_str().unwrap_or_else(|| panic!("no output {name}: {shown}"));
        format!("{directory}/{file}")
    };
    let (text, tokens, facts) = (path("text"), path("tokens"), path("facts"));

    // Python reads each table with one call and checks it against the text.
    let report = run_python(
        r#"
import sys, pyarrow.parquet as pq
text, tokens, facts = sys.argv[1:4]
t = pq.read_table(tokens).to_pylist()
lines = [l for l in open(text).read().split("\n")]
sentences = {}
for row in t:
    sentences.setdefault((row["document"], row["sentence"]), []).append((row["position"], row["word"]))
joined = [" ".join(w for _, w in sorted(words)) for _, words in sorted(sentences.items())]
non_blank = [l for l in lines if l]
assert joined == non_blank, (joined[:3], non_blank[:3])
documents = len(set(row["document"] for row in t))
assert lines.count("") == documents, (lines.count(""), documents)
cats = sorted(set(row["category"] for row in t))
numbers = sorted(set(str(row["number"]) for row in t))
f = pq.read_table(facts).to_pylist()
corpus = set(non_blank)
wrong = [r for r in f if ((r["prompt"] + " " + r["answer"] + " .") in corpus) != r["in_training"]]
assert not wrong, wrong
print(len(t), documents, ",".join(cats), ",".join(numbers), len(f), sum(r["in_training"] for r in f))
"#,
        &[&text, &tokens, &facts],
    );
    let fields: Vec<&str> = report.split_whitespace().collect();
    assert_eq!(fields[1], "6", "{report}");
    for category in ["determiner", "noun_animate", "verb_intransitive", "punctuation"] {
        assert!(fields[2].split(',').any(|c| c == category), "no {category} in {report}");
    }
    assert_eq!(fields[3], "None,plural,singular", "{report}");
    let (probes, in_training): (usize, usize) = (fields[4].parse().unwrap(), fields[5].parse().unwrap());
    assert!(probes > 0 && in_training > 0 && in_training < probes, "{report}");

    // A forced rerun writes the same bytes: the key's outputs are a function of the params.
    let digest = |document: &serde_json::Value| document["stages"][0]["outputs"].to_string();
    let before = digest(&shown);
    let rerun = voxflow_json(&["run", file, "--force=corpus", "--format", "json"], 0);
    assert_eq!(stage(&rerun, "corpus")["status"], "ran");
    let after = digest(&voxflow_json(&["show", file, "corpus", "--format", "json"], 0));
    assert_eq!(before, after);
}

#[test]
fn bad_corpus_params_fail_validation_naming_the_stage_and_param() {
    let scratch = Scratch::new("corpus-bad");
    let file = scratch.write("corpus.yaml", &pipeline(1, ", p_plural: 1.5, facts: {entities: 0}"));
    let output = voxflow(&["validate", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("stage `corpus`") && message.contains("p_plural"), "{message}");
    let file = scratch.write("typo.yaml", &pipeline(1, ", sentence_per_document: 3"));
    let output = voxflow(&["validate", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("did you mean `sentences_per_document`?"), "{}", stderr(&output));
}
