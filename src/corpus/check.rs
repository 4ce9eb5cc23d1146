//! An independent checker for the tests: a recursive-descent parser over the
//! categories the lexicon gives each word (not the tokens' own labels), and
//! the agreement and selection checks on its trees. It shares no code with
//! the generator besides the lexicon's tables.

use super::grammar::Token;
use super::lexicon::{Category, Lexicon, NounClass, Number};

#[derive(Debug, Clone)]
pub struct Np {
    pub determiner: Option<usize>,
    pub adjectives: Vec<usize>,
    pub head: usize,
    pub number: Number,
    /// None for proper nouns.
    pub class: Option<NounClass>,
    pub depth: usize,
    pub modifier: Option<Modifier>,
}

#[derive(Debug, Clone)]
pub enum Modifier {
    Pp { preposition: usize, np: Box<Np> },
    SubjectRelative { vp: Box<Vp> },
    ObjectRelative { subject: Box<Np>, verb: usize },
}

#[derive(Debug, Clone)]
pub enum Vp {
    Intransitive { verb: usize, pp: Option<(usize, Box<Np>)> },
    Transitive { verb: usize, object: Box<Np> },
    Copular { copula: usize, negation: Option<usize>, adjective: Option<usize>, nominal: Option<Box<Np>> },
}

