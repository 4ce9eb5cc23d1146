//! The generator: configuration, the corpus types and the random grammar
//! (see the module doc of [`super`] for the rules).

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::facts::{self, Entity, FactConfig, FactProbe};
use super::lexicon::{
    Category, ClassSet, Determiner, Lexicon, NounClass, Number, VocabularyConfig, COPULA, EVERY, NEGATION, PERIOD,
    RELATIVE_PRONOUN, THE, THIS,
};

/// Parameters of `corpus.grammar`; usable directly as a stage's params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrammarConfig {
    /// Everything (lexicon, sentences, facts, stimuli) is a function of it.
    pub seed: u64,
    pub documents: usize,
    /// Grammar sentences per document (fact sentences come on top).
    pub sentences_per_document: usize,
    /// Noun phrases nested in `max_depth` PPs or relative clauses take no
    /// further PP or relative clause; 0 means none at all.
    pub max_depth: usize,
    /// Chance that a noun phrase above `max_depth` takes a relative clause.
    pub p_relative_clause: f64,
    /// Chance that a noun phrase above `max_depth` takes a PP (exclusive of
    /// a relative clause: `p_relative_clause + p_prepositional_phrase <= 1`).
    pub p_prepositional_phrase: f64,
    /// Share of relative clauses that are object relatives ("that the cats chase").
    pub p_object_relative: f64,
    /// Chance of each further adjective before a noun, up to `max_adjectives`.
    pub p_adjective: f64,
    pub max_adjectives: usize,
    /// Chance that a noun is plural.
    pub p_plural: f64,
    /// Chance of a transitive verb phrase (for animate subjects; others
    /// cannot take transitive verbs and share the rest in proportion).
    pub p_transitive: f64,
    /// Chance of a copular verb phrase ("is (not) happy").
    pub p_copular: f64,
    /// Chance of "not" in a copular verb phrase.
    pub p_negation: f64,
    pub vocabulary: VocabularyConfig,
    pub facts: FactConfig,
}

impl Default for GrammarConfig {
    fn default() -> Self {
        GrammarConfig {
            seed: 0,
            documents: 100,
            sentences_per_document: 20,
            max_depth: 2,
            p_relative_clause: 0.15,
            p_prepositional_phrase: 0.2,
            p_object_relative: 0.5,
            p_adjective: 0.3,
            max_adjectives: 2,
            p_plural: 0.5,
            p_transitive: 0.4,
            p_copular: 0.2,
            p_negation: 0.2,
            vocabulary: VocabularyConfig::default(),
            facts: FactConfig::default(),
        }
    }
}

/// An invalid [`GrammarConfig`] or request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corpus.grammar: {0}")]
pub struct CorpusError(pub String);

/// The random streams of one seed: each product has its own, so that e.g.
/// more documents do not change the lexicon or the stimuli.
pub(crate) mod stream {
    pub const LEXICON: u64 = 0;
    pub const SENTENCES: u64 = 1;
    pub const FACTS: u64 = 2;
    pub const FACT_PLACEMENT: u64 = 3;
    pub const SENTIMENT: u64 = 4;
    /// Plus the phenomenon's index.
    pub const PAIRS: u64 = 100;
    /// Plus the contrast's index.
    pub const CONTRASTS: u64 = 200;
}

pub(crate) fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

impl GrammarConfig {
    pub fn validate(&self) -> Result<(), CorpusError> {
        let err = |message: String| Err(CorpusError(message));
        let probabilities = [
            ("p_relative_clause", self.p_relative_clause),
            ("p_prepositional_phrase", self.p_prepositional_phrase),
            ("p_object_relative", self.p_object_relative),
            ("p_adjective", self.p_adjective),
            ("p_plural", self.p_plural),
            ("p_transitive", self.p_transitive),
            ("p_copular", self.p_copular),
            ("p_negation", self.p_negation),
            ("facts.held_out_fraction", self.facts.held_out_fraction),
        ];
        for (name, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return err(format!("{name} is {p}, must be in [0, 1]"));
            }
        }
        if self.p_relative_clause + self.p_prepositional_phrase > 1.0 + 1e-12 {
            return err("p_relative_clause + p_prepositional_phrase must be at most 1".into());
        }
        if self.p_transitive + self.p_copular > 1.0 + 1e-12 {
            return err("p_transitive + p_copular must be at most 1".into());
        }
        if self.max_depth > 10 {
            return err(format!("max_depth is {}, must be at most 10", self.max_depth));
        }
        if self.max_adjectives > 5 {
            return err(format!("max_adjectives is {}, must be at most 5", self.max_adjectives));
        }
        if self.documents == 0 || self.sentences_per_document == 0 {
            return err("documents and sentences_per_document must be at least 1".into());
        }
        self.vocabulary.validate().map_err(CorpusError)?;
        self.facts.validate().map_err(CorpusError)
    }

    /// The lexicon of this seed and vocabulary (what [`generate`] uses).
    pub fn lexicon(&self) -> Lexicon {
        let mut rng = rng_for(self.seed, stream::LEXICON);
        let places = if self.facts.entities > 0 { self.facts.places } else { 0 };
        Lexicon::build(&mut rng, &self.vocabulary, self.facts.entities, places)
    }
}

