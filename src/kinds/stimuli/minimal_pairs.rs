//! `stimuli.minimal_pairs`: grammatical / ungrammatical sentence pairs for
//! `competence.minimal_pairs`, generated from corpus.grammar's lexicon and
//! grammar (`source: grammar`: `crate::corpus::minimal_pairs`, `n` pairs
//! per phenomenon of `phenomena` (default all six: simple_agreement,
//! across_prepositional_phrase, across_subject_relative,
//! across_object_relative, within_object_relative, determiner_noun),
//! seeded by `grammar.seed`; give the `grammar` params of the corpus the
//! model was trained on, so that every word is in its vocabulary) or read
//! from BLiMP-format JSONL (`source: blimp`, `path`: a .jsonl file or a
//! directory of them, read in name order; hashed by content). A BLiMP line
//! is a JSON object with `sentence_good`, `sentence_bad` and the suite
//! name in `UID`, else `phenomenon`, else `linguistics_term`; blank lines
//! are skipped.
//!
//! Output `stimuli` (stimuli.parquet): `item` uint32 (0..n in order),
//! `source` (`grammar` | `blimp`), `suite` (the phenomenon or UID), `good`,
//! `bad` (utf8).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use serde::{Deserialize, Serialize};

use crate::corpus::{self, GrammarConfig, Phenomenon};
use crate::kinds::competence::{item_column, table};
use crate::stage::{Kind, ParamError, StageContext, StageError};

/// Where the pairs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairSource {
    Grammar,
    Blimp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinimalPairsParams {
    pub source: PairSource,
    /// corpus.grammar's params (`source: grammar`).
    #[serde(default)]
    pub grammar: GrammarConfig,
    /// Pairs per phenomenon (`source: grammar`).
    #[serde(default = "default_n")]
    pub n: usize,
    /// The phenomena (`source: grammar`); default all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phenomena: Option<Vec<Phenomenon>>,
    /// A BLiMP .jsonl file or a directory of them (`source: blimp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

fn default_n() -> usize {
    50
}

pub struct StimuliMinimalPairs;

impl Kind for StimuliMinimalPairs {
    type Params = MinimalPairsParams;
    const NAME: &'static str = "stimuli.minimal_pairs";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "grammatical/ungrammatical sentence pairs: corpus.grammar's agreement phenomena or BLiMP-format JSONL";
    const OUTPUTS: &'static [&'static str] = &["stimuli"];

    fn file_params(&self, params: &MinimalPairsParams) -> Vec<(String, String)> {
        params.path.iter().map(|path| ("path".to_string(), path.clone())).collect()
    }

    fn validate(&self, params: &MinimalPairsParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        match params.source {
            PairSource::Grammar => {
                if params.path.is_some() {
                    errors.push(
                        ParamError::new("path", "`path` is for `source: blimp`")
                            .hint("leave `path` out to generate pairs from the grammar, or set `source: blimp`"),
                    );
                }
                if params.n == 0 {
                    errors.push(ParamError::new("n", "n must be at least 1 pair per phenomenon"));
                }
                if params.phenomena.as_ref().is_some_and(|p| p.is_empty()) {
                    errors.push(ParamError::new("phenomena", "`phenomena` is empty").hint("leave it out for all six"));
                }
                if let Err(error) = params.grammar.validate() {
                    errors.push(ParamError::new("grammar", error.0));
                }
            }
            PairSource::Blimp => {
                if params.path.is_none() {
                    errors.push(ParamError::new("path", "`source: blimp` needs `path`").hint(
                        "a .jsonl file (or a directory of them) with sentence_good, sentence_bad and UID per line",
                    ));
                }
                if params.phenomena.is_some() {
                    errors.push(
                        ParamError::new("phenomena", "`phenomena` is for `source: grammar`")
                            .hint("a BLiMP file's suites are its UIDs"),
                    );
                }
            }
        }
        errors
    }

    fn run(&self, params: &MinimalPairsParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let pairs = match (params.source, &params.path) {
            (PairSource::Grammar, _) => generated(params)?,
            (PairSource::Blimp, Some(path)) => read_blimp(path, &ctx.resolve(path))?,
            (PairSource::Blimp, None) => unreachable!("validated: blimp has a path"),
        };
        let source = match params.source {
            PairSource::Grammar => "grammar",
            PairSource::Blimp => "blimp",
        };
        let n = pairs.len();
        let batch = table(vec![
            ("item", item_column(n)),
            ("source", Arc::new(StringArray::from(vec![source; n])) as ArrayRef),
            ("suite", Arc::new(StringArray::from_iter_values(pairs.iter().map(|p| p.suite.as_str())))),
            ("good", Arc::new(StringArray::from_iter_values(pairs.iter().map(|p| p.good.as_str())))),
            ("bad", Arc::new(StringArray::from_iter_values(pairs.iter().map(|p| p.bad.as_str())))),
        ]);
        ctx.write_table("stimuli", &batch)
    }
}

/// One pair as the table holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub suite: String,
    pub good: String,
    pub bad: String,
}