impl Vp {
    pub fn verb(&self) -> usize {
        match self {
            Vp::Intransitive { verb, .. } | Vp::Transitive { verb, .. } => *verb,
            Vp::Copular { copula, .. } => *copula,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Parse {
    pub subject: Np,
    pub vp: Vp,
}

struct Parser<'a> {
    words: Vec<(Category, Option<Number>)>,
    lexicon: &'a Lexicon,
    tokens: &'a [Token],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<Category> {
        self.words.get(self.pos).map(|w| w.0)
    }

    fn expect(&mut self, what: &str, ok: impl Fn(Category) -> bool) -> Result<usize, String> {
        match self.peek() {
            Some(c) if ok(c) => {
                self.pos += 1;
                Ok(self.pos - 1)
            }
            other => Err(format!("expected {what} at {}, found {other:?}", self.pos)),
        }
    }

    fn number(&self, i: usize) -> Option<Number> {
        self.words[i].1
    }

    fn np(&mut self, depth: usize) -> Result<Np, String> {
        if self.peek() == Some(Category::ProperNoun) {
            let head = self.expect("a name", |_| true)?;
            let number = self.number(head).ok_or("a name without number")?;
            return Ok(Np { determiner: None, adjectives: vec![], head, number, class: None, depth, modifier: None });
        }
        let determiner = self.expect("a determiner", |c| c == Category::Determiner)?;
        let mut adjectives = Vec::new();
        while self.peek() == Some(Category::Adjective) {
            adjectives.push(self.expect("an adjective", |_| true)?);
        }
        let head = self.expect("a noun", Category::is_noun)?;
        let number = self.number(head).ok_or("a noun without number")?;
        let class = self.lexicon.noun_class(&self.tokens[head].text);
        let modifier = match self.peek() {
            Some(Category::Preposition) => {
                let preposition = self.expect("a preposition", |_| true)?;
                Some(Modifier::Pp { preposition, np: Box::new(self.np(depth + 1)?) })
            }
            Some(Category::RelativePronoun) => {
                self.pos += 1;
                if matches!(self.peek(), Some(Category::Determiner | Category::ProperNoun)) {
                    let subject = Box::new(self.np(depth + 1)?);
                    let verb = self.expect("a transitive verb", |c| c == Category::VerbTransitive)?;
                    Some(Modifier::ObjectRelative { subject, verb })
                } else {
                    Some(Modifier::SubjectRelative { vp: Box::new(self.vp(depth + 1)?) })
                }
            }
            _ => None,
        };
        Ok(Np { determiner: Some(determiner), adjectives, head, number, class, depth, modifier })
    }

    fn vp(&mut self, depth: usize) -> Result<Vp, String> {
        match self.peek() {
            Some(Category::VerbIntransitive) => {
                let verb = self.expect("", |_| true)?;
                let pp = if self.peek() == Some(Category::Preposition) {
                    let preposition = self.expect("", |_| true)?;
                    Some((preposition, Box::new(self.np(depth)?)))
                } else {
                    None
                };
                Ok(Vp::Intransitive { verb, pp })
            }
            Some(Category::VerbTransitive) => {
                let verb = self.expect("", |_| true)?;
                Ok(Vp::Transitive { verb, object: Box::new(self.np(depth)?) })
            }
            Some(Category::Copula) => {
                let copula = self.expect("", |_| true)?;
                let negation =
                    if self.peek() == Some(Category::Negation) { Some(self.expect("", |_| true)?) } else { None };
                if self.peek() == Some(Category::Adjective) {
                    let adjective = Some(self.expect("", |_| true)?);
                    Ok(Vp::Copular { copula, negation, adjective, nominal: None })
                } else {
                    let nominal = Some(Box::new(self.np(depth)?));
                    Ok(Vp::Copular { copula, negation, adjective: None, nominal })
                }
            }
            other => Err(format!("expected a verb phrase at {}, found {other:?}", self.pos)),
        }
    }
}

/// Parses a sentence (with its final period) by the lexicon's categories;
/// also fails on words the lexicon lacks and on tokens whose own category or
/// number differs from the lexicon's.
pub fn parse(lexicon: &Lexicon, tokens: &[Token]) -> Result<Parse, String> {
    let mut words = Vec::with_capacity(tokens.len());
    for token in tokens {
        let entry = lexicon.lookup(&token.text).ok_or_else(|| format!("{:?} is not in the lexicon", token.text))?;
        if entry.category != token.category || entry.number != token.number {
            return Err(format!(
                "{:?} is labelled {:?} {:?}, the lexicon says {:?}",
                token.text, token.category, token.number, entry
            ));
        }
        words.push((entry.category, entry.number));
    }
    let mut parser = Parser { words, lexicon, tokens, pos: 0 };
    let subject = parser.np(0)?;
    let vp = parser.vp(0)?;
    parser.expect("a period", |c| c == Category::Punctuation)?;
    if parser.pos != tokens.len() {
        return Err(format!("tokens after the period at {}", parser.pos));
    }
    Ok(Parse { subject, vp })
}

/// Every noun phrase of a parse, outermost first.
pub fn noun_phrases(parse: &Parse) -> Vec<&Np> {
    fn np<'a>(n: &'a Np, out: &mut Vec<&'a Np>) {
        out.push(n);
        match &n.modifier {
            Some(Modifier::Pp { np: inner, .. }) => np(inner, out),
            Some(Modifier::SubjectRelative { vp: inner }) => vp(inner, out),
            Some(Modifier::ObjectRelative { subject, .. }) => np(subject, out),
            None => {}
        }
    }
    fn vp<'a>(v: &'a Vp, out: &mut Vec<&'a Np>) {
        match v {
            Vp::Intransitive { pp: Some((_, inner)), .. } => np(inner, out),
            Vp::Transitive { object, .. } => np(object, out),
            Vp::Copular { nominal: Some(inner), .. } => np(inner, out),
            _ => {}
        }
    }
    let mut out = Vec::new();
    np(&parse.subject, &mut out);
    vp(&parse.vp, &mut out);
    out
}

/// (subject head, verb or copula) of every clause: the main clause and each
/// relative clause.
pub fn clauses(parse: &Parse) -> Vec<(usize, usize)> {
    let mut out = vec![(parse.subject.head, parse.vp.verb())];
    for np in noun_phrases(parse) {
        match &np.modifier {
            Some(Modifier::SubjectRelative { vp }) => out.push((np.head, vp.verb())),
            Some(Modifier::ObjectRelative { subject, verb }) => out.push((subject.head, *verb)),
            _ => {}
        }
    }
    out
}

