//! `stimuli.contrast`: a two-condition stimulus set for a selectivity map,
//! either generated from corpus.grammar's lexicon and grammar
//! (`contrast: nouns_verbs | animate_inanimate | concrete_abstract |
//! sentences_word_lists`; `noun_verb` and `sentence_wordlist` are accepted
//! spellings) or read from a user's table (`table:` a CSV, Parquet or Arrow
//! file with `text` and `label` columns, hashed by content).
//!
//! Generated sets are `crate::corpus::contrast_set`: `n` items per
//! condition, alternating conditions (item 2i the first, 2i + 1 the
//! second); word-list contrasts have `words` words per item; labels are
//! the conditions (`noun`/`verb`, `animate`/`inanimate`,
//! `concrete`/`abstract`, `sentence`/`word_list`). `grammar` takes
//! corpus.grammar's params: give the ones of the corpus the model was
//! trained on (its `seed` and `vocabulary` decide the lexicon), so that
//! every word is in the model's vocabulary; the items are drawn from the
//! seed's own stream for the contrast.
//!
//! Output `stimuli` (stimuli.parquet): `item` (uint32, 0..n in order),
//! `text`, `label` (utf8).

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use serde::{Deserialize, Serialize};

use super::stimulus_table;
use crate::corpus::{self, Contrast, GrammarConfig};
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContrastParams {
    /// A contrast of the grammar's lexicon (or `table`, not both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contrast: Option<Contrast>,
    /// A user's table with `text` and `label` columns, relative to the
    /// pipeline file (or `contrast`, not both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Items per condition (`contrast` only).
    #[serde(default = "default_n")]
    pub n: usize,
    /// Words per item of a word-list contrast (`contrast` only).
    #[serde(default = "default_words")]
    pub words: usize,
    /// corpus.grammar's params (`contrast` only).
    #[serde(default)]
    pub grammar: GrammarConfig,
}

fn default_n() -> usize {
    40
}

/// The localizer's item length.
fn default_words() -> usize {
    12
}

pub struct StimuliContrast;

impl Kind for StimuliContrast {
    type Params = ContrastParams;
    const NAME: &'static str = "stimuli.contrast";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "a two-condition stimulus set: a contrast of corpus.grammar's lexicon (nouns vs verbs, ...) or a user's table";
    const OUTPUTS: &'static [&'static str] = &["stimuli"];

    fn file_params(&self, params: &ContrastParams) -> Vec<(String, String)> {
        params.table.iter().map(|table| ("table".to_string(), table.clone())).collect()
    }

    fn validate(&self, params: &ContrastParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        match (&params.contrast, &params.table) {
            (Some(_), Some(_)) => errors.push(
                ParamError::new("table", "give `contrast` or `table`, not both")
                    .hint("`contrast` generates items from the grammar; `table` reads yours"),
            ),
            (None, None) => errors.push(ParamError::new("", "stimuli.contrast needs `contrast` or `table`").hint(
                "e.g. `contrast: nouns_verbs` (or animate_inanimate, concrete_abstract, sentences_word_lists), \
                     or `table: stimuli.csv` with text and label columns",
            )),
            (Some(_), None) => {
                if params.n == 0 {
                    errors.push(ParamError::new("n", "n must be at least 1 item per condition"));
                }
                if params.words == 0 {
                    errors.push(ParamError::new("words", "words must be at least 1"));
                }
                if let Err(error) = params.grammar.validate() {
                    errors.push(ParamError::new("grammar", error.0));
                }
            }
            (None, Some(table)) => {
                let extension =
                    Path::new(table).extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
                if !["csv", "parquet", "arrow", "feather"].contains(&extension.as_str()) {
                    errors.push(
                        ParamError::new("table", format!("cannot read `.{extension}` files as a stimulus table"))
                            .hint("use a .csv, .parquet or .arrow file with text and label columns"),
                    );
                }
            }
        }
        errors
    }

    fn run(&self, params: &ContrastParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let (texts, labels) = match (&params.contrast, &params.table) {
            (Some(contrast), _) => generated(*contrast, params)?,
            (None, Some(table)) => from_table(table, &ctx.resolve(table))?,
            (None, None) => unreachable!("validated: contrast or table"),
        };
        ctx.write_table("stimuli", &stimulus_table(texts, labels, Vec::new()))
    }
}

fn generated(contrast: Contrast, params: &ContrastParams) -> Result<(Vec<String>, Vec<String>), StageError> {
    let items = corpus::contrast_set(&params.grammar, contrast, params.n, params.words).map_err(|e| {
        StageError::failed(format!("contrast `{}`: {e}", contrast.as_str()))
            .with_hint("see corpus.grammar's params under `grammar` (e.g. `vocabulary.nouns_abstract`)")
    })?;
    Ok(items.iter().map(|item| (item.text(), item.condition.to_string())).unzip())
}

/// The `text` and `label` columns of a user's table, as strings.
fn from_table(param: &str, path: &Path) -> Result<(Vec<String>, Vec<String>), StageError> {
    let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let batch: RecordBatch =
        if is_csv { crate::kinds::load::read_csv(path, b',', true)? } else { crate::artifact::read_batch(path)? };
    let column = |name: &str| -> Result<Vec<String>, StageError> {
        let array = batch.column_by_name(name).ok_or_else(|| {
            let names: Vec<&str> = batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
            StageError::failed(format!("param `table` ({param}): no `{name}` column; it has {}", names.join(", ")))
                .with_hint("a stimulus table has one row per item with `text` and `label` columns")
        })?;
        let strings = arrow::compute::cast(array, &DataType::Utf8)
            .map_err(|e| StageError::failed(format!("param `table` ({param}): column `{name}`: {e}")))?;
        let strings = strings.as_string::<i32>();
        if let Some(row) = (0..strings.len()).find(|&k| strings.is_null(k) || strings.value(k).trim().is_empty()) {
            return Err(StageError::failed(format!("param `table` ({param}): row {} has no `{name}`", row + 1))
                .with_hint("every item needs a text and a label"));
        }
        Ok((0..strings.len()).map(|k| strings.value(k).to_string()).collect())
    };
    let (texts, labels) = (column("text")?, column("label")?);
    if texts.is_empty() {
        return Err(StageError::failed(format!("param `table` ({param}): the table has no rows")));
    }
    Ok((texts, labels))
}
