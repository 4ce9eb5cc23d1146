//! `corpus.text`: a corpus a user brings, split into train and validation
//! by document and tokenised, for training a language model (`train.gpt`).
//!
//! Documents come from `files` or from a `text` input (the `text` output of
//! corpus.grammar), never both. In a .txt file (and the `text` input) a
//! document is a run of non-blank lines, kept with its line breaks;
//! documents are separated by one or more blank lines. In a .jsonl file a
//! document is the `text` field of one non-blank line. Documents are
//! numbered in input order across `files`.
//!
//! The split shuffles the document numbers with `seed` (ChaCha8): the first
//! max(1, round(valid_fraction * n)) go to validation, the rest to train;
//! both splits keep the input order.
//!
//! Tokenizers (`tokenizer`): `word` (WordLevel: `<|endoftext|>` = 0,
//! `[UNK]` = 1, then every word of the train documents as the Whitespace
//! pre-tokenizer splits them, most frequent first, ties in byte order),
//! `bpe` (byte-level BPE trained on the train documents up to
//! `vocab_size` tokens: `<|endoftext|>` = 0, the 256 byte tokens, merges;
//! GPT-2's ByteLevel pre-tokenizer and decoder) or `{path: tokenizer.json}`
//! (the user's, hashed by content, written out unchanged; it must know
//! `<|endoftext|>`). Documents are encoded without the tokenizer's
//! truncation, padding or post-processor template (`add_special_tokens`
//! false), as Python's `tokenizer.encode(text, add_special_tokens=False)`.
//!
//! Outputs: `train` and `valid` (columns `document` int32, the document's
//! number, and `id` uint32; one row per token, documents in input order,
//! each followed by one `<|endoftext|>` row; schema metadata `vocab_size`,
//! one more than the largest id, and `eot_id`) and `tokenizer`
//! (tokenizer.json).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Int32Array, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::wordlevel::{WordLevel, WordLevelTrainer};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::{AddedToken, Tokenizer};

use crate::stage::{Kind, ParamError, StageContext, StageError};

/// The token that ends every document.
pub const END_OF_TEXT: &str = "<|endoftext|>";
/// The word tokenizer's unknown token.
pub const UNKNOWN: &str = "[UNK]";
/// `vocab_size` when `tokenizer: bpe` leaves it out.
pub const DEFAULT_VOCAB_SIZE: usize = 1024;
/// The byte-level BPE's tokens before any merge: 256 bytes and `<|endoftext|>`.
const BPE_BASE_TOKENS: usize = 256 + 1;
/// Documents per call to the tokenizer's batch encoder (one progress step).
const ENCODE_CHUNK: usize = 512;

/// The params as the kind sees them; read through [`RawParams`], which
/// fills `vocab_size` for `tokenizer: bpe` only, so that writing the
/// default does not change the key and a `vocab_size` given to another
/// tokenizer is reported instead of ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "RawParams")]
pub struct CorpusTextParams {
    /// .txt and .jsonl files, relative to the pipeline file; empty when the
    /// text comes from the `text` input.
    pub files: Vec<String>,
    pub valid_fraction: f64,
    pub seed: u64,
    pub tokenizer: TokenizerChoice,
    /// The BPE's vocabulary size, specials included: set for `bpe` (default
    /// [`DEFAULT_VOCAB_SIZE`]); for the others only when written (an error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<usize>,
}

/// Which tokenizer encodes the documents: `word`, `bpe` or
/// `{path: tokenizer.json}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerChoice {
    /// A word-level vocabulary of the train documents.
    Word,
    /// A byte-level BPE trained on the train documents.
    #[default]
    Bpe,
    /// The user's tokenizer.json, relative to the pipeline file.
    Path(String),
}

/// The params as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    #[serde(default)]
    files: Vec<String>,
    #[serde(default = "default_valid_fraction")]
    valid_fraction: f64,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    tokenizer: TokenizerChoice,
    #[serde(default)]
    vocab_size: Option<usize>,
}

fn default_valid_fraction() -> f64 {
    0.1
}

