//! The lexicon of [`super::grammar`]: fixed built-in English word lists per
//! category, with number forms, noun classes and selectional restrictions, of
//! which a configuration takes a seed-determined subset.
//!
//! Every surface form in the built-in lists belongs to exactly one lexeme and
//! one (category, number) pair, so the per-token category table can be read
//! back from the text alone (a unit test guards this).

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use super::words::{
    ABSTRACT_NOUNS, ADJECTIVES, ANIMATE_NOUNS, INANIMATE_NOUNS, INTRANSITIVE_VERBS, PREPOSITIONS, TRANSITIVE_VERBS,
};

/// A token's word category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Determiner,
    Adjective,
    NounAnimate,
    /// Concrete inanimate nouns (objects, plants, places).
    NounInanimate,
    NounAbstract,
    /// Names of people and places (only in fact sentences).
    ProperNoun,
    VerbTransitive,
    VerbIntransitive,
    Copula,
    Negation,
    Preposition,
    RelativePronoun,
    Punctuation,
}

impl Category {
    pub const ALL: [Category; 13] = [
        Category::Determiner,
        Category::Adjective,
        Category::NounAnimate,
        Category::NounInanimate,
        Category::NounAbstract,
        Category::ProperNoun,
        Category::VerbTransitive,
        Category::VerbIntransitive,
        Category::Copula,
        Category::Negation,
        Category::Preposition,
        Category::RelativePronoun,
        Category::Punctuation,
    ];

    /// The name in the per-token table (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Determiner => "determiner",
            Category::Adjective => "adjective",
            Category::NounAnimate => "noun_animate",
            Category::NounInanimate => "noun_inanimate",
            Category::NounAbstract => "noun_abstract",
            Category::ProperNoun => "proper_noun",
            Category::VerbTransitive => "verb_transitive",
            Category::VerbIntransitive => "verb_intransitive",
            Category::Copula => "copula",
            Category::Negation => "negation",
            Category::Preposition => "preposition",
            Category::RelativePronoun => "relative_pronoun",
            Category::Punctuation => "punctuation",
        }
    }

    /// Common nouns (not proper nouns).
    pub fn is_noun(self) -> bool {
        matches!(self, Category::NounAnimate | Category::NounInanimate | Category::NounAbstract)
    }

    /// Lexical verbs (not the copula).
    pub fn is_verb(self) -> bool {
        matches!(self, Category::VerbTransitive | Category::VerbIntransitive)
    }
}

/// Grammatical number of nouns, determiners, verbs and the copula.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Number {
    Singular,
    Plural,
}

impl Number {
    pub fn flip(self) -> Number {
        match self {
            Number::Singular => Number::Plural,
            Number::Plural => Number::Singular,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Number::Singular => "singular",
            Number::Plural => "plural",
        }
    }
}

/// Semantic class of a common noun.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NounClass {
    Animate,
    Inanimate,
    Abstract,
}

impl NounClass {
    pub const ALL: [NounClass; 3] = [NounClass::Animate, NounClass::Inanimate, NounClass::Abstract];

    pub fn category(self) -> Category {
        match self {
            NounClass::Animate => Category::NounAnimate,
            NounClass::Inanimate => Category::NounInanimate,
            NounClass::Abstract => Category::NounAbstract,
        }
    }

    fn bit(self) -> u8 {
        match self {
            NounClass::Animate => 1,
            NounClass::Inanimate => 2,
            NounClass::Abstract => 4,
        }
    }
}

/// A set of noun classes: what a verb accepts as subject or object, what an
/// adjective can modify, what a preposition attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClassSet(pub(super) u8);

impl ClassSet {
    /// No class (the object of an intransitive verb).
    pub const NONE: ClassSet = ClassSet(0);
    pub const ANIMATE: ClassSet = ClassSet(1);
    pub const INANIMATE: ClassSet = ClassSet(2);
    pub const ABSTRACT: ClassSet = ClassSet(4);
    /// Animate and inanimate (concrete).
    pub const CONCRETE: ClassSet = ClassSet(3);
    pub const ALL: ClassSet = ClassSet(7);

