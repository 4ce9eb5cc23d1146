//! `stimuli.facts`: completion items for `competence.facts`, from the fact
//! probes of a generated corpus (`source: grammar`, the input `facts`:
//! corpus.grammar's `facts` table) or from a user's JSONL (`source: jsonl`,
//! `path`, hashed by content).
//!
//! Grammar probes: `probes: held_out` (the default) keeps the probes whose
//! sentence the corpus never states (the paraphrases of held-out people:
//! knowledge seen only in the other template); `in_training` the others;
//! `all` every probe. The choices of a probe are every distinct answer of
//! its relation in the whole facts table (homes: the places people live
//! in; pets: the animals they feed), in byte order; the suite is the
//! relation (`home`, `pet`).
//!
//! JSONL: one JSON object per non-blank line with `prompt` (string),
//! `choices` (strings, at least two, distinct) and `answer` (the right
//! choice's index, or its text), and optionally `suite` (default `facts`).
//!
//! Output `stimuli` (stimuli.parquet): `item` uint32 (0..n), `source`
//! (`grammar` | `jsonl`), `suite`, `prompt` (utf8), `choices`
//! list<utf8>, `answer` int64 (index into `choices`).

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, StringArray};
use arrow::datatypes::DataType;
use serde::{Deserialize, Serialize};

use crate::kinds::competence::{item_column, string_list_column, table};
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FactSource {
    Grammar,
    Jsonl,
}

/// Which of corpus.grammar's probes to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactProbes {
    #[default]
    HeldOut,
    InTraining,
    All,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactsParams {
    pub source: FactSource,
    /// `source: grammar`.
    #[serde(default)]
    pub probes: FactProbes,
    /// `source: jsonl`: the file, relative to the pipeline file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

pub struct StimuliFacts;

impl Kind for StimuliFacts {
    type Params = FactsParams;
    const NAME: &'static str = "stimuli.facts";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "completion items (prompt, choices, answer): corpus.grammar's held-out fact probes or a user's JSONL";
    const OUTPUTS: &'static [&'static str] = &["stimuli"];

    fn required_inputs(&self, params: &FactsParams) -> Vec<&'static str> {
        match params.source {
            FactSource::Grammar => vec!["facts"],
            FactSource::Jsonl => vec![],
        }
    }

    fn file_params(&self, params: &FactsParams) -> Vec<(String, String)> {
        params.path.iter().map(|path| ("path".to_string(), path.clone())).collect()
    }

    fn validate(&self, params: &FactsParams) -> Vec<ParamError> {
        match (params.source, &params.path) {
            (FactSource::Grammar, Some(_)) => vec![ParamError::new("path", "`path` is for `source: jsonl`").hint(
                "`source: grammar` reads corpus.grammar's facts table: `inputs: {facts: <corpus.grammar stage>.facts}`",
            )],
            (FactSource::Jsonl, None) => vec![ParamError::new("path", "`source: jsonl` needs `path`")
                .hint("a .jsonl file with prompt, choices and answer per line")],
            (FactSource::Jsonl, Some(_)) if params.probes != FactProbes::HeldOut => {
                vec![ParamError::new("probes", "`probes` is for `source: grammar`")]
            }
            _ => Vec::new(),
        }
    }

    fn run(&self, params: &FactsParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let (items, source) = match (params.source, &params.path) {
            (FactSource::Grammar, _) => {
                let stage = ctx.input("facts")?.stage.clone();
                (from_grammar(&ctx.input_table("facts")?, &stage, params.probes)?, "grammar")
            }
            (FactSource::Jsonl, Some(path)) => {
                let resolved = ctx.resolve(path);
                let text = std::fs::read_to_string(&resolved).map_err(|e| {
                    StageError::failed(format!("param `path` ({path}): cannot read {}: {e}", resolved.display()))
                })?;
                (parse_jsonl(&resolved, &text)?, "jsonl")
            }
            (FactSource::Jsonl, None) => unreachable!("validated: jsonl has a path"),
        };
        let n = items.len();
        let choices: Vec<Vec<String>> = items.iter().map(|i| i.choices.clone()).collect();
        let batch = table(vec![
            ("item", item_column(n)),
            ("source", Arc::new(StringArray::from(vec![source; n])) as ArrayRef),
            ("suite", Arc::new(StringArray::from_iter_values(items.iter().map(|i| i.suite.as_str())))),
            ("prompt", Arc::new(StringArray::from_iter_values(items.iter().map(|i| i.prompt.as_str())))),
            ("choices", string_list_column(&choices)),
            ("answer", Arc::new(Int64Array::from_iter_values(items.iter().map(|i| i.answer as i64)))),
        ]);
        ctx.write_table("stimuli", &batch)
    }
}