impl From<RawParams> for CorpusTextParams {
    fn from(raw: RawParams) -> CorpusTextParams {
        let vocab_size = match raw.tokenizer {
            TokenizerChoice::Bpe => Some(raw.vocab_size.unwrap_or(DEFAULT_VOCAB_SIZE)),
            TokenizerChoice::Word | TokenizerChoice::Path(_) => raw.vocab_size,
        };
        CorpusTextParams {
            files: raw.files,
            valid_fraction: raw.valid_fraction,
            seed: raw.seed,
            tokenizer: raw.tokenizer,
            vocab_size,
        }
    }
}

/// The file formats `files` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextFormat {
    /// Documents separated by blank lines.
    Plain,
    /// One JSON object per line, its `text` field.
    JsonLines,
}

impl TextFormat {
    fn of(path: &str) -> Option<TextFormat> {
        let extension = Path::new(path).extension()?.to_string_lossy().to_lowercase();
        match extension.as_str() {
            "txt" => Some(TextFormat::Plain),
            "jsonl" => Some(TextFormat::JsonLines),
            _ => None,
        }
    }
}

pub struct CorpusText;

impl Kind for CorpusText {
    type Params = CorpusTextParams;
    const NAME: &'static str = "corpus.text";
    // 2: provenance (stage, key, params) in the Parquet tables' metadata.
    const VERSION: u32 = 2;
    const SUMMARY: &'static str =
        "a text or JSONL corpus split into train/validation by document and tokenised (word, byte-level BPE or a tokenizer.json)";
    const OUTPUTS: &'static [&'static str] = &["train", "valid", "tokenizer"];

    fn input_problems(&self, params: &CorpusTextParams, roles: &[&str]) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let has_text = roles.contains(&"text");
        if params.files.is_empty() && !has_text {
            problems.push((
                "kind `corpus.text` needs `files` or an input named `text`".to_string(),
                "add `params: {files: [corpus.txt]}` (.txt or .jsonl, relative to the pipeline file), or `inputs: {text: <corpus.grammar stage>.text}`".to_string(),
            ));
        }
        if !params.files.is_empty() && has_text {
            problems.push((
                "kind `corpus.text` reads `files` or the `text` input, not both".to_string(),
                "remove `files` from the params, or the `text` input".to_string(),
            ));
        }
        for role in roles.iter().filter(|role| **role != "text") {
            problems.push((
                format!("kind `corpus.text` has no input role `{role}`: its one input is `text`"),
                format!("write `inputs: {{text: ...}}` instead of `{role}`"),
            ));
        }
        problems
    }

    fn file_params(&self, params: &CorpusTextParams) -> Vec<(String, String)> {
        let mut files: Vec<(String, String)> =
            params.files.iter().enumerate().map(|(i, path)| (format!("files.{i}"), path.clone())).collect();
        match &params.tokenizer {
            TokenizerChoice::Path(path) => files.push(("tokenizer.path".to_string(), path.clone())),
            TokenizerChoice::Word | TokenizerChoice::Bpe => {}
        }
        files
    }

    fn validate(&self, p: &CorpusTextParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        for (i, path) in p.files.iter().enumerate() {
            if TextFormat::of(path).is_none() {
                errors.push(
                    ParamError::new(&format!("files.{i}"), format!("`{path}` is neither a .txt nor a .jsonl file"))
                        .hint("give plain text (.txt: documents separated by blank lines) or JSON lines (.jsonl: one {\"text\": ...} per line)"),
                );
            }
        }
        if !(p.valid_fraction > 0.0 && p.valid_fraction < 1.0) {
            errors.push(
                ParamError::new(
                    "valid_fraction",
                    format!("valid_fraction must be between 0 and 1 (exclusive), found {}", p.valid_fraction),
                )
                .hint("e.g. `valid_fraction: 0.1` for one document in ten"),
            );
        }
        match (&p.tokenizer, p.vocab_size) {
            (TokenizerChoice::Bpe, Some(size)) if size <= BPE_BASE_TOKENS => errors.push(
                ParamError::new(
                    "vocab_size",
                    format!(
                        "vocab_size must exceed {BPE_BASE_TOKENS} (256 byte tokens and {END_OF_TEXT}), found {size}"
                    ),
                )
                .hint(format!("e.g. `vocab_size: {DEFAULT_VOCAB_SIZE}`")),
            ),
            (TokenizerChoice::Word | TokenizerChoice::Path(_), Some(_)) => errors.push(
                ParamError::new("vocab_size", "vocab_size applies only to `tokenizer: bpe`")
                    .hint("remove `vocab_size`, or write `tokenizer: bpe`"),
            ),
            _ => {}
        }
        errors
    }

    fn run(&self, params: &CorpusTextParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let corpus = read_corpus(params, ctx)?;
        let split = Split::choose(corpus.documents.len(), params.valid_fraction, params.seed)
            .map_err(|problem| problem.into_error(&corpus.source))?;
        ctx.check_cancelled()?;
        let train_texts: Vec<&str> = split.train.iter().map(|&d| corpus.documents[d].as_str()).collect();
        let (tokenizer, json) = match &params.tokenizer {
            TokenizerChoice::Word => {
                ctx.note(&format!("building a word vocabulary from {} documents", train_texts.len()));
                let tokenizer = word_tokenizer(&train_texts)?;
                let json = tokenizer_json(&tokenizer)?;
                (tokenizer, json)
            }
            TokenizerChoice::Bpe => {
                let vocab_size = params.vocab_size.unwrap_or(DEFAULT_VOCAB_SIZE);
                ctx.note(&format!(
                    "training a byte-level BPE ({vocab_size} tokens) on {} documents",
                    train_texts.len()
                ));
                let tokenizer = bpe_tokenizer(&train_texts, vocab_size)?;
                let trained = tokenizer.get_vocab_size(true);
                if trained < vocab_size {
                    ctx.warn(format!(
                        "the BPE has {trained} tokens, fewer than vocab_size {vocab_size}: the train documents have no more pairs to merge"
                    ));
                }
                let json = tokenizer_json(&tokenizer)?;
                (tokenizer, json)
            }
            TokenizerChoice::Path(path) => user_tokenizer(&ctx.resolve(path))?,
        };
        let end_of_text = tokenizer.token_to_id(END_OF_TEXT).ok_or_else(|| {
            StageError::failed(format!("param `tokenizer.path`: the tokenizer has no `{END_OF_TEXT}` token"))
                .with_hint(format!(
                    "add it as a special token (Python: `tokenizer.add_special_tokens([\"{END_OF_TEXT}\"])`, then `tokenizer.save(path)`), or use `tokenizer: bpe` or `tokenizer: word`"
                ))
        })?;
        let vocab_size = tokenizer.get_vocab(true).values().max().map_or(0, |&id| id as usize + 1);

        let mut encoder = Encoder { tokenizer: &tokenizer, end_of_text, done: 0, total: corpus.documents.len() as u64 };
        ctx.progress_unit("documents");
        let train = encoder.encode(&corpus.documents, &split.train, ctx)?;
        let valid = encoder.encode(&corpus.documents, &split.valid, ctx)?;

        let path = ctx.out_dir.join("tokenizer.json");
        std::fs::write(&path, &json).map_err(|e| StageError::failed(format!("{}: {e}", path.display())))?;
        ctx.add_file("tokenizer", "tokenizer.json");
        ctx.write_table("train", &train.table(vocab_size, end_of_text))?;
        ctx.write_table("valid", &valid.table(vocab_size, end_of_text))?;
        Ok(())
    }
}

