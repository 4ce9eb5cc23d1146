//! The built-in English word lists of the lexicon, per category, with
//! number forms, noun classes and selectional restrictions.

use super::lexicon::{
    Adjective, ClassSet, ClassSet as C, Noun, NounClass, Preposition, Valence, Verb, FEEDS, HOME, IN, LIVES, OF, PET,
};
use NounClass::{Abstract as Ab, Animate as An, Inanimate as In};

const fn n(singular: &'static str, plural: &'static str, class: NounClass, animal: bool) -> Noun {
    Noun { singular, plural, class, animal }
}

const fn vi(singular: &'static str, plural: &'static str, subject: ClassSet) -> Verb {
    Verb { singular, plural, subject, object: ClassSet::NONE }
}

const fn vt(singular: &'static str, plural: &'static str, object: ClassSet) -> Verb {
    Verb { singular, plural, subject: C::ANIMATE, object }
}

const fn a(word: &'static str, classes: ClassSet) -> Adjective {
    Adjective { word, classes, valence: None }
}

const fn av(word: &'static str, valence: Valence) -> Adjective {
    Adjective { word, classes: C::ALL, valence: Some(valence) }
}

const fn p(word: &'static str, head: ClassSet, object: ClassSet) -> Preposition {
    Preposition { word, head, object }
}

/// Built-in animate nouns: animals, then people.
pub const ANIMATE_NOUNS: &[Noun] = &[
    n("dog", "dogs", An, true),
    n("cat", "cats", An, true),
    n("horse", "horses", An, true),
    n("bird", "birds", An, true),
    n("rabbit", "rabbits", An, true),
    n("fox", "foxes", An, true),
    n("wolf", "wolves", An, true),
    n("mouse", "mice", An, true),
    n("goat", "goats", An, true),
    n("duck", "ducks", An, true),
    n("bear", "bears", An, true),
    n("lion", "lions", An, true),
    n("tiger", "tigers", An, true),
    n("monkey", "monkeys", An, true),
    n("pig", "pigs", An, true),
    n("cow", "cows", An, true),
    n("frog", "frogs", An, true),
    n("owl", "owls", An, true),
    n("snake", "snakes", An, true),
    n(PET, "pets", An, true),
    n("child", "children", An, false),
    n("teacher", "teachers", An, false),
    n("doctor", "doctors", An, false),
    n("farmer", "farmers", An, false),
    n("baker", "bakers", An, false),
    n("pilot", "pilots", An, false),
    n("singer", "singers", An, false),
    n("student", "students", An, false),
    n("king", "kings", An, false),
    n("queen", "queens", An, false),
    n("sailor", "sailors", An, false),
    n("painter", "painters", An, false),
    n("nurse", "nurses", An, false),
    n("friend", "friends", An, false),
    n("woman", "women", An, false),
    n("man", "men", An, false),
    n("girl", "girls", An, false),
    n("boy", "boys", An, false),
    n("neighbor", "neighbors", An, false),
    n("lawyer", "lawyers", An, false),
];

/// Built-in concrete inanimate nouns.
pub const INANIMATE_NOUNS: &[Noun] = &[
    n("box", "boxes", In, false),
    n("table", "tables", In, false),
    n("chair", "chairs", In, false),
    n("stone", "stones", In, false),
    n("lamp", "lamps", In, false),
    n("book", "books", In, false),
    n("cup", "cups", In, false),
    n("ball", "balls", In, false),
    n("car", "cars", In, false),
    n("door", "doors", In, false),
    n("window", "windows", In, false),
    n("bottle", "bottles", In, false),
    n("key", "keys", In, false),
    n("coin", "coins", In, false),
    n("bag", "bags", In, false),
    n("wall", "walls", In, false),
    n("tree", "trees", In, false),
    n("flower", "flowers", In, false),
    n("rock", "rocks", In, false),
    n("bell", "bells", In, false),
    n("clock", "clocks", In, false),
    n("knife", "knives", In, false),
    n("spoon", "spoons", In, false),
    n("plate", "plates", In, false),
    n("hat", "hats", In, false),
    n("coat", "coats", In, false),
    n("boat", "boats", In, false),
    n("bridge", "bridges", In, false),
    n("tower", "towers", In, false),
    n("wheel", "wheels", In, false),
    n("rope", "ropes", In, false),
    n("basket", "baskets", In, false),
    n("candle", "candles", In, false),
    n("mirror", "mirrors", In, false),
    n("shoe", "shoes", In, false),
    n("apple", "apples", In, false),
    n(HOME, "homes", In, false),
];

