//! Stimuli from the corpus's lexicon and grammar: minimal pairs (formal
//! competence), category-contrast sets (unit selectivity) and sentiment
//! items. Each product has its own random stream of the seed, so they do not
//! change with the corpus size.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::grammar::{join, rng_for, stream, CorpusError, Generator, GrammarConfig, Modifier, NpSpec, Token};
use super::lexicon::{Category, ClassSet, Lexicon, NounClass, Number, Valence, COPULA, NEGATION, PERIOD, THIS};

/// The agreement phenomenon of a minimal pair (after Marvin & Linzen 2018).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phenomenon {
    /// "the dog runs ." / "*the dog run ."
    SimpleAgreement,
    /// "the dog near the cats runs ." / "*... run ."
    AcrossPrepositionalPhrase,
    /// "the dog that chases the cats runs ." / "*... run ."
    AcrossSubjectRelative,
    /// "the dog that the cats chase runs ." / "*... run ."
    AcrossObjectRelative,
    /// "the dog that the cats chase runs ." / "*the dog that the cats chases runs ."
    WithinObjectRelative,
    /// "this dog runs ." / "*these dog runs ."
    DeterminerNoun,
}

impl Phenomenon {
    pub const ALL: [Phenomenon; 6] = [
        Phenomenon::SimpleAgreement,
        Phenomenon::AcrossPrepositionalPhrase,
        Phenomenon::AcrossSubjectRelative,
        Phenomenon::AcrossObjectRelative,
        Phenomenon::WithinObjectRelative,
        Phenomenon::DeterminerNoun,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phenomenon::SimpleAgreement => "simple_agreement",
            Phenomenon::AcrossPrepositionalPhrase => "across_prepositional_phrase",
            Phenomenon::AcrossSubjectRelative => "across_subject_relative",
            Phenomenon::AcrossObjectRelative => "across_object_relative",
            Phenomenon::WithinObjectRelative => "within_object_relative",
            Phenomenon::DeterminerNoun => "determiner_noun",
        }
    }

    fn index(self) -> u64 {
        Phenomenon::ALL.iter().position(|&p| p == self).expect("listed") as u64
    }
}

/// A grammatical sentence and the same sentence with one word's number
/// flipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinimalPair {
    pub phenomenon: Phenomenon,
    pub good: Vec<Token>,
    pub bad: Vec<Token>,
    /// The one position where they differ: the verb, copula or determiner.
    pub critical: usize,
    /// The noun the critical word agrees with.
    pub controller: usize,
    /// The noun of the other number between (or around) them, if any.
    pub attractor: Option<usize>,
}

impl MinimalPair {
    pub fn good_text(&self) -> String {
        join(&self.good)
    }

    pub fn bad_text(&self) -> String {
        join(&self.bad)
    }
}

/// The same token with the other number's form (verbs, copula, nouns,
/// number-marking determiners).
pub fn flip_number(lexicon: &Lexicon, token: &Token) -> Option<Token> {
    let entry = lexicon.lookup(&token.text)?;
    let other = entry.other_number.as_ref()?;
    Some(Token { text: other.clone(), category: token.category, number: token.number.map(Number::flip) })
}

/// `n` minimal pairs of one phenomenon, controllers alternately singular and
/// plural. Sentences have no random PPs or relative clauses besides the
/// phenomenon's own; adjectives and negation follow `config`.
pub fn minimal_pairs(
    config: &GrammarConfig,
    phenomenon: Phenomenon,
    n: usize,
) -> Result<Vec<MinimalPair>, CorpusError> {
    config.validate()?;
    let lexicon = config.lexicon();
    let plain = GrammarConfig { p_relative_clause: 0.0, p_prepositional_phrase: 0.0, ..config.clone() };
    let mut generator = Generator::new(&lexicon, &plain, rng_for(config.seed, stream::PAIRS + phenomenon.index()));
    let mut pairs = Vec::with_capacity(n);
    for i in 0..n {
        // Controllers alternate singular and plural; in an object relative
        // the controller of the relative clause's verb is its own subject.
        let controller = if i % 2 == 0 { Number::Singular } else { Number::Plural };
        let (number, other) = match phenomenon {
            Phenomenon::WithinObjectRelative => (controller.flip(), controller),
            _ => (controller, controller.flip()),
        };
        let modifier = match phenomenon {
            Phenomenon::SimpleAgreement | Phenomenon::DeterminerNoun => Modifier::None,
            Phenomenon::AcrossPrepositionalPhrase => Modifier::Pp(other),
            Phenomenon::AcrossSubjectRelative => Modifier::SubjectRelative(other),
            Phenomenon::AcrossObjectRelative | Phenomenon::WithinObjectRelative => Modifier::ObjectRelative(other),
        };
        let determiner = (phenomenon == Phenomenon::DeterminerNoun).then_some(THIS);
        generator.tokens.clear();
        let spec = NpSpec { allowed: ClassSet::ALL, number: Some(number), modifier, determiner };
        let subject = generator.noun_phrase(0, spec);
        let verb = generator.verb_phrase(0, subject.class, subject.number);
        generator.push_token(PERIOD, Category::Punctuation, None);
        let good = generator.take();
        let (critical, controller, attractor) = match phenomenon {
            Phenomenon::SimpleAgreement => (verb, subject.head, None),
            Phenomenon::DeterminerNoun => (subject.determiner, subject.head, None),
            Phenomenon::WithinObjectRelative => (
                subject.inner_verb.expect("a relative clause"),
                subject.inner_head.expect("its subject"),
                Some(subject.head),
            ),
            _ => (verb, subject.head, subject.inner_head),
        };
        let mut bad = good.clone();
        bad[critical] = flip_number(&lexicon, &good[critical]).expect("the critical word marks number");
        pairs.push(MinimalPair { phenomenon, good, bad, critical, controller, attractor });
    }
    Ok(pairs)
}