/// One completion item.
#[derive(Debug, Clone, PartialEq)]
pub struct FactItem {
    pub suite: String,
    pub prompt: String,
    pub choices: Vec<String>,
    pub answer: usize,
}

/// The probes of corpus.grammar's facts table (entity, relation, template,
/// prompt, answer, in_training).
pub fn from_grammar(
    batch: &arrow::array::RecordBatch,
    stage: &str,
    probes: FactProbes,
) -> Result<Vec<FactItem>, StageError> {
    let hint =
        "give corpus.grammar's `facts` output (`inputs: {facts: grammar.facts}`; it has one when `facts.entities` > 0)";
    let fail = |what: String| {
        StageError::failed(format!("stimuli.facts: the facts table of `{stage}`: {what}")).with_hint(hint)
    };
    let strings = |name: &str| -> Result<Vec<String>, StageError> {
        let column = batch.column_by_name(name).ok_or_else(|| fail(format!("no column `{name}`")))?;
        let cast = arrow::compute::cast(column, &DataType::Utf8).map_err(|e| fail(format!("column `{name}`: {e}")))?;
        Ok(cast.as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect())
    };
    let relations = strings("relation")?;
    let prompts = strings("prompt")?;
    let answers = strings("answer")?;
    let in_training = batch
        .column_by_name("in_training")
        .and_then(|c| c.as_any().downcast_ref::<BooleanArray>().cloned())
        .ok_or_else(|| fail("no boolean column `in_training`".into()))?;
    let mut items = Vec::new();
    for row in 0..relations.len() {
        let seen = in_training.value(row) && !in_training.is_null(row);
        let keep = match probes {
            FactProbes::HeldOut => !seen,
            FactProbes::InTraining => seen,
            FactProbes::All => true,
        };
        if !keep {
            continue;
        }
        let mut choices: Vec<String> =
            (0..relations.len()).filter(|&r| relations[r] == relations[row]).map(|r| answers[r].clone()).collect();
        choices.sort();
        choices.dedup();
        if choices.len() < 2 {
            return Err(fail(format!(
                "relation `{}` has one distinct answer, so there is nothing to rank",
                relations[row]
            ))
            .with_hint("generate more entities (corpus.grammar's `facts.entities`, `facts.places`)"));
        }
        let answer = choices.iter().position(|c| *c == answers[row]).expect("its own answer");
        items.push(FactItem { suite: relations[row].clone(), prompt: prompts[row].clone(), choices, answer });
    }
    if items.is_empty() {
        return Err(fail(format!("no probes are {probes:?}")).with_hint(
            "with `probes: held_out` the corpus needs held-out people (`facts.held_out_fraction` > 0); or use `probes: all`",
        ));
    }
    Ok(items)
}

const JSONL_HINT: &str =
    "a line is a JSON object with \"prompt\" (string), \"choices\" (two or more strings) and \"answer\" (an index or one of the choices), optionally \"suite\"";