/// The documents, in input order, and where they came from (for messages).
struct Corpus {
    documents: Vec<String>,
    source: String,
}

fn read_corpus(params: &CorpusTextParams, ctx: &StageContext) -> Result<Corpus, StageError> {
    if params.files.is_empty() {
        let input = ctx.input("text")?;
        let (output, path) = input.single_output()?;
        if TextFormat::of(&path.to_string_lossy()) != Some(TextFormat::Plain) {
            return Err(StageError::failed(format!(
                "the `text` input (output `{output}` of stage `{}`) is {}, not a .txt file",
                input.stage,
                path.file_name().unwrap_or_default().to_string_lossy()
            ))
            .with_hint("give corpus.grammar's text: `inputs: {text: <stage>.text}`"));
        }
        let text = read_text(&path)?;
        let source = format!("the `text` input (stage `{}`)", input.stage);
        return Ok(Corpus { documents: plain_documents(&text), source });
    }
    let mut documents = Vec::new();
    for (i, file) in params.files.iter().enumerate() {
        let path = ctx.resolve(file);
        let text = read_text(&path)?;
        match TextFormat::of(file) {
            Some(TextFormat::Plain) => documents.extend(plain_documents(&text)),
            Some(TextFormat::JsonLines) => documents.extend(json_documents(&text, &path, i)?),
            None => {
                return Err(StageError::failed(format!("param `files.{i}`: `{file}` is neither .txt nor .jsonl")));
            }
        }
    }
    Ok(Corpus { documents, source: format!("param `files` ({})", params.files.join(", ")) })
}