/// One word (or the period) with its category and, where the category marks
/// it, its number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub text: String,
    pub category: Category,
    pub number: Option<Number>,
}

impl Token {
    pub(crate) fn new(text: &str, category: Category, number: Option<Number>) -> Token {
        Token { text: text.to_string(), category, number }
    }
}

/// Where a sentence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SentenceKind {
    /// Drawn from the grammar.
    Grammar,
    /// A fact statement about an entity ([`super::facts`]).
    Fact,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sentence {
    pub tokens: Vec<Token>,
    pub kind: SentenceKind,
}

/// Tokens joined by single spaces (the period too: "the dog runs ."), so
/// that splitting the text at whitespace gives back the tokens.
pub fn join(tokens: &[Token]) -> String {
    let words: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
    words.join(" ")
}

impl Sentence {
    pub fn text(&self) -> String {
        join(&self.tokens)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub sentences: Vec<Sentence>,
}

/// A generated corpus.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub documents: Vec<Document>,
    /// The entities of the fact sentences (empty without facts).
    pub entities: Vec<Entity>,
    pub lexicon: Lexicon,
}

/// One row of the per-token table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRow<'a> {
    pub document: usize,
    pub sentence: usize,
    /// Position in the sentence, from 0.
    pub position: usize,
    pub word: &'a str,
    pub category: Category,
    pub number: Option<Number>,
    pub kind: SentenceKind,
}

impl Corpus {
    /// One sentence per line, documents separated by a blank line, a final
    /// newline; words separated by single spaces (see [`join`]).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (i, document) in self.documents.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            for sentence in &document.sentences {
                out.push_str(&sentence.text());
                out.push('\n');
            }
        }
        out
    }

    /// The per-token table, in text order.
    pub fn rows(&self) -> impl Iterator<Item = TokenRow<'_>> {
        self.documents.iter().enumerate().flat_map(|(d, document)| {
            document.sentences.iter().enumerate().flat_map(move |(s, sentence)| {
                sentence.tokens.iter().enumerate().map(move |(position, token)| TokenRow {
                    document: d,
                    sentence: s,
                    position,
                    word: &token.text,
                    category: token.category,
                    number: token.number,
                    kind: sentence.kind,
                })
            })
        })
    }

    pub fn sentences(&self) -> impl Iterator<Item = &Sentence> {
        self.documents.iter().flat_map(|d| &d.sentences)
    }

    /// Completion probes of the facts: every entity and relation in both
    /// templates, each marked whether its statement is in the corpus.
    pub fn fact_probes(&self) -> Vec<FactProbe> {
        facts::probes(&self.entities)
    }
}

/// Generates the corpus of `config`.
pub fn generate(config: &GrammarConfig) -> Result<Corpus, CorpusError> {
    config.validate()?;
    let lexicon = config.lexicon();
    let mut generator = Generator::new(&lexicon, config, rng_for(config.seed, stream::SENTENCES));
    let mut documents: Vec<Document> = (0..config.documents)
        .map(|_| Document { sentences: (0..config.sentences_per_document).map(|_| generator.sentence()).collect() })
        .collect();
    let entities = facts::entities(config, &lexicon);
    let statements = facts::statements(&entities, config.facts.repetitions);
    let mut rng = rng_for(config.seed, stream::FACT_PLACEMENT);
    for tokens in statements {
        let document = &mut documents[rng.random_range(0..config.documents)];
        let position = rng.random_range(0..=document.sentences.len());
        document.sentences.insert(position, Sentence { tokens, kind: SentenceKind::Fact });
    }
    Ok(Corpus { documents, entities, lexicon })
}

/// What a noun phrase takes after its noun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Modifier {
    /// A relative clause or PP at the configured rates, above `max_depth`.
    Random,
    None,
    /// A PP whose noun has this number, without modifiers.
    Pp(Number),
    /// "that" + transitive verb + object of this number (animate heads only).
    SubjectRelative(Number),
    /// "that" + subject of this number + transitive verb.
    ObjectRelative(Number),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct NpSpec {
    pub allowed: ClassSet,
    pub number: Option<Number>,
    pub modifier: Modifier,
    pub determiner: Option<Determiner>,
}

impl NpSpec {
    pub fn random(allowed: ClassSet) -> NpSpec {
        NpSpec { allowed, number: None, modifier: Modifier::Random, determiner: None }
    }
}

