//! Corpora for training language models in the engine: `corpus.grammar`
//! (grammar.rs), the generated English-like language of `crate::corpus`.

mod grammar;

pub use grammar::CorpusGrammar;