/// A category contrast for selectivity analyses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contrast {
    /// Lists of nouns (any class) vs lists of verbs (transitive and intransitive).
    #[serde(alias = "noun_verb")]
    NounsVerbs,
    /// Lists of animate nouns vs lists of concrete inanimate nouns.
    AnimateInanimate,
    /// Lists of concrete inanimate nouns vs lists of abstract nouns (needs
    /// `vocabulary.nouns_abstract > 0`).
    ConcreteAbstract,
    /// Grammar sentences vs the same words shuffled (a language localizer).
    #[serde(alias = "sentence_wordlist")]
    SentencesWordLists,
}

impl Contrast {
    pub const ALL: [Contrast; 4] =
        [Contrast::NounsVerbs, Contrast::AnimateInanimate, Contrast::ConcreteAbstract, Contrast::SentencesWordLists];

    /// The two conditions' labels.
    pub fn conditions(self) -> [&'static str; 2] {
        match self {
            Contrast::NounsVerbs => ["noun", "verb"],
            Contrast::AnimateInanimate => ["animate", "inanimate"],
            Contrast::ConcreteAbstract => ["concrete", "abstract"],
            Contrast::SentencesWordLists => ["sentence", "word_list"],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Contrast::NounsVerbs => "nouns_verbs",
            Contrast::AnimateInanimate => "animate_inanimate",
            Contrast::ConcreteAbstract => "concrete_abstract",
            Contrast::SentencesWordLists => "sentences_word_lists",
        }
    }

    fn index(self) -> u64 {
        Contrast::ALL.iter().position(|&c| c == self).expect("listed") as u64
    }
}

/// One stimulus of a contrast set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContrastItem {
    /// One of [`Contrast::conditions`].
    pub condition: &'static str,
    pub tokens: Vec<Token>,
}

impl ContrastItem {
    pub fn text(&self) -> String {
        join(&self.tokens)
    }
}

