//! Facts for functional competence: invented people with two attributes,
//! stated in the corpus text in two templates each, one of them withheld for
//! some people, and completion probes for all of them.
//!
//! | relation | statement template         | paraphrase template               |
//! |----------|----------------------------|-----------------------------------|
//! | home     | `Mira lives in Tobor .`    | `the home of Mira is Tobor .`     |
//! | pet      | `Mira feeds the horse .`   | `the pet of Mira is the horse .`  |
//!
//! Homes are invented place names (several people share one), pets are the
//! lexicon's animals. Every statement appears `repetitions` times in the
//! corpus, at seeded random places among the grammar sentences. Held-out
//! people (`held_out_fraction` of them) have only their statements in the
//! corpus, never the paraphrases, so the paraphrase probes of held-out people
//! ask for knowledge the model saw only in the other form (as in the mixed
//! training of Allen-Zhu & Li's "Physics of language models 3.1"); the
//! probes of the other people and the statement probes are seen in training.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::grammar::{rng_for, stream, GrammarConfig, Token};
use super::lexicon::{Category, Lexicon, Number, FEEDS, HOME, IN, LIVES, OF, PERIOD, PET};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FactConfig {
    /// People with facts; 0 for a corpus without fact sentences.
    pub entities: usize,
    /// Distinct homes.
    pub places: usize,
    /// Times each fact sentence appears in the corpus.
    pub repetitions: usize,
    /// Share of people whose paraphrase sentences are withheld.
    pub held_out_fraction: f64,
}

impl Default for FactConfig {
    fn default() -> Self {
        FactConfig { entities: 20, places: 8, repetitions: 3, held_out_fraction: 0.25 }
    }
}

impl FactConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.entities > 1000 || self.places > 1000 {
            return Err("facts.entities and facts.places must be at most 1000".into());
        }
        if self.entities > 0 && (self.places == 0 || self.repetitions == 0) {
            return Err("facts.places and facts.repetitions must be at least 1 when there are entities".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    Home,
    Pet,
}

impl Relation {
    pub const ALL: [Relation; 2] = [Relation::Home, Relation::Pet];

    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Home => "home",
            Relation::Pet => "pet",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    /// "Mira lives in Tobor ." / "Mira feeds the horse ."
    Statement,
    /// "the home of Mira is Tobor ." / "the pet of Mira is the horse ."
    Paraphrase,
}

impl Template {
    pub const ALL: [Template; 2] = [Template::Statement, Template::Paraphrase];

    pub fn as_str(self) -> &'static str {
        match self {
            Template::Statement => "statement",
            Template::Paraphrase => "paraphrase",
        }
    }
}

/// A person with a home and a pet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    pub name: String,
    pub home: String,
    /// Singular form of an animal noun.
    pub pet: String,
    /// Whether the paraphrase sentences are withheld from the corpus.
    pub held_out: bool,
}

/// A completion probe: `prompt` should be continued by `answer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactProbe {
    /// Index into the corpus's entities.
    pub entity: usize,
    pub relation: Relation,
    pub template: Template,
    pub prompt: Vec<Token>,
    pub answer: Token,
    /// Whether this sentence is in the corpus (false: held out).
    pub in_training: bool,
}

impl FactProbe {
    pub fn prompt_text(&self) -> String {
        super::grammar::join(&self.prompt)
    }
}

/// The people of `config` (the lexicon's invented names).
pub(crate) fn entities(config: &GrammarConfig, lexicon: &Lexicon) -> Vec<Entity> {
    let count = config.facts.entities;
    if count == 0 {
        return Vec::new();
    }
    let mut rng = rng_for(config.seed, stream::FACTS);
    let animals: Vec<&'static str> = lexicon.nouns.iter().filter(|n| n.animal).map(|n| n.singular).collect();
    let mut order: Vec<usize> = (0..count).collect();
    order.shuffle(&mut rng);
    let held_out_count = (config.facts.held_out_fraction * count as f64).round() as usize;
    let held_out: Vec<usize> = order[..held_out_count].to_vec();
    (0..count)
        .map(|i| Entity {
            name: lexicon.names[i].clone(),
            home: lexicon.places[rng.random_range(0..lexicon.places.len())].clone(),
            pet: animals.choose(&mut rng).expect("the lexicon has animals").to_string(),
            held_out: held_out.contains(&i),
        })
        .collect()
}

/// The sentence of one fact in one template, and the index of its answer.
pub fn sentence(entity: &Entity, relation: Relation, template: Template) -> (Vec<Token>, usize) {
    let sg = Some(Number::Singular);
    let name = Token::new(&entity.name, Category::ProperNoun, sg);
    let the = || Token::new("the", Category::Determiner, None);
    let of = || Token::new(OF, Category::Preposition, None);
    let is = || Token::new("is", Category::Copula, sg);
    let period = || Token::new(PERIOD, Category::Punctuation, None);
    match (relation, template) {
        (Relation::Home, Template::Statement) => {
            let home = Token::new(&entity.home, Category::ProperNoun, sg);
            let verb = Token::new(LIVES, Category::VerbIntransitive, sg);
            (vec![name, verb, Token::new(IN, Category::Preposition, None), home, period()], 3)
        }
        (Relation::Home, Template::Paraphrase) => {
            let home = Token::new(&entity.home, Category::ProperNoun, sg);
            (vec![the(), Token::new(HOME, Category::NounInanimate, sg), of(), name, is(), home, period()], 5)
        }
        (Relation::Pet, Template::Statement) => {
            let pet = Token::new(&entity.pet, Category::NounAnimate, sg);
            (vec![name, Token::new(FEEDS, Category::VerbTransitive, sg), the(), pet, period()], 3)
        }
        (Relation::Pet, Template::Paraphrase) => {
            let pet = Token::new(&entity.pet, Category::NounAnimate, sg);
            (vec![the(), Token::new(PET, Category::NounAnimate, sg), of(), name, is(), the(), pet, period()], 6)
        }
    }
}

/// Whether the corpus states this fact in this template.
pub fn in_training(entity: &Entity, template: Template) -> bool {
    template == Template::Statement || !entity.held_out
}

/// The fact sentences of the corpus, in entity order.
pub(crate) fn statements(entities: &[Entity], repetitions: usize) -> Vec<Vec<Token>> {
    let mut out = Vec::new();
    for entity in entities {
        for relation in Relation::ALL {
            for template in Template::ALL {
                if in_training(entity, template) {
                    for _ in 0..repetitions {
                        out.push(sentence(entity, relation, template).0);
                    }
                }
            }
        }
    }
    out
}

pub(crate) fn probes(entities: &[Entity]) -> Vec<FactProbe> {
    let mut out = Vec::new();
    for (index, entity) in entities.iter().enumerate() {
        for relation in Relation::ALL {
            for template in Template::ALL {
                let (mut tokens, answer) = sentence(entity, relation, template);
                tokens.truncate(answer + 1);
                let answer_token = tokens.pop().expect("the answer");
                out.push(FactProbe {
                    entity: index,
                    relation,
                    template,
                    prompt: tokens,
                    answer: answer_token,
                    in_training: in_training(entity, template),
                });
            }
        }
    }
    out
}