/// Built-in abstract nouns.
pub const ABSTRACT_NOUNS: &[Noun] = &[
    n("idea", "ideas", Ab, false),
    n("plan", "plans", Ab, false),
    n("rumor", "rumors", Ab, false),
    n("theory", "theories", Ab, false),
    n("story", "stories", Ab, false),
    n("dream", "dreams", Ab, false),
    n("problem", "problems", Ab, false),
    n("question", "questions", Ab, false),
    n("reason", "reasons", Ab, false),
    n("belief", "beliefs", Ab, false),
    n("memory", "memories", Ab, false),
    n("secret", "secrets", Ab, false),
    n("law", "laws", Ab, false),
    n("opinion", "opinions", Ab, false),
    n("lesson", "lessons", Ab, false),
    n("habit", "habits", Ab, false),
    n("custom", "customs", Ab, false),
    n("method", "methods", Ab, false),
    n("principle", "principles", Ab, false),
    n("concept", "concepts", Ab, false),
];

/// Built-in intransitive verbs with the classes they accept as subject.
pub const INTRANSITIVE_VERBS: &[Verb] = &[
    vi("sleeps", "sleep", C::ANIMATE),
    vi("runs", "run", C::ANIMATE),
    vi("laughs", "laugh", C::ANIMATE),
    vi("smiles", "smile", C::ANIMATE),
    vi("sings", "sing", C::ANIMATE),
    vi("cries", "cry", C::ANIMATE),
    vi("waits", "wait", C::ANIMATE),
    vi("dances", "dance", C::ANIMATE),
    vi("jumps", "jump", C::ANIMATE),
    vi("swims", "swim", C::ANIMATE),
    vi("walks", "walk", C::ANIMATE),
    vi("breathes", "breathe", C::ANIMATE),
    vi("sits", "sit", C::ANIMATE),
    vi("talks", "talk", C::ANIMATE),
    vi(LIVES, "live", C::ANIMATE),
    vi("arrives", "arrive", C::CONCRETE),
    vi("falls", "fall", C::CONCRETE),
    vi("floats", "float", C::CONCRETE),
    vi("shakes", "shake", C::CONCRETE),
    vi("moves", "move", C::CONCRETE),
    vi("shines", "shine", C::INANIMATE),
    vi("rolls", "roll", C::INANIMATE),
    vi("breaks", "break", C::INANIMATE),
    vi("melts", "melt", C::INANIMATE),
    vi("rusts", "rust", C::INANIMATE),
    vi("glows", "glow", C::INANIMATE),
    vi("spreads", "spread", C::ABSTRACT),
    vi("matters", "matter", C::ABSTRACT),
    vi("persists", "persist", C::ABSTRACT),
    vi("emerges", "emerge", C::ABSTRACT),
    vi("fails", "fail", ClassSet(5)),
    vi("survives", "survive", ClassSet(5)),
    vi("changes", "change", C::ALL),
    vi("grows", "grow", C::ALL),
    vi("exists", "exist", C::ALL),
];