fn generated(params: &MinimalPairsParams) -> Result<Vec<Pair>, StageError> {
    let phenomena = params.phenomena.clone().unwrap_or_else(|| Phenomenon::ALL.to_vec());
    let mut out = Vec::new();
    for phenomenon in phenomena {
        let pairs = corpus::minimal_pairs(&params.grammar, phenomenon, params.n)
            .map_err(|e| StageError::failed(format!("phenomenon `{}`: {e}", phenomenon.as_str())))?;
        out.extend(pairs.iter().map(|p| Pair {
            suite: phenomenon.as_str().to_string(),
            good: p.good_text(),
            bad: p.bad_text(),
        }));
    }
    Ok(out)
}

const BLIMP_HINT: &str = "a BLiMP line is a JSON object with \"sentence_good\", \"sentence_bad\" and \"UID\" (or \"phenomenon\", \"linguistics_term\")";

/// The pairs of a BLiMP .jsonl file or of every .jsonl file in a directory.
pub fn read_blimp(param: &str, path: &Path) -> Result<Vec<Pair>, StageError> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| StageError::failed(format!("param `path` ({param}): cannot read {}: {e}", path.display())))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(StageError::failed(format!("param `path` ({param}): {} has no .jsonl files", path.display()))
                .with_hint(BLIMP_HINT));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut pairs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| StageError::failed(format!("param `path` ({param}): cannot read {}: {e}", file.display())))?;
        pairs.extend(parse_blimp(&file, &text)?);
    }
    Ok(pairs)
}

/// The pairs of one BLiMP file's text; errors name the file and line.
pub fn parse_blimp(path: &Path, text: &str) -> Result<Vec<Pair>, StageError> {
    let fail = |line: usize, message: String| {
        StageError::failed(format!("{}:{line}: {message}", path.display())).with_hint(BLIMP_HINT)
    };
    let mut pairs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| fail(number, format!("not a JSON object: {e}")))?;
        let object = value.as_object().ok_or_else(|| fail(number, "not a JSON object".into()))?;
        let field = |name: &str| -> Result<String, StageError> {
            match object.get(name) {
                Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                Some(other) => Err(fail(number, format!("`{name}` is {other}, not a non-empty string"))),
                None => Err(fail(number, format!("no `{name}`"))),
            }
        };
        let good = field("sentence_good")?;
        let bad = field("sentence_bad")?;
        let suite = ["UID", "phenomenon", "linguistics_term"]
            .iter()
            .find_map(|name| object.get(*name).and_then(|v| v.as_str()).filter(|s| !s.is_empty()))
            .ok_or_else(|| fail(number, "no `UID`, `phenomenon` or `linguistics_term` to name its suite".into()))?;
        pairs.push(Pair { suite: suite.to_string(), good, bad });
    }
    if pairs.is_empty() {
        return Err(fail(1, "the file has no pairs".into()));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blimp_lines_parse_and_bad_lines_name_file_and_line() {
        let path = Path::new("/x/anaphor.jsonl");
        let text = "{\"sentence_good\": \"Many girls insulted themselves.\", \"sentence_bad\": \"Many girls insulted herself.\", \"UID\": \"anaphor_gender_agreement\", \"pairID\": \"0\"}\n\n\
                    {\"sentence_good\": \"a b\", \"sentence_bad\": \"b a\", \"phenomenon\": \"word_order\"}\n";
        let pairs = parse_blimp(path, text).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].suite, "anaphor_gender_agreement");
        assert_eq!(pairs[1], Pair { suite: "word_order".into(), good: "a b".into(), bad: "b a".into() });
        let cases = [
            ("{\"sentence_good\": \"a\", \"UID\": \"u\"}", "/x/anaphor.jsonl:1: no `sentence_bad`"),
            (
                "\n{\"sentence_good\": \"a\", \"sentence_bad\": 3, \"UID\": \"u\"}",
                "/x/anaphor.jsonl:2: `sentence_bad` is 3",
            ),
            ("{\"sentence_good\": \"a\", \"sentence_bad\": \"b\"}", "/x/anaphor.jsonl:1: no `UID`, `phenomenon`"),
            ("[1, 2", "/x/anaphor.jsonl:1: not a JSON object"),
            ("", "/x/anaphor.jsonl:1: the file has no pairs"),
        ];
        for (text, expected) in cases {
            let error = parse_blimp(path, text).unwrap_err();
            assert!(error.to_string().starts_with(expected), "{error} / {expected}");
            assert!(error.hint().unwrap().contains("sentence_good"));
        }
    }

    /// The grammar's pairs: n per phenomenon, the pair differing in one word.
    #[test]
    fn generated_pairs_differ_in_one_word() {
        let params = MinimalPairsParams {
            source: PairSource::Grammar,
            grammar: GrammarConfig::default(),
            n: 4,
            phenomena: Some(vec![Phenomenon::SimpleAgreement, Phenomenon::DeterminerNoun]),
            path: None,
        };
        let pairs = generated(&params).unwrap();
        assert_eq!(pairs.len(), 8);
        assert!(pairs[..4].iter().all(|p| p.suite == "simple_agreement"));
        for pair in &pairs {
            let (g, b): (Vec<&str>, Vec<&str>) = (pair.good.split(' ').collect(), pair.bad.split(' ').collect());
            assert_eq!(g.len(), b.len());
            assert_eq!(g.iter().zip(&b).filter(|(x, y)| x != y).count(), 1, "{pair:?}");
        }
    }
}
