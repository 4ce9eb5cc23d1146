//! Corpora for training language models in the engine: `corpus.grammar`
//! (grammar.rs), the generated English-like language of `crate::corpus`,
//! and `corpus.text` (text.rs), a corpus a user brings, split by document
//! and tokenised into token ids.

mod grammar;
mod text;

pub use grammar::CorpusGrammar;
pub use text::{CorpusText, CorpusTextParams, TokenizerChoice};