/// The agreement errors of a parsed sentence: verbs and copulas against
/// their subjects' heads, number-marking determiners against their nouns.
pub fn agreement_errors(parse: &Parse, tokens: &[Token], lexicon: &Lexicon) -> Vec<String> {
    let number = |i: usize| lexicon.lookup(&tokens[i].text).and_then(|e| e.number);
    let mut errors = Vec::new();
    for (subject, verb) in clauses(parse) {
        if number(subject) != number(verb) {
            errors.push(format!("{:?} does not agree with {:?}", tokens[verb].text, tokens[subject].text));
        }
    }
    for np in noun_phrases(parse) {
        if let Some(d) = np.determiner {
            if number(d).is_some() && number(d) != number(np.head) {
                errors.push(format!("{:?} does not agree with {:?}", tokens[d].text, tokens[np.head].text));
            }
        }
    }
    errors
}

/// Violations of the selectional restrictions (common nouns only).
pub fn selection_errors(parse: &Parse, tokens: &[Token], lexicon: &Lexicon) -> Vec<String> {
    let mut errors = Vec::new();
    let word = move |i: usize| tokens[i].text.as_str();
    let mut check = |ok: bool, what: String| {
        if !ok {
            errors.push(what);
        }
    };
    let vp_checks = |subject: &Np, vp: &Vp, check: &mut dyn FnMut(bool, String)| {
        let Some(class) = subject.class else { return };
        match vp {
            Vp::Intransitive { verb, .. } => {
                let v = lexicon.verb(word(*verb)).expect("a verb");
                check(v.subject.contains(class), format!("{} as subject of {}", word(subject.head), word(*verb)));
            }
            Vp::Transitive { verb, object } => {
                let v = lexicon.verb(word(*verb)).expect("a verb");
                check(v.subject.contains(class), format!("{} as subject of {}", word(subject.head), word(*verb)));
                if let Some(object_class) = object.class {
                    check(
                        v.object.contains(object_class),
                        format!("{} as object of {}", word(object.head), word(*verb)),
                    );
                }
            }
            Vp::Copular { adjective: Some(a), .. } => {
                let adjective = lexicon.adjective(word(*a)).expect("an adjective");
                check(adjective.classes.contains(class), format!("{} is {}", word(subject.head), word(*a)));
            }
            Vp::Copular { .. } => {}
        }
    };
    vp_checks(&parse.subject, &parse.vp, &mut check);
    for np in noun_phrases(parse) {
        let Some(class) = np.class else { continue };
        for &a in &np.adjectives {
            let adjective = lexicon.adjective(word(a)).expect("an adjective");
            check(adjective.classes.contains(class), format!("{} {}", word(a), word(np.head)));
        }
        match &np.modifier {
            Some(Modifier::Pp { preposition, np: inner }) => {
                let p = lexicon.preposition(word(*preposition)).expect("a preposition");
                check(p.head.contains(class), format!("{} {}", word(np.head), word(*preposition)));
                if let Some(inner_class) = inner.class {
                    check(p.object.contains(inner_class), format!("{} {}", word(*preposition), word(inner.head)));
                }
            }
            Some(Modifier::SubjectRelative { vp }) => vp_checks(np, vp, &mut check),
            Some(Modifier::ObjectRelative { subject, verb }) => {
                let v = lexicon.verb(word(*verb)).expect("a verb");
                check(v.object.contains(class), format!("{} as object of {}", word(np.head), word(*verb)));
                if let Some(subject_class) = subject.class {
                    check(
                        v.subject.contains(subject_class),
                        format!("{} as subject of {}", word(subject.head), word(*verb)),
                    );
                }
            }
            None => {}
        }
    }
    errors
}
