//! `corpus.grammar`: a generated English-like corpus (see `crate::corpus`
//! for the grammar), deterministic from its params. Outputs: `text`
//! (corpus.txt: one sentence per line, documents separated by a blank line),
//! `tokens` (one row per token: document, sentence, position, word,
//! category, number, sentence kind) and, when the params ask for facts,
//! `facts` (one row per completion probe: entity, relation, template,
//! prompt, answer, whether the sentence is in the corpus).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};

use crate::corpus::{self, GrammarConfig, SentenceKind};
use crate::stage::{Kind, ParamError, StageContext, StageError};

pub struct CorpusGrammar;

impl Kind for CorpusGrammar {
    type Params = GrammarConfig;
    const NAME: &'static str = "corpus.grammar";
    // 2: provenance (stage, key, params) in the Parquet tables' metadata.
    const VERSION: u32 = 2;
    const SUMMARY: &'static str =
        "a generated English-like corpus with known word categories, agreement, relative clauses and facts";

    fn outputs(&self, params: &GrammarConfig) -> Vec<String> {
        let mut outputs = vec!["text".to_string(), "tokens".to_string()];
        if params.facts.entities > 0 {
            outputs.push("facts".to_string());
        }
        outputs
    }

    fn validate(&self, params: &GrammarConfig) -> Vec<ParamError> {
        match params.validate() {
            Ok(()) => Vec::new(),
            Err(error) => vec![ParamError::new("", error.0)],
        }
    }

    fn run(&self, params: &GrammarConfig, ctx: &mut StageContext) -> Result<(), StageError> {
        let corpus = corpus::generate(params).map_err(|e| StageError::failed(e.to_string()))?;
        ctx.check_cancelled()?;
        let path = ctx.out_dir.join("corpus.txt");
        std::fs::write(&path, corpus.text()).map_err(|e| StageError::failed(format!("{}: {e}", path.display())))?;
        ctx.add_file("text", "corpus.txt");
        ctx.write_table("tokens", &token_table(&corpus))?;
        if params.facts.entities > 0 {
            ctx.write_table("facts", &fact_table(&corpus))?;
        }
        Ok(())
    }
}

/// A table of the given columns; only `number` (none for words without
/// number) may hold nulls, so the schema does not depend on the data.
fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> =
        columns.iter().map(|(name, array)| Field::new(*name, array.data_type().clone(), *name == "number")).collect();
    let arrays = columns.into_iter().map(|(_, array)| array).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("columns of one length")
}

fn int_column(values: impl Iterator<Item = usize>) -> ArrayRef {
    Arc::new(Int32Array::from(values.map(|v| v as i32).collect::<Vec<_>>()))
}

fn text_column<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from(values.collect::<Vec<_>>()))
}

fn token_table(corpus: &corpus::Corpus) -> RecordBatch {
    let rows: Vec<_> = corpus.rows().collect();
    let kind = |k: SentenceKind| match k {
        SentenceKind::Grammar => "grammar",
        SentenceKind::Fact => "fact",
    };
    batch(vec![
        ("document", int_column(rows.iter().map(|r| r.document))),
        ("sentence", int_column(rows.iter().map(|r| r.sentence))),
        ("position", int_column(rows.iter().map(|r| r.position))),
        ("word", text_column(rows.iter().map(|r| Some(r.word)))),
        ("category", text_column(rows.iter().map(|r| Some(r.category.as_str())))),
        ("number", text_column(rows.iter().map(|r| r.number.map(|n| n.as_str())))),
        ("kind", text_column(rows.iter().map(|r| Some(kind(r.kind))))),
    ])
}

fn fact_table(corpus: &corpus::Corpus) -> RecordBatch {
    let probes = corpus.fact_probes();
    let prompts: Vec<String> = probes.iter().map(|p| p.prompt_text()).collect();
    let entity_names: Vec<&str> = probes.iter().map(|p| corpus.entities[p.entity].name.as_str()).collect();
    batch(vec![
        ("entity", text_column(entity_names.iter().map(|s| Some(*s)))),
        ("relation", text_column(probes.iter().map(|p| Some(p.relation.as_str())))),
        ("template", text_column(probes.iter().map(|p| Some(p.template.as_str())))),
        ("prompt", text_column(prompts.iter().map(|s| Some(s.as_str())))),
        ("answer", text_column(probes.iter().map(|p| Some(p.answer.text.as_str())))),
        ("in_training", Arc::new(BooleanArray::from(probes.iter().map(|p| p.in_training).collect::<Vec<_>>()))),
    ])
}