/// Token indices of a noun phrase the generator made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NpInfo {
    pub class: NounClass,
    pub number: Number,
    pub determiner: usize,
    pub head: usize,
    /// The noun of a forced modifier (PP noun, relative clause's object or subject).
    pub inner_head: Option<usize>,
    /// The verb of a forced relative clause.
    pub inner_verb: Option<usize>,
}

/// The random grammar, writing tokens into `tokens`.
pub(crate) struct Generator<'a> {
    pub lexicon: &'a Lexicon,
    pub config: &'a GrammarConfig,
    pub rng: ChaCha8Rng,
    pub tokens: Vec<Token>,
    /// Leave out adjectives with a valence (sentiment stimuli).
    pub neutral: bool,
}

impl<'a> Generator<'a> {
    pub fn new(lexicon: &'a Lexicon, config: &'a GrammarConfig, rng: ChaCha8Rng) -> Generator<'a> {
        Generator { lexicon, config, rng, tokens: Vec::new(), neutral: false }
    }

    fn push(&mut self, text: &str, category: Category, number: Option<Number>) -> usize {
        self.tokens.push(Token::new(text, category, number));
        self.tokens.len() - 1
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random::<f64>() < p
    }

    /// S -> NP VP ".", as a grammar sentence.
    pub fn sentence(&mut self) -> Sentence {
        self.tokens.clear();
        let subject = self.noun_phrase(0, NpSpec::random(ClassSet::ALL));
        self.verb_phrase(0, subject.class, subject.number);
        self.push(PERIOD, Category::Punctuation, None);
        Sentence { tokens: std::mem::take(&mut self.tokens), kind: SentenceKind::Grammar }
    }

    fn number(&mut self) -> Number {
        if self.chance(self.config.p_plural) {
            Number::Plural
        } else {
            Number::Singular
        }
    }

    fn determiner(&mut self) -> Determiner {
        // "the" half the time, the number-marking ones a quarter each.
        if self.chance(0.5) {
            THE
        } else {
            *[THIS, EVERY].choose(&mut self.rng).expect("non-empty")
        }
    }

    /// NP -> Det Adj* N (PP | RC)?; returns its class and number.
    pub fn noun_phrase(&mut self, depth: usize, spec: NpSpec) -> NpInfo {
        let mut allowed = spec.allowed;
        if let Modifier::SubjectRelative(_) = spec.modifier {
            allowed = allowed.intersect(ClassSet::ANIMATE);
        }
        let classes = self.lexicon.present(allowed);
        let class = *classes.choose(&mut self.rng).expect("the lexicon covers every allowed class");
        let nouns: Vec<_> = self.lexicon.nouns_of(class).collect();
        let noun = (*nouns.choose(&mut self.rng).expect("a noun of a present class")).clone();
        let number = spec.number.unwrap_or_else(|| self.number());
        let determiner = spec.determiner.unwrap_or_else(|| self.determiner());
        let det_number = determiner.marks_number().then_some(number);
        let determiner = self.push(determiner.form(number), Category::Determiner, det_number);
        let mut adjectives: Vec<&'static str> = Vec::new();
        while adjectives.len() < self.config.max_adjectives && self.chance(self.config.p_adjective) {
            let neutral = self.neutral;
            let candidates: Vec<&'static str> = self
                .lexicon
                .adjectives
                .iter()
                .filter(|a| a.classes.contains(class) && !adjectives.contains(&a.word))
                .filter(|a| !neutral || a.valence.is_none())
                .map(|a| a.word)
                .collect();
            let Some(&word) = candidates.choose(&mut self.rng) else { break };
            adjectives.push(word);
            self.push(word, Category::Adjective, None);
        }
        let head = self.push(noun.form(number), class.category(), Some(number));
        let mut info = NpInfo { class, number, determiner, head, inner_head: None, inner_verb: None };
        match spec.modifier {
            Modifier::None => {}
            Modifier::Random => {
                if depth < self.config.max_depth {
                    let u = self.rng.random::<f64>();
                    if u < self.config.p_relative_clause {
                        self.relative_clause(depth + 1, class, number);
                    } else if u < self.config.p_relative_clause + self.config.p_prepositional_phrase {
                        self.prepositional_phrase(depth + 1, class, NpSpec::random(ClassSet::ALL));
                    }
                }
            }
            Modifier::Pp(inner) => {
                let spec = NpSpec { number: Some(inner), modifier: Modifier::None, ..NpSpec::random(ClassSet::ALL) };
                info.inner_head = Some(self.prepositional_phrase(depth + 1, class, spec).head);
            }
            Modifier::SubjectRelative(inner) => {
                self.push(RELATIVE_PRONOUN, Category::RelativePronoun, None);
                let verb = self.lexicon.transitive.choose(&mut self.rng).expect("transitive verbs").clone();
                info.inner_verb = Some(self.push(verb.form(number), Category::VerbTransitive, Some(number)));
                let spec = NpSpec { number: Some(inner), modifier: Modifier::None, ..NpSpec::random(verb.object) };
                info.inner_head = Some(self.noun_phrase(depth + 1, spec).head);
            }
            Modifier::ObjectRelative(inner) => {
                self.push(RELATIVE_PRONOUN, Category::RelativePronoun, None);
                let spec =
                    NpSpec { number: Some(inner), modifier: Modifier::None, ..NpSpec::random(ClassSet::ANIMATE) };
                let subject = self.noun_phrase(depth + 1, spec);
                info.inner_head = Some(subject.head);
                info.inner_verb = Some(self.object_relative_verb(class, inner));
            }
        }
        info
    }

    /// The transitive verb closing an object relative on a `head` noun.
    fn object_relative_verb(&mut self, head: NounClass, number: Number) -> usize {
        let verbs: Vec<_> = self.lexicon.transitive.iter().filter(|v| v.object.contains(head)).collect();
        let verb = verbs.choose(&mut self.rng).expect("every present class is some verb's object");
        let word = verb.form(number);
        self.push(word, Category::VerbTransitive, Some(number))
    }

    /// RC -> "that" VP (subject relative) | "that" NP V_trans (object
    /// relative); the clause's noun phrases are at `depth`.
    fn relative_clause(&mut self, depth: usize, head: NounClass, number: Number) {
        let object = self.chance(self.config.p_object_relative);
        self.push(RELATIVE_PRONOUN, Category::RelativePronoun, None);
        if object {
            let subject = self.noun_phrase(depth, NpSpec::random(ClassSet::ANIMATE));
            self.object_relative_verb(head, subject.number);
        } else {
            self.verb_phrase(depth, head, number);
        }
    }

    /// PP -> P NP, for a head of class `head`; the PP's noun phrase is at `depth`.
    fn prepositional_phrase(&mut self, depth: usize, head: NounClass, spec: NpSpec) -> NpInfo {
        let prepositions: Vec<_> = self.lexicon.prepositions.iter().filter(|p| p.head.contains(head)).collect();
        let preposition = *prepositions.choose(&mut self.rng).expect("every present class takes some preposition");
        self.push(preposition.word, Category::Preposition, None);
        self.noun_phrase(depth, NpSpec { allowed: spec.allowed.intersect(preposition.object), ..spec })
    }

    /// VP -> V_intrans | V_trans NP | Cop (not)? Adj, agreeing with a subject
    /// of class `class` and number `number`; returns the verb's (or
    /// copula's) index.
    pub fn verb_phrase(&mut self, depth: usize, class: NounClass, number: Number) -> usize {
        let transitive = if class == NounClass::Animate { self.config.p_transitive } else { 0.0 };
        let copular = self.config.p_copular;
        let intransitive = (1.0 - self.config.p_transitive - self.config.p_copular).max(0.0);
        let total = transitive + copular + intransitive;
        let u = self.rng.random::<f64>() * total;
        if u < transitive {
            let verb = self.lexicon.transitive.choose(&mut self.rng).expect("transitive verbs").clone();
            let index = self.push(verb.form(number), Category::VerbTransitive, Some(number));
            self.noun_phrase(depth, NpSpec::random(verb.object));
            index
        } else if u < transitive + copular || total == 0.0 {
            self.copular(class, number)
        } else {
            let verbs: Vec<_> = self.lexicon.intransitive.iter().filter(|v| v.subject.contains(class)).collect();
            let verb = verbs.choose(&mut self.rng).expect("every present class is some verb's subject");
            let word = verb.form(number);
            self.push(word, Category::VerbIntransitive, Some(number))
        }
    }

    /// Cop (not)? Adj; returns the copula's index.
    fn copular(&mut self, class: NounClass, number: Number) -> usize {
        let index =
            self.push(if number == Number::Singular { COPULA.0 } else { COPULA.1 }, Category::Copula, Some(number));
        if self.chance(self.config.p_negation) {
            self.push(NEGATION, Category::Negation, None);
        }
        let neutral = self.neutral;
        let adjectives: Vec<_> = self
            .lexicon
            .adjectives
            .iter()
            .filter(|a| a.classes.contains(class) && (!neutral || a.valence.is_none()))
            .collect();
        let word = adjectives.choose(&mut self.rng).expect("every present class takes some adjective").word;
        self.push(word, Category::Adjective, None);
        index
    }

    /// Takes the tokens written so far.
    pub fn take(&mut self) -> Vec<Token> {
        std::mem::take(&mut self.tokens)
    }

    pub fn push_token(&mut self, text: &str, category: Category, number: Option<Number>) -> usize {
        self.push(text, category, number)
    }
}