/// Built-in transitive verbs (animate subjects) with the classes they accept
/// as object.
pub const TRANSITIVE_VERBS: &[Verb] = &[
    vt("sees", "see", C::CONCRETE),
    vt("chases", "chase", C::CONCRETE),
    vt("finds", "find", C::CONCRETE),
    vt("carries", "carry", C::CONCRETE),
    vt("pushes", "push", C::CONCRETE),
    vt("holds", "hold", C::CONCRETE),
    vt("watches", "watch", C::CONCRETE),
    vt("paints", "paint", C::CONCRETE),
    vt("kicks", "kick", C::CONCRETE),
    vt(FEEDS, "feed", C::ANIMATE),
    vt("helps", "help", C::ANIMATE),
    vt("visits", "visit", C::ANIMATE),
    vt("calls", "call", C::ANIMATE),
    vt("teaches", "teach", C::ANIMATE),
    vt("drops", "drop", C::INANIMATE),
    vt("throws", "throw", C::INANIMATE),
    vt("buys", "buy", C::INANIMATE),
    vt("sells", "sell", C::INANIMATE),
    vt("builds", "build", C::INANIMATE),
    vt("explains", "explain", C::ABSTRACT),
    vt("discusses", "discuss", C::ABSTRACT),
    vt("doubts", "doubt", C::ABSTRACT),
    vt("fears", "fear", ClassSet(5)),
    vt("trusts", "trust", ClassSet(5)),
    vt("understands", "understand", ClassSet(5)),
    vt("likes", "like", C::ALL),
    vt("follows", "follow", C::ALL),
    vt("admires", "admire", C::ALL),
    vt("remembers", "remember", C::ALL),
    vt("forgets", "forget", C::ALL),
    vt("hates", "hate", C::ALL),
    vt("ignores", "ignore", C::ALL),
];

/// Built-in adjectives with the noun classes they combine with; the last
/// twelve carry a sentiment valence and combine with every class.
pub const ADJECTIVES: &[Adjective] = &[
    a("big", C::CONCRETE),
    a("small", C::CONCRETE),
    a("red", C::CONCRETE),
    a("blue", C::CONCRETE),
    a("green", C::CONCRETE),
    a("heavy", C::CONCRETE),
    a("tall", C::CONCRETE),
    a("wet", C::CONCRETE),
    a("soft", C::CONCRETE),
    a("happy", C::ANIMATE),
    a("hungry", C::ANIMATE),
    a("brave", C::ANIMATE),
    a("sleepy", C::ANIMATE),
    a("angry", C::ANIMATE),
    a("clever", C::ANIMATE),
    a("shy", C::ANIMATE),
    a("proud", C::ANIMATE),
    a("lazy", C::ANIMATE),
    a("young", C::ANIMATE),
    a("wooden", C::INANIMATE),
    a("broken", C::INANIMATE),
    a("empty", C::INANIMATE),
    a("shiny", C::INANIMATE),
    a("round", C::INANIMATE),
    a("complex", C::ABSTRACT),
    a("vague", C::ABSTRACT),
    a("true", C::ABSTRACT),
    a("false", C::ABSTRACT),
    a("simple", ClassSet(6)),
    a("new", ClassSet(6)),
    a("famous", ClassSet(5)),
    a("important", ClassSet(5)),
    a("old", C::ALL),
    a("strange", C::ALL),
    a("popular", C::ALL),
    av("good", Valence::Positive),
    av("great", Valence::Positive),
    av("wonderful", Valence::Positive),
    av("lovely", Valence::Positive),
    av("pleasant", Valence::Positive),
    av("excellent", Valence::Positive),
    av("bad", Valence::Negative),
    av("awful", Valence::Negative),
    av("terrible", Valence::Negative),
    av("horrible", Valence::Negative),
    av("nasty", Valence::Negative),
    av("dreadful", Valence::Negative),
];

/// Built-in prepositions: which heads their PP modifies, which nouns they take.
pub const PREPOSITIONS: &[Preposition] = &[
    p(OF, C::ALL, C::CONCRETE),
    p(IN, C::CONCRETE, C::CONCRETE),
    p("near", C::CONCRETE, C::CONCRETE),
    p("behind", C::CONCRETE, C::CONCRETE),
    p("under", C::CONCRETE, C::CONCRETE),
    p("beside", C::CONCRETE, C::CONCRETE),
    p("above", C::CONCRETE, C::CONCRETE),
    p("with", C::CONCRETE, C::CONCRETE),
    p("without", C::CONCRETE, C::CONCRETE),
    p("about", C::ABSTRACT, C::ALL),
];
