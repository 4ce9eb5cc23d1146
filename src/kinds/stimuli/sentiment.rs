//! `stimuli.sentiment`: the generated sentiment task Topoformer's
//! classifier trains on (`crate::corpus::sentiment_set`): sentences
//! `Subject is/are (not)? Adj .` whose label is the predicate adjective's
//! valence, flipped by "not"; the subject is a random noun phrase of
//! corpus.grammar's grammar with neutral adjectives only, so the predicate
//! alone decides.
//!
//! Params: `n` items per label, `offset` items per label skipped first (a
//! test set is the same generator's next items: `offset` = the training
//! set's `n`), `grammar` (corpus.grammar's params; the seed and vocabulary
//! decide the lexicon, so train and test sets share it). Labels alternate
//! (positive, negative), negation in every other pair.
//!
//! Output `stimuli` (stimuli.parquet): `item` (uint32, 0..2n), `text`,
//! `label` (`positive` | `negative`), `negated` (bool). Short sentences can
//! repeat between two slices of the generator (the grammar is small).

use std::sync::Arc;

use arrow::array::BooleanArray;
use serde::{Deserialize, Serialize};

use super::stimulus_table;
use crate::corpus::{self, GrammarConfig};
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentimentParams {
    /// Items per label.
    #[serde(default = "default_n")]
    pub n: usize,
    /// Items per label skipped before these.
    #[serde(default)]
    pub offset: usize,
    /// corpus.grammar's params.
    #[serde(default)]
    pub grammar: GrammarConfig,
}

fn default_n() -> usize {
    200
}

pub struct StimuliSentiment;

impl Kind for StimuliSentiment {
    type Params = SentimentParams;
    const NAME: &'static str = "stimuli.sentiment";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "generated sentiment sentences (valence adjective, negation flips it) from corpus.grammar's lexicon";
    const OUTPUTS: &'static [&'static str] = &["stimuli"];

    fn validate(&self, params: &SentimentParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if params.n == 0 {
            errors.push(ParamError::new("n", "n must be at least 1 item per label").hint("e.g. `n: 200`"));
        }
        if let Err(error) = params.grammar.validate() {
            errors.push(ParamError::new("grammar", error.0));
        }
        errors
    }

    fn run(&self, params: &SentimentParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let items = corpus::sentiment_set(&params.grammar, params.offset + params.n)
            .map_err(|e| StageError::failed(format!("sentiment items: {e}")))?;
        let kept = &items[2 * params.offset..];
        let texts = kept.iter().map(|item| item.text()).collect();
        let labels = kept.iter().map(|item| item.label.as_str().to_string()).collect();
        let negated = BooleanArray::from(kept.iter().map(|item| item.negated).collect::<Vec<_>>());
        ctx.write_table("stimuli", &stimulus_table(texts, labels, vec![("negated", Arc::new(negated))]))
    }
}
