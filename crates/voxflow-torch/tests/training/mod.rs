//! Shared by the training tests: the corpus stage's script and the output
//! digests of a stored result.

use std::path::{Path, PathBuf};

use crate::common::Scratch;

/// Writes the corpus script: documents from a random Markov chain over a small vocabulary, a
/// word-level tokenizer.json (Python `tokenizers`), train and valid token
/// tables as corpus.text writes them (document int32, id uint32, each
/// document ended by <|endoftext|>).
pub fn corpus_script(dir: &Scratch, seed: u64) -> PathBuf {
    dir.write(
        "make_corpus.py",
        &format!(
            r#"
import sys, random
import pyarrow as pa, pyarrow.parquet as pq
from tokenizers import Tokenizer, models, pre_tokenizers
out, n_docs = sys.argv[1], int(sys.argv[2])
rng = random.Random({seed})
words = "the a dog cat sees runs big small red blue house tree near".split()
# A Markov chain in which each word has two successors: learnable (entropy ln 2).
follow = {{w: rng.sample(words, 2) for w in words}}
def doc():
    w, out = rng.choice(words), []
    for _ in range(rng.randint(20, 60)):
        out.append(w)
        w = rng.choice(follow[w])
    return " ".join(out)
docs = [doc() for _ in range(n_docs)]
vocab = {{"<|endoftext|>": 0, "[UNK]": 1}}
for w in words:
    vocab[w] = len(vocab)
tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
tok.save(f"{{out}}/tokenizer.json")
def table(ds):
    doc, ids = [], []
    for i, d in enumerate(ds):
        e = tok.encode(d).ids + [0]
        doc += [i] * len(e)
        ids += e
    return pa.table({{"document": pa.array(doc, pa.int32()), "id": pa.array(ids, pa.uint32())}})
cut = max(1, n_docs // 10)
pq.write_table(table(docs[cut:]), f"{{out}}/train.parquet")
pq.write_table(table(docs[:cut]), f"{{out}}/valid.parquet")
"#
        ),
    )
}

/// Output name -> digest of the stage `name` in a run's JSON summary's store.
pub fn output_digests(store: &Path, key: &str) -> Vec<(String, String)> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("objects").join(key).join("manifest.json")).unwrap()).unwrap();
    manifest["outputs"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v["digest"].to_string())).collect()
}
