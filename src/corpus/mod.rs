//! Generated corpora for training small language models in the engine (the
//! generator behind `corpus.grammar`, src/kinds/corpus/): an English-like language with known
//! word categories, deterministic from a seed, and stimuli made from the same
//! lexicon and grammar.
//!
//! - [`grammar`]: [`GrammarConfig`] (usable as a stage's params),
//!   [`generate`] -> [`Corpus`] (documents of sentences of [`Token`]s, the
//!   text, the per-token table [`Corpus::rows`]).
//! - [`lexicon`]: built-in English word lists per [`Category`], with number
//!   forms, noun classes (animate, concrete inanimate, abstract), selectional
//!   restrictions and adjective valence; a configuration takes a seeded subset.
//! - [`stimuli`]: [`minimal_pairs`] (subject-verb agreement, across PPs and
//!   relative clauses, determiner-noun agreement), [`contrast_set`] (nouns vs
//!   verbs, animate vs inanimate, concrete vs abstract, sentences vs word
//!   lists) and [`sentiment_set`] (valence adjectives under negation).
//! - [`facts`]: invented people with a home and a pet, stated in the corpus
//!   in two templates, one withheld for some people, and completion probes.
//!
//! # The grammar
//!
//! ```text
//! S      -> NP VP "."
//! NP     -> Det Adj{0,max_adjectives} N (PP | RC)?     modifier only above max_depth
//! PP     -> P NP                                       P allowed for the head's class
//! RC     -> "that" VP                                  subject relative: VP agrees with the head
//!         | "that" NP V_trans                          object relative: head is V_trans's object
//! VP     -> V_intrans | V_trans NP | Cop ("not")? Adj
//! Det    -> the | this/these | every/all
//! Cop    -> is/are
//! ```
//!
//! Depth: the noun phrases of the main clause are at depth 0, those inside a
//! PP or relative clause one deeper than the noun phrase it modifies. A
//! noun phrase at depth `< max_depth` takes a relative clause with chance
//! `p_relative_clause`, else a PP with chance `p_prepositional_phrase`;
//! an object relative is chosen with chance `p_object_relative`.
//!
//! Agreement: every verb and copula agrees in number with the head noun of
//! its own subject (for a subject relative, the noun it modifies; for an
//! object relative, the relative clause's own subject), never with a nearer
//! noun; number-marking determiners agree with their noun. Selectional
//! restrictions: intransitive verbs and adjectives list the noun classes
//! they combine with; transitive verbs take animate subjects and list their
//! objects' classes; prepositions list the heads they modify and the nouns
//! they take. So animacy and concreteness are distributional contrasts.
//!
//! Text: tokens separated by single spaces, the period a token of its own
//! ("the dog near the cats runs ."), one sentence per line, documents
//! separated by a blank line; all lower case except the invented proper
//! names of the fact sentences. Every surface form has one category and
//! number, so the table can be recovered from the text with
//! [`Lexicon::lookup`].
//!
//! Determinism: everything is a function of the configuration. Each product
//! (lexicon, sentences, facts, their placement, each phenomenon's pairs,
//! each contrast, sentiment) draws from its own ChaCha8 stream of the seed,
//! so e.g. more documents leave the lexicon, the facts and the stimuli as
//! they are.
//!
//! The fact sentences ([`facts`]) add three forms the grammar sentences do
//! not have: proper nouns as noun phrases, a VP-attached PP ("Mira lives in
//! Tobor") and a predicate nominal ("the home of Mira is Tobor").
//!
//! Not there: tense other than the present, auxiliaries, questions,
//! coordination, negation outside copular verb phrases, frequency matching
//! of the contrast word lists, and a check that stimuli do not also occur in
//! the corpus (short minimal-pair sentences can).

pub mod facts;
pub mod grammar;
pub mod lexicon;
pub mod stimuli;
mod words;

#[cfg(test)]
mod check;
#[cfg(test)]
mod tests;

pub use facts::{Entity, FactConfig, FactProbe, Relation, Template};
pub use grammar::{generate, Corpus, CorpusError, Document, GrammarConfig, Sentence, SentenceKind, Token, TokenRow};
pub use lexicon::{Category, Lexicon, NounClass, Number, Valence, VocabularyConfig};
pub use stimuli::{
    contrast_set, minimal_pairs, sentiment_set, Contrast, ContrastItem, MinimalPair, Phenomenon, SentimentItem,
};