/// The items of a user's JSONL; errors name the file and line.
pub fn parse_jsonl(path: &Path, text: &str) -> Result<Vec<FactItem>, StageError> {
    let fail = |line: usize, message: String| {
        StageError::failed(format!("{}:{line}: {message}", path.display())).with_hint(JSONL_HINT)
    };
    let mut items = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| fail(number, format!("not a JSON object: {e}")))?;
        let object = value.as_object().ok_or_else(|| fail(number, "not a JSON object".into()))?;
        let prompt = match object.get("prompt") {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(other) => return Err(fail(number, format!("`prompt` is {other}, not a non-empty string"))),
            None => return Err(fail(number, "no `prompt`".into())),
        };
        let choices: Vec<String> = match object.get("choices") {
            Some(serde_json::Value::Array(values)) => values
                .iter()
                .map(|v| v.as_str().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| fail(number, "`choices` must all be non-empty strings".into()))?,
            Some(other) => return Err(fail(number, format!("`choices` is {other}, not a list of strings"))),
            None => return Err(fail(number, "no `choices`".into())),
        };
        let mut distinct = choices.clone();
        distinct.sort();
        distinct.dedup();
        if choices.len() < 2 || distinct.len() != choices.len() {
            return Err(fail(number, format!("`choices` must be two or more distinct strings: {choices:?}")));
        }
        let answer = match object.get("answer") {
            Some(serde_json::Value::Number(n)) => {
                n.as_u64().map(|n| n as usize).filter(|&n| n < choices.len()).ok_or_else(|| {
                    fail(number, format!("`answer` {n} is not an index into the {} choices", choices.len()))
                })?
            }
            Some(serde_json::Value::String(s)) => choices
                .iter()
                .position(|c| c == s.trim())
                .ok_or_else(|| fail(number, format!("`answer` {s:?} is not one of the choices {choices:?}")))?,
            Some(other) => return Err(fail(number, format!("`answer` is {other}, not an index or a choice"))),
            None => return Err(fail(number, "no `answer`".into())),
        };
        let suite = object.get("suite").and_then(|s| s.as_str()).unwrap_or("facts").to_string();
        items.push(FactItem { suite, prompt, choices, answer });
    }
    if items.is_empty() {
        return Err(fail(1, "the file has no items".into()));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_items_parse_and_bad_lines_name_file_and_line() {
        let path = Path::new("/x/capitals.jsonl");
        let text = "{\"prompt\": \"the capital of France is\", \"choices\": [\"Paris\", \"Rome\"], \"answer\": 0, \"suite\": \"capitals\"}\n\
                    {\"prompt\": \"two plus two is\", \"choices\": [\"three\", \"four\", \"five\"], \"answer\": \"four\"}\n";
        let items = parse_jsonl(path, text).unwrap();
        assert_eq!(items[0].suite, "capitals");
        assert_eq!((items[1].suite.as_str(), items[1].answer), ("facts", 1));
        let cases = [
            (
                "{\"prompt\": \"p\", \"choices\": [\"a\", \"b\"], \"answer\": 2}",
                "/x/capitals.jsonl:1: `answer` 2 is not an index",
            ),
            (
                "\n{\"prompt\": \"p\", \"choices\": [\"a\", \"a\"], \"answer\": 0}",
                "/x/capitals.jsonl:2: `choices` must be two or more distinct",
            ),
            (
                "{\"prompt\": \"p\", \"choices\": [\"a\", \"b\"], \"answer\": \"c\"}",
                "/x/capitals.jsonl:1: `answer` \"c\" is not one of",
            ),
            ("{\"choices\": [\"a\", \"b\"], \"answer\": 0}", "/x/capitals.jsonl:1: no `prompt`"),
        ];
        for (text, expected) in cases {
            let error = parse_jsonl(path, text).unwrap_err();
            assert!(error.to_string().starts_with(expected), "{error} / {expected}");
        }
    }

    /// corpus.grammar's probes: held-out ones only, choices per relation.
    #[test]
    fn grammar_probes_rank_among_the_relations_answers() {
        let config = crate::corpus::GrammarConfig { documents: 5, ..Default::default() };
        let corpus = crate::corpus::generate(&config).unwrap();
        let probes = corpus.fact_probes();
        let relation: Vec<&str> = probes.iter().map(|p| p.relation.as_str()).collect();
        let prompts: Vec<String> = probes.iter().map(|p| p.prompt_text()).collect();
        let answers: Vec<&str> = probes.iter().map(|p| p.answer.text.as_str()).collect();
        let seen: Vec<bool> = probes.iter().map(|p| p.in_training).collect();
        let batch = table(vec![
            ("relation", Arc::new(StringArray::from(relation.clone())) as ArrayRef),
            ("prompt", Arc::new(StringArray::from(prompts.clone()))),
            ("answer", Arc::new(StringArray::from(answers.clone()))),
            ("in_training", Arc::new(BooleanArray::from(seen.clone()))),
        ]);
        let items = from_grammar(&batch, "grammar", FactProbes::HeldOut).unwrap();
        assert_eq!(items.len(), seen.iter().filter(|s| !**s).count());
        assert!(!items.is_empty());
        for item in &items {
            let k = prompts.iter().position(|p| *p == item.prompt).unwrap();
            assert_eq!(item.choices[item.answer], answers[k]);
            assert!(!seen[k]);
            let mut expected: Vec<&str> =
                (0..answers.len()).filter(|&r| relation[r] == item.suite).map(|r| answers[r]).collect();
            expected.sort();
            expected.dedup();
            assert_eq!(item.choices, expected);
        }
        assert_eq!(from_grammar(&batch, "grammar", FactProbes::All).unwrap().len(), probes.len());
    }
}