fn read_text(path: &Path) -> Result<String, StageError> {
    let bytes = std::fs::read(path).map_err(|e| StageError::failed(format!("{}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|e| {
        StageError::failed(format!("{}: not UTF-8 text ({e})", path.display())).with_hint("save the file as UTF-8")
    })
}

/// The documents of a .txt file: runs of non-blank lines, joined with `\n`.
fn plain_documents(text: &str) -> Vec<String> {
    let mut documents = Vec::new();
    let mut lines: Vec<&str> = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if !lines.is_empty() {
                documents.push(lines.join("\n"));
                lines.clear();
            }
        } else {
            lines.push(line);
        }
    }
    documents
}

/// The documents of a .jsonl file: the `text` field of each non-blank line.
fn json_documents(text: &str, path: &Path, file_index: usize) -> Result<Vec<String>, StageError> {
    let mut documents = Vec::new();
    for (number, line) in text.lines().enumerate().map(|(i, line)| (i + 1, line)) {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            StageError::failed(format!("param `files.{file_index}`: {}:{number}: not JSON ({e})", path.display()))
                .with_hint("a .jsonl file has one JSON object per line: {\"text\": \"...\"}")
        })?;
        match value.get("text").and_then(|text| text.as_str()) {
            Some(text) => documents.push(text.to_string()),
            None => {
                return Err(StageError::failed(format!(
                    "param `files.{file_index}`: {}:{number}: no string field `text`",
                    path.display()
                ))
                .with_hint("each line of a .jsonl file is one document: {\"text\": \"...\"}"));
            }
        }
    }
    Ok(documents)
}

/// The document numbers of each split, each in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Split {
    train: Vec<usize>,
    valid: Vec<usize>,
}

/// Why a corpus cannot be split.
#[derive(Debug, Clone, PartialEq)]
enum SplitProblem {
    TooFewDocuments { found: usize },
    NoTrainingDocument { documents: usize, valid_fraction: f64 },
}

impl Split {
    /// Shuffles 0..n with `seed`; the first max(1, round(fraction * n)) are
    /// the validation documents.
    fn choose(n: usize, valid_fraction: f64, seed: u64) -> Result<Split, SplitProblem> {
        if n < 2 {
            return Err(SplitProblem::TooFewDocuments { found: n });
        }
        let n_valid = ((valid_fraction * n as f64).round() as usize).max(1);
        if n_valid >= n {
            return Err(SplitProblem::NoTrainingDocument { documents: n, valid_fraction });
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let mut valid = order[..n_valid].to_vec();
        let mut train = order[n_valid..].to_vec();
        valid.sort_unstable();
        train.sort_unstable();
        Ok(Split { train, valid })
    }
}

impl SplitProblem {
    fn into_error(self, source: &str) -> StageError {
        match self {
            SplitProblem::TooFewDocuments { found } => StageError::failed(format!(
                "{source} holds {found} document{}: a train/validation split needs at least 2",
                if found == 1 { "" } else { "s" }
            ))
            .with_hint("add documents: in .txt files a blank line ends a document; in .jsonl files each line is one"),
            SplitProblem::NoTrainingDocument { documents, valid_fraction } => StageError::failed(format!(
                "param `valid_fraction`: {valid_fraction} of {documents} documents leaves no training document"
            ))
            .with_hint("lower valid_fraction, or add documents"),
        }
    }
}

fn tokenizer_error(what: &str) -> impl Fn(tokenizers::Error) -> StageError + '_ {
    move |error| StageError::failed(format!("{what}: {error}"))
}