/// `n` items per condition, alternating conditions (item 2i is the first
/// condition, 2i + 1 the second), without final periods.
///
/// Word-list contrasts: each item is `words` distinct lexemes of the
/// condition's category (or, when the lexicon has fewer, lexemes without
/// immediate repeats), each in a random number form. The two conditions of a
/// pair have the same length. `SentencesWordLists`: item 2i is a grammar
/// sentence of `config` (random length) and item 2i + 1 the same words in a
/// shuffled order different from the sentence's; `words` is unused.
pub fn contrast_set(
    config: &GrammarConfig,
    contrast: Contrast,
    n: usize,
    words: usize,
) -> Result<Vec<ContrastItem>, CorpusError> {
    config.validate()?;
    let lexicon = config.lexicon();
    let mut rng = rng_for(config.seed, stream::CONTRASTS + contrast.index());
    let [first, second] = contrast.conditions();
    let mut items = Vec::with_capacity(2 * n);
    if contrast == Contrast::SentencesWordLists {
        let mut generator = Generator::new(&lexicon, config, rng);
        for _ in 0..n {
            let mut tokens = generator.sentence().tokens;
            tokens.pop();
            let mut shuffled = tokens.clone();
            // Sentences have at least three words; some order differs.
            while shuffled == tokens {
                shuffled.shuffle(&mut generator.rng);
            }
            items.push(ContrastItem { condition: first, tokens });
            items.push(ContrastItem { condition: second, tokens: shuffled });
        }
        return Ok(items);
    }
    if words == 0 {
        return Err(CorpusError("contrast word lists need at least one word".into()));
    }
    let nouns = |class: NounClass| -> Vec<(&'static str, &'static str, Category)> {
        lexicon.nouns_of(class).map(|n| (n.singular, n.plural, class.category())).collect()
    };
    let verbs: Vec<_> = lexicon
        .intransitive
        .iter()
        .map(|v| (v.singular, v.plural, Category::VerbIntransitive))
        .chain(lexicon.transitive.iter().map(|v| (v.singular, v.plural, Category::VerbTransitive)))
        .collect();
    let all_nouns: Vec<_> = NounClass::ALL.into_iter().flat_map(nouns).collect();
    let pools = match contrast {
        Contrast::NounsVerbs => [all_nouns, verbs],
        Contrast::AnimateInanimate => [nouns(NounClass::Animate), nouns(NounClass::Inanimate)],
        Contrast::ConcreteAbstract => {
            if !lexicon.has_class(NounClass::Abstract) {
                return Err(CorpusError("the concrete/abstract contrast needs vocabulary.nouns_abstract > 0".into()));
            }
            [nouns(NounClass::Inanimate), nouns(NounClass::Abstract)]
        }
        Contrast::SentencesWordLists => unreachable!("handled above"),
    };
    for _ in 0..n {
        for (condition, pool) in [first, second].into_iter().zip(&pools) {
            let mut tokens = Vec::with_capacity(words);
            let mut chosen: Vec<usize> = Vec::with_capacity(words);
            while chosen.len() < words {
                let i = rng.random_range(0..pool.len());
                let repeat =
                    if pool.len() >= words { chosen.contains(&i) } else { chosen.last() == Some(&i) && pool.len() > 1 };
                if !repeat {
                    chosen.push(i);
                }
            }
            for i in chosen {
                let (singular, plural, category) = pool[i];
                let (text, number) =
                    if rng.random::<bool>() { (plural, Number::Plural) } else { (singular, Number::Singular) };
                tokens.push(Token::new(text, category, Some(number)));
            }
            items.push(ContrastItem { condition, tokens });
        }
    }
    Ok(items)
}

/// A sentiment item: the label is the predicate adjective's valence, flipped
/// by "not".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentimentItem {
    pub tokens: Vec<Token>,
    pub label: Valence,
    pub negated: bool,
    /// Index of the predicate adjective.
    pub adjective: usize,
}

impl SentimentItem {
    pub fn text(&self) -> String {
        join(&self.tokens)
    }
}

/// `n` items per label, alternating labels, with and without negation in
/// turn (balanced when `n` is even): `Subject is/are (not)? Adj .` where Adj
/// has a valence and the subject a random grammar noun phrase of `config`
/// (PPs, relative clauses, adjectives, negations in relative clauses) whose
/// adjectives are all neutral, so that only the main predicate decides.
pub fn sentiment_set(config: &GrammarConfig, n: usize) -> Result<Vec<SentimentItem>, CorpusError> {
    config.validate()?;
    let lexicon = config.lexicon();
    let mut generator = Generator::new(&lexicon, config, rng_for(config.seed, stream::SENTIMENT));
    generator.neutral = true;
    let mut items = Vec::with_capacity(2 * n);
    for i in 0..2 * n {
        let label = if i % 2 == 0 { Valence::Positive } else { Valence::Negative };
        let negated = (i / 2) % 2 == 1;
        let valence = if negated { label.flip() } else { label };
        generator.tokens.clear();
        let subject = generator.noun_phrase(0, NpSpec::random(ClassSet::ALL));
        let copula = if subject.number == Number::Singular { COPULA.0 } else { COPULA.1 };
        generator.push_token(copula, Category::Copula, Some(subject.number));
        if negated {
            generator.push_token(NEGATION, Category::Negation, None);
        }
        let adjectives: Vec<&'static str> =
            lexicon.adjectives.iter().filter(|a| a.valence == Some(valence)).map(|a| a.word).collect();
        let word = *adjectives.choose(&mut generator.rng).expect("the lexicon has both valences");
        let adjective = generator.push_token(word, Category::Adjective, None);
        generator.push_token(PERIOD, Category::Punctuation, None);
        items.push(SentimentItem { tokens: generator.take(), label, negated, adjective });
    }
    Ok(items)
}
