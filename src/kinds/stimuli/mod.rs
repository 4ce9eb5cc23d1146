//! Stimulus sets for unit-selectivity analyses: `stimuli.langloc`
//! (langloc.rs), the Fedorenko et al. (2010) language localizer read from
//! its CSV files, and `stimuli.contrast` (contrast.rs), category contrasts
//! from `corpus.grammar`'s lexicon or a user's table. Both write
//! `stimuli.parquet` with at least `item` (uint32, 0..n in order), `text`
//! and `label` (utf8), the `items` table `topo.responses` reads.
//!
//! The competence stimuli have tables of their own: `stimuli.minimal_pairs`
//! (minimal_pairs.rs: corpus.grammar's agreement pairs or BLiMP JSONL),
//! `stimuli.syntaxgym` (syntaxgym.rs: SyntaxGym suites) and `stimuli.facts`
//! (facts.rs: corpus.grammar's fact probes or a user's JSONL), read by
//! `competence.minimal_pairs` and `competence.facts`.

pub mod contrast;
pub mod facts;
pub mod langloc;
pub mod minimal_pairs;
pub mod sentiment;
pub mod syntaxgym;

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{Field, Schema};

/// The stimulus table: `item`, `text`, `label`, then `extra` columns.
fn stimulus_table(texts: Vec<String>, labels: Vec<String>, extra: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let items: Vec<u32> = (0..texts.len() as u32).collect();
    let mut columns: Vec<(&str, ArrayRef)> = vec![
        ("item", Arc::new(UInt32Array::from(items))),
        ("text", Arc::new(StringArray::from(texts))),
        ("label", Arc::new(StringArray::from(labels))),
    ];
    columns.extend(extra);
    let fields: Vec<Field> =
        columns.iter().map(|(name, array)| Field::new(*name, array.data_type().clone(), false)).collect();
    let arrays = columns.into_iter().map(|(_, array)| array).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("columns of one length")
}