/// The word-level tokenizer of the train documents.
fn word_tokenizer(train: &[&str]) -> Result<Tokenizer, StageError> {
    let model = WordLevel::builder()
        .unk_token(UNKNOWN.to_string())
        .build()
        .map_err(tokenizer_error("building the word tokenizer"))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(Whitespace {}));
    // The trainer orders words by count, then by the words themselves.
    let trainer = WordLevelTrainer::builder()
        .vocab_size(usize::MAX)
        .min_frequency(0)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(END_OF_TEXT, true), AddedToken::from(UNKNOWN, true)])
        .build()
        .map_err(|e| StageError::failed(format!("building the word vocabulary: {e}")))?;
    tokenizer
        .train(&mut TrainerWrapper::WordLevelTrainer(trainer), train.iter().copied())
        .map_err(tokenizer_error("building the word vocabulary"))?;
    Ok(tokenizer)
}

/// A GPT-2-style byte-level BPE trained on the train documents.
fn bpe_tokenizer(train: &[&str], vocab_size: usize) -> Result<Tokenizer, StageError> {
    let mut tokenizer = Tokenizer::new(BPE::default());
    // GPT-2's settings: no space added before the first word.
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    tokenizer.with_post_processor(Some(ByteLevel::new(false, true, true)));
    let trainer = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(0)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    tokenizer
        .train(&mut TrainerWrapper::BpeTrainer(trainer), train.iter().copied())
        .map_err(tokenizer_error("training the BPE"))?;
    Ok(tokenizer)
}

/// The user's tokenizer.json, read for encoding without truncation or
/// padding, and its bytes as they are.
fn user_tokenizer(path: &Path) -> Result<(Tokenizer, String), StageError> {
    let json = read_text(path).map_err(|e| match e {
        StageError::Failed { message, hint } => {
            StageError::Failed { message: format!("param `tokenizer.path`: {message}"), hint }
        }
        other => other,
    })?;
    let mut tokenizer: Tokenizer = json.parse().map_err(|error| {
        StageError::failed(format!(
            "param `tokenizer.path`: {} is not a tokenizer.json the `tokenizers` library reads: {error}",
            path.display()
        ))
        .with_hint("give a file written by `Tokenizer.save` (Python tokenizers) or `save_pretrained`, or use `tokenizer: bpe` or `tokenizer: word`")
    })?;
    tokenizer.with_truncation(None).map_err(tokenizer_error("turning off truncation"))?;
    tokenizer.with_padding(None);
    Ok((tokenizer, json))
}

fn tokenizer_json(tokenizer: &Tokenizer) -> Result<String, StageError> {
    tokenizer.to_string(true).map_err(tokenizer_error("writing tokenizer.json"))
}

/// Encodes the documents of the splits in turn, reporting progress over both.
struct Encoder<'t> {
    tokenizer: &'t Tokenizer,
    end_of_text: u32,
    done: u64,
    total: u64,
}

/// The rows of one split's token table.
struct TokenRows {
    document: Vec<i32>,
    id: Vec<u32>,
}

impl Encoder<'_> {
    fn encode(&mut self, documents: &[String], members: &[usize], ctx: &StageContext) -> Result<TokenRows, StageError> {
        let mut rows = TokenRows { document: Vec::new(), id: Vec::new() };
        for chunk in members.chunks(ENCODE_CHUNK) {
            ctx.check_cancelled()?;
            let texts: Vec<&str> = chunk.iter().map(|&d| documents[d].as_str()).collect();
            let encodings =
                self.tokenizer.encode_batch(texts, false).map_err(tokenizer_error("encoding the documents"))?;
            for (&document, encoding) in chunk.iter().zip(&encodings) {
                let ids = encoding.get_ids();
                rows.id.extend_from_slice(ids);
                rows.id.push(self.end_of_text);
                rows.document.extend(std::iter::repeat_n(document as i32, ids.len() + 1));
            }
            self.done += chunk.len() as u64;
            ctx.progress(self.done, self.total);
        }
        Ok(rows)
    }
}