    pub fn contains(self, class: NounClass) -> bool {
        self.0 & class.bit() != 0
    }

    pub fn classes(self) -> impl Iterator<Item = NounClass> {
        NounClass::ALL.into_iter().filter(move |c| self.contains(*c))
    }

    pub fn intersect(self, other: ClassSet) -> ClassSet {
        ClassSet(self.0 & other.0)
    }

    pub fn of(class: NounClass) -> ClassSet {
        ClassSet(class.bit())
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Sentiment of an adjective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Valence {
    Positive,
    Negative,
}

impl Valence {
    pub fn flip(self) -> Valence {
        match self {
            Valence::Positive => Valence::Negative,
            Valence::Negative => Valence::Positive,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Valence::Positive => "positive",
            Valence::Negative => "negative",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Noun {
    pub singular: &'static str,
    pub plural: &'static str,
    pub class: NounClass,
    /// Animals (possible pets in the fact sentences); people otherwise.
    pub animal: bool,
}

impl Noun {
    pub fn form(&self, number: Number) -> &'static str {
        match number {
            Number::Singular => self.singular,
            Number::Plural => self.plural,
        }
    }
}

/// A verb with its third-person singular and plural present forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verb {
    pub singular: &'static str,
    pub plural: &'static str,
    /// Classes accepted as subject (transitive verbs: always animate).
    pub subject: ClassSet,
    /// Classes accepted as object (transitive verbs only).
    pub object: ClassSet,
}

impl Verb {
    pub fn form(&self, number: Number) -> &'static str {
        match number {
            Number::Singular => self.singular,
            Number::Plural => self.plural,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjective {
    pub word: &'static str,
    /// Classes of nouns it can modify or be predicated of.
    pub classes: ClassSet,
    pub valence: Option<Valence>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preposition {
    pub word: &'static str,
    /// Classes of the nouns a PP with it can modify.
    pub head: ClassSet,
    /// Classes of the noun inside the PP.
    pub object: ClassSet,
}

/// Determiners: one word per number, or the same word for both ("the").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Determiner {
    pub singular: &'static str,
    pub plural: &'static str,
}

impl Determiner {
    pub fn form(&self, number: Number) -> &'static str {
        match number {
            Number::Singular => self.singular,
            Number::Plural => self.plural,
        }
    }

    /// Whether the word marks number (this/these, every/all), unlike "the".
    pub fn marks_number(&self) -> bool {
        self.singular != self.plural
    }
}

pub const THE: Determiner = Determiner { singular: "the", plural: "the" };
pub const THIS: Determiner = Determiner { singular: "this", plural: "these" };
pub const EVERY: Determiner = Determiner { singular: "every", plural: "all" };
pub const DETERMINERS: [Determiner; 3] = [THE, THIS, EVERY];
pub const COPULA: (&str, &str) = ("is", "are");
pub const NEGATION: &str = "not";
pub const RELATIVE_PRONOUN: &str = "that";
pub const PERIOD: &str = ".";

// Words the fact sentences need: always in the lexicon.
pub(crate) const LIVES: &str = "lives";
pub(crate) const FEEDS: &str = "feeds";
pub(crate) const HOME: &str = "home";
pub(crate) const PET: &str = "pet";
pub(crate) const IN: &str = "in";
pub(crate) const OF: &str = "of";
const CORE: [&str; 6] = [LIVES, FEEDS, HOME, PET, IN, OF];

/// What a surface form is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub category: Category,
    pub number: Option<Number>,
    /// The same lexeme's form of the other number, where it differs.
    pub other_number: Option<String>,
}

/// The words a corpus uses: a seed-determined subset of the built-in lists
/// (the words the fact sentences need always included), plus the invented
/// proper names of the fact sentences.
#[derive(Debug, Clone)]
pub struct Lexicon {
    pub nouns: Vec<Noun>,
    pub intransitive: Vec<Verb>,
    pub transitive: Vec<Verb>,
    pub adjectives: Vec<Adjective>,
    pub prepositions: Vec<Preposition>,
    /// People (fact sentences), capitalised invented names.
    pub names: Vec<String>,
    /// Places (fact sentences), capitalised invented names.
    pub places: Vec<String>,
    forms: BTreeMap<String, Entry>,
}

/// Sizes of the lexicon's subsets of the built-in lists. Verbs, adjectives
/// and prepositions can come out a few more than asked: the lexicon always
/// has the fact sentences' words ("lives", "feeds", "in", "of") and, for
/// every noun class present, a verb that takes it as subject, one that takes
/// it as object, a neutral adjective and a preposition, plus an adjective of
/// each valence. Without abstract nouns the words only they combine with are
/// left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VocabularyConfig {
    pub nouns_animate: usize,
    pub nouns_inanimate: usize,
    /// 0 leaves abstract nouns (and the verbs and adjectives only they take)
    /// out of the grammar sentences.
    pub nouns_abstract: usize,
    pub verbs_intransitive: usize,
    pub verbs_transitive: usize,
    pub adjectives: usize,
    pub prepositions: usize,
}

impl Default for VocabularyConfig {
    fn default() -> Self {
        VocabularyConfig {
            nouns_animate: 24,
            nouns_inanimate: 24,
            nouns_abstract: 12,
            verbs_intransitive: 24,
            verbs_transitive: 24,
            adjectives: 32,
            prepositions: 8,
        }
    }
}

impl VocabularyConfig {
    /// The built-in lists' sizes: the largest vocabulary.
    pub fn full() -> Self {
        VocabularyConfig {
            nouns_animate: ANIMATE_NOUNS.len(),
            nouns_inanimate: INANIMATE_NOUNS.len(),
            nouns_abstract: ABSTRACT_NOUNS.len(),
            verbs_intransitive: INTRANSITIVE_VERBS.len(),
            verbs_transitive: TRANSITIVE_VERBS.len(),
            adjectives: ADJECTIVES.len(),
            prepositions: PREPOSITIONS.len(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let full = VocabularyConfig::full();
        let checks = [
            ("nouns_animate", self.nouns_animate, 2, full.nouns_animate),
            ("nouns_inanimate", self.nouns_inanimate, 2, full.nouns_inanimate),
            ("nouns_abstract", self.nouns_abstract, 0, full.nouns_abstract),
            ("verbs_intransitive", self.verbs_intransitive, 3, full.verbs_intransitive),
            ("verbs_transitive", self.verbs_transitive, 2, full.verbs_transitive),
            ("adjectives", self.adjectives, 5, full.adjectives),
            ("prepositions", self.prepositions, 2, full.prepositions),
        ];
        for (name, value, min, max) in checks {
            if value < min || value > max {
                return Err(format!("vocabulary.{name} is {value}, must be in {min}..={max}"));
            }
        }
        Ok(())
    }
}

/// `k` items of `list`: the core words, then for each requirement `r` in
/// `0..requirements` the first item (in a seeded shuffle) that `meets(item,
/// r)` unless one already does, then the rest of the shuffle. Exceeds `k`
/// only when the core words and the requirements need more.
fn subset<T: Clone>(
    rng: &mut ChaCha8Rng,
    list: &[T],
    k: usize,
    is_core: impl Fn(&T) -> bool,
    requirements: usize,
    meets: impl Fn(&T, usize) -> bool,
) -> Vec<T> {
    let mut order: Vec<usize> = (0..list.len()).collect();
    order.shuffle(rng);
    let mut chosen: Vec<usize> = order.iter().copied().filter(|&i| is_core(&list[i])).collect();
    for r in 0..requirements {
        if !chosen.iter().any(|&i| meets(&list[i], r)) {
            if let Some(&i) = order.iter().find(|&&i| meets(&list[i], r)) {
                chosen.push(i);
            }
        }
    }
    for &i in &order {
        if chosen.len() >= k {
            break;
        }
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    // Built-in list order, so that the lexicon reads the same way every time.
    chosen.sort_unstable();
    chosen.into_iter().map(|i| list[i].clone()).collect()
}

const ONSETS: &[&str] = &["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "tr", "kl", "st"];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u"];
const CODAS: &[&str] = &["", "", "", "n", "r", "l", "s", "m", "k"];

/// A capitalised invented word of `syllables` CV syllables and a coda.
fn invented_name(rng: &mut ChaCha8Rng, syllables: usize) -> String {
    let mut word = String::new();
    for _ in 0..syllables {
        word.push_str(ONSETS[rng.random_range(0..ONSETS.len())]);
        word.push_str(VOWELS[rng.random_range(0..VOWELS.len())]);
    }
    word.push_str(CODAS[rng.random_range(0..CODAS.len())]);
    let mut chars = word.chars();
    let first = chars.next().expect("non-empty").to_ascii_uppercase();
    std::iter::once(first).chain(chars).collect()
}

impl Lexicon {
    /// The lexicon for `vocabulary`, `names` people and `places` places, from
    /// `rng` (the caller gives it its own stream).
    pub(crate) fn build(rng: &mut ChaCha8Rng, vocabulary: &VocabularyConfig, names: usize, places: usize) -> Lexicon {
        let core = |word: &str| CORE.contains(&word);
        let has_abstract = vocabulary.nouns_abstract > 0;
        let mut nouns = subset(rng, ANIMATE_NOUNS, vocabulary.nouns_animate, |n| core(n.singular), 1, |n, _| n.animal);
        nouns.extend(subset(rng, INANIMATE_NOUNS, vocabulary.nouns_inanimate, |n| core(n.singular), 0, |_, _| false));
        nouns.extend(subset(rng, ABSTRACT_NOUNS, vocabulary.nouns_abstract, |_| false, 0, |_, _| false));
        // Every present class can be the subject of some intransitive verb,
        // the object of some transitive one, take some neutral adjective and
        // some preposition; both valences have an adjective.
        let present: Vec<NounClass> =
            NounClass::ALL.into_iter().filter(|&c| c != NounClass::Abstract || has_abstract).collect();
        let count = present.len();
        // Words that only go with abstract nouns would never occur without them.
        let usable = |classes: ClassSet| has_abstract || !classes.intersect(ClassSet::CONCRETE).is_empty();
        let intransitive: Vec<Verb> = INTRANSITIVE_VERBS.iter().filter(|v| usable(v.subject)).cloned().collect();
        let transitive: Vec<Verb> = TRANSITIVE_VERBS.iter().filter(|v| usable(v.object)).cloned().collect();
        let adjectives: Vec<Adjective> = ADJECTIVES.iter().filter(|a| usable(a.classes)).cloned().collect();
        let intransitive = subset(
            rng,
            &intransitive,
            vocabulary.verbs_intransitive,
            |v| core(v.singular),
            count,
            |v, r| v.subject.contains(present[r]),
        );
        let transitive = subset(
            rng,
            &transitive,
            vocabulary.verbs_transitive,
            |v| core(v.singular),
            count,
            |v, r| v.object.contains(present[r]),
        );
        let valences = [Valence::Positive, Valence::Negative];
        let adjectives = subset(
            rng,
            &adjectives,
            vocabulary.adjectives,
            |_| false,
            count + 2,
            |a, r| match r {
                r if r < count => a.classes.contains(present[r]) && a.valence.is_none(),
                r => a.valence == Some(valences[r - count]),
            },
        );
        let prepositions = subset(
            rng,
            PREPOSITIONS,
            vocabulary.prepositions,
            |p| core(p.word),
            count,
            |p, r| p.head.contains(present[r]),
        );

        let mut used = std::collections::BTreeSet::new();
        let mut draw = |rng: &mut ChaCha8Rng, count: usize, syllables: usize| {
            let mut out = Vec::with_capacity(count);
            while out.len() < count {
                let name = invented_name(rng, syllables);
                if used.insert(name.clone()) {
                    out.push(name);
                }
            }
            out
        };
        let names = draw(rng, names, 2);
        let places = draw(rng, places, 2);

        let mut lexicon = Lexicon {
            nouns,
            intransitive,
            transitive,
            adjectives,
            prepositions,
            names,
            places,
            forms: BTreeMap::new(),
        };
        lexicon.forms = lexicon.index();
        lexicon
    }

    fn index(&self) -> BTreeMap<String, Entry> {
        let mut forms = BTreeMap::new();
        let mut add = |word: &str, category: Category, number: Option<Number>, other: Option<&str>| {
            let entry = Entry { category, number, other_number: other.map(str::to_string) };
            let previous = forms.insert(word.to_string(), entry);
            assert!(previous.is_none(), "the word {word:?} is listed twice");
        };
        for d in DETERMINERS {
            if d.marks_number() {
                add(d.singular, Category::Determiner, Some(Number::Singular), Some(d.plural));
                add(d.plural, Category::Determiner, Some(Number::Plural), Some(d.singular));
            } else {
                add(d.singular, Category::Determiner, None, None);
            }
        }
        let mut pair = |sg: &str, pl: &str, category: Category| {
            add(sg, category, Some(Number::Singular), Some(pl));
            add(pl, category, Some(Number::Plural), Some(sg));
        };
        pair(COPULA.0, COPULA.1, Category::Copula);
        for noun in &self.nouns {
            pair(noun.singular, noun.plural, noun.class.category());
        }
        for verb in &self.intransitive {
            pair(verb.singular, verb.plural, Category::VerbIntransitive);
        }
        for verb in &self.transitive {
            pair(verb.singular, verb.plural, Category::VerbTransitive);
        }
        for adjective in &self.adjectives {
            add(adjective.word, Category::Adjective, None, None);
        }
        for preposition in &self.prepositions {
            add(preposition.word, Category::Preposition, None, None);
        }
        for name in self.names.iter().chain(&self.places) {
            add(name, Category::ProperNoun, Some(Number::Singular), None);
        }
        add(NEGATION, Category::Negation, None, None);
        add(RELATIVE_PRONOUN, Category::RelativePronoun, None, None);
        add(PERIOD, Category::Punctuation, None, None);
        forms
    }

    /// What a surface form is, if it is in the lexicon.
    pub fn lookup(&self, word: &str) -> Option<&Entry> {
        self.forms.get(word)
    }

    /// Every surface form, sorted: the lexicon as a table.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.forms.iter().map(|(word, entry)| (word.as_str(), entry))
    }

    pub fn nouns_of(&self, class: NounClass) -> impl Iterator<Item = &Noun> {
        self.nouns.iter().filter(move |n| n.class == class)
    }

    pub fn has_class(&self, class: NounClass) -> bool {
        self.nouns.iter().any(|n| n.class == class)
    }

    /// The noun classes present among `allowed`.
    pub fn present(&self, allowed: ClassSet) -> Vec<NounClass> {
        allowed.classes().filter(|&c| self.has_class(c)).collect()
    }

    pub fn preposition(&self, word: &str) -> Option<&Preposition> {
        self.prepositions.iter().find(|p| p.word == word)
    }

    /// The adjective `word`, if the lexicon has it.
    pub fn adjective(&self, word: &str) -> Option<&Adjective> {
        self.adjectives.iter().find(|a| a.word == word)
    }

    /// The semantic class of a noun form (singular or plural).
    pub fn noun_class(&self, word: &str) -> Option<NounClass> {
        self.nouns.iter().find(|n| n.singular == word || n.plural == word).map(|n| n.class)
    }

    /// The subject and object classes a verb form accepts.
    pub fn verb(&self, word: &str) -> Option<&Verb> {
        self.intransitive.iter().chain(&self.transitive).find(|v| v.singular == word || v.plural == word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn built_in_forms_are_unique_and_number_marked() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // The full lexicon: index() panics on a form listed twice.
        let lexicon = Lexicon::build(&mut rng, &VocabularyConfig::full(), 30, 30);
        let nouns = ANIMATE_NOUNS.iter().chain(INANIMATE_NOUNS).chain(ABSTRACT_NOUNS);
        for (sg, pl) in nouns
            .map(|n| (n.singular, n.plural))
            .chain(INTRANSITIVE_VERBS.iter().chain(TRANSITIVE_VERBS).map(|v| (v.singular, v.plural)))
        {
            assert_ne!(sg, pl);
            assert_eq!(lexicon.lookup(sg).unwrap().number, Some(Number::Singular), "{sg}");
            assert_eq!(lexicon.lookup(pl).unwrap().number, Some(Number::Plural), "{pl}");
        }
        let total = ANIMATE_NOUNS.len() + INANIMATE_NOUNS.len() + ABSTRACT_NOUNS.len();
        let verbs = INTRANSITIVE_VERBS.len() + TRANSITIVE_VERBS.len();
        let expected = 2 * (total + verbs + 1) + ADJECTIVES.len() + PREPOSITIONS.len() + 5 + 3 + 60;
        assert_eq!(lexicon.entries().count(), expected);
        assert!(TRANSITIVE_VERBS.iter().all(|v| v.subject == ClassSet::ANIMATE && !v.object.is_empty()));
        assert!(INTRANSITIVE_VERBS.iter().all(|v| !v.subject.is_empty() && v.object.is_empty()));
    }

    #[test]
    fn subsets_have_the_requested_sizes_and_cover_every_class() {
        let mut rng = crate::testing::fresh_rng("subsets_have_the_requested_sizes_and_cover_every_class");
        for _ in 0..50 {
            let full = VocabularyConfig::full();
            let vocabulary = VocabularyConfig {
                nouns_animate: rng.random_range(2..=full.nouns_animate),
                nouns_inanimate: rng.random_range(2..=full.nouns_inanimate),
                nouns_abstract: rng.random_range(0..=full.nouns_abstract),
                verbs_intransitive: rng.random_range(3..=full.verbs_intransitive),
                verbs_transitive: rng.random_range(2..=full.verbs_transitive),
                adjectives: rng.random_range(5..=full.adjectives),
                prepositions: rng.random_range(2..=full.prepositions),
            };
            vocabulary.validate().unwrap();
            let lexicon = Lexicon::build(&mut rng, &vocabulary, 3, 3);
            assert_eq!(lexicon.nouns_of(NounClass::Animate).count(), vocabulary.nouns_animate);
            assert_eq!(lexicon.nouns_of(NounClass::Inanimate).count(), vocabulary.nouns_inanimate);
            assert_eq!(lexicon.nouns_of(NounClass::Abstract).count(), vocabulary.nouns_abstract);
            assert_eq!(lexicon.prepositions.len(), vocabulary.prepositions);
            for word in CORE {
                assert!(lexicon.lookup(word).is_some(), "{word}");
            }
            assert!(lexicon.nouns.iter().any(|n| n.animal));
            for class in lexicon.present(ClassSet::ALL) {
                assert!(lexicon.intransitive.iter().any(|v| v.subject.contains(class)));
                assert!(lexicon.transitive.iter().any(|v| v.object.contains(class)));
                assert!(lexicon.adjectives.iter().any(|a| a.classes.contains(class) && a.valence.is_none()));
                assert!(lexicon.prepositions.iter().any(|p| p.head.contains(class)));
            }
            for valence in [Valence::Positive, Valence::Negative] {
                assert!(lexicon.adjectives.iter().any(|a| a.valence == Some(valence)));
            }
            assert_eq!(lexicon.names.len(), 3);
            assert_eq!(lexicon.places.len(), 3);
        }
    }
}