impl TokenRows {
    fn table(self, vocab_size: usize, end_of_text: u32) -> RecordBatch {
        let metadata = HashMap::from([
            ("vocab_size".to_string(), vocab_size.to_string()),
            ("eot_id".to_string(), end_of_text.to_string()),
        ]);
        let schema = Schema::new_with_metadata(
            vec![Field::new("document", DataType::Int32, false), Field::new("id", DataType::UInt32, false)],
            metadata,
        );
        RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(Int32Array::from(self.document)), Arc::new(UInt32Array::from(self.id))],
        )
        .expect("columns of one length")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_lines_separate_documents_and_line_breaks_stay() {
        let text = "\n\na b\nc d\n\n\n  \ne f\r\ng\n\nh";
        assert_eq!(plain_documents(text), ["a b\nc d", "e f\ng", "h"]);
        assert!(plain_documents("\n \n").is_empty());
    }

    #[test]
    fn the_split_is_a_partition_in_input_order_sized_by_the_fraction() {
        for (n, fraction, n_valid) in [(2, 0.1, 1), (10, 0.1, 1), (10, 0.25, 3), (40, 0.3, 12), (7, 0.5, 4)] {
            let split = Split::choose(n, fraction, 5).unwrap();
            assert_eq!(split.valid.len(), n_valid, "n {n} fraction {fraction}");
            let mut all: Vec<usize> = split.train.iter().chain(&split.valid).copied().collect();
            assert!(split.train.windows(2).all(|w| w[0] < w[1]) && split.valid.windows(2).all(|w| w[0] < w[1]));
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>());
        }
        assert_eq!(Split::choose(40, 0.3, 5), Split::choose(40, 0.3, 5));
        assert_ne!(Split::choose(40, 0.3, 5), Split::choose(40, 0.3, 6));
        assert_eq!(Split::choose(1, 0.1, 0), Err(SplitProblem::TooFewDocuments { found: 1 }));
        assert!(matches!(Split::choose(2, 0.8, 0), Err(SplitProblem::NoTrainingDocument { .. })));
    }

    #[test]
    fn vocab_size_is_filled_for_bpe_only_and_checked() {
        let parse = |params: serde_json::Value| crate::stage::parse_params::<CorpusTextParams>(&params);
        let (_, implicit) = parse(serde_json::json!({"files": ["a.txt"]})).unwrap();
        let (_, explicit) =
            parse(serde_json::json!({"files": ["a.txt"], "tokenizer": "bpe", "vocab_size": 1024})).unwrap();
        assert_eq!(implicit, explicit, "writing the default changes the key");
        let (word, canonical) = parse(serde_json::json!({"files": ["a.txt"], "tokenizer": "word"})).unwrap();
        assert_eq!(word.vocab_size, None);
        assert!(canonical.get("vocab_size").is_none(), "{canonical}");
        let (user, _) = parse(serde_json::json!({"files": ["a.txt"], "tokenizer": {"path": "t.json"}})).unwrap();
        assert_eq!(user.tokenizer, TokenizerChoice::Path("t.json".into()));
        assert_eq!(
            CorpusText.file_params(&user),
            [("files.0".to_string(), "a.txt".to_string()), ("tokenizer.path".to_string(), "t.json".to_string())]
        );
        let (misplaced, _) =
            parse(serde_json::json!({"files": ["a.txt"], "tokenizer": "word", "vocab_size": 9})).unwrap();
        let errors = CorpusText.validate(&misplaced);
        assert!(errors.iter().any(|e| e.path == "vocab_size" && e.message.contains("only")), "{errors:?}");
        let (small, _) = parse(serde_json::json!({"files": ["a.csv"], "vocab_size": 257})).unwrap();
        let paths: Vec<String> = CorpusText.validate(&small).into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["files.0", "vocab_size"]);
        let errors = parse(serde_json::json!({"tokenizer": "wrd"})).unwrap_err();
        assert_eq!(errors[0].hint.as_deref(), Some("did you mean `word`?"), "{errors:?}");
    }
}
