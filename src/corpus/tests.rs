//! Tests of the generator against the independent checker ([`super::check`]).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::check::{self, Modifier as M, Vp};
use super::lexicon::{Category, Number, Valence, VocabularyConfig};
use super::stimuli::flip_number;
use super::*;
use crate::testing::fresh_rng;

/// A configuration with random knobs (a fresh seed each run).
fn random_config(rng: &mut ChaCha8Rng) -> GrammarConfig {
    let full = VocabularyConfig::full();
    let p_relative_clause = rng.random_range(0.0..0.5);
    let p_transitive = rng.random_range(0.0..0.7);
    GrammarConfig {
        seed: rng.random(),
        documents: rng.random_range(1..6),
        sentences_per_document: rng.random_range(1..40),
        max_depth: rng.random_range(0..5),
        p_relative_clause,
        p_prepositional_phrase: rng.random_range(0.0..(1.0 - p_relative_clause)),
        p_object_relative: rng.random(),
        p_adjective: rng.random_range(0.0..0.8),
        max_adjectives: rng.random_range(0..4),
        p_plural: rng.random(),
        p_transitive,
        p_copular: rng.random_range(0.0..(1.0 - p_transitive)),
        p_negation: rng.random(),
        vocabulary: VocabularyConfig {
            nouns_animate: rng.random_range(2..=full.nouns_animate),
            nouns_inanimate: rng.random_range(2..=full.nouns_inanimate),
            nouns_abstract: if rng.random() { 0 } else { rng.random_range(1..=full.nouns_abstract) },
            verbs_intransitive: rng.random_range(3..=full.verbs_intransitive),
            verbs_transitive: rng.random_range(2..=full.verbs_transitive),
            adjectives: rng.random_range(5..=full.adjectives),
            prepositions: rng.random_range(2..=full.prepositions),
        },
        facts: FactConfig {
            entities: rng.random_range(0..8),
            places: rng.random_range(1..5),
            repetitions: rng.random_range(1..4),
            held_out_fraction: rng.random(),
        },
    }
}

/// |successes - n p| within 5 binomial standard deviations (plus one count).
fn assert_binomial(what: &str, successes: usize, n: usize, p: f64) {
    let expected = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    let diff = (successes as f64 - expected).abs();
    assert!(diff <= 5.0 * sd + 1.0, "{what}: {successes} of {n}, expected {expected:.1} +- {sd:.1}");
}

#[test]
fn the_same_seed_gives_the_same_corpus_and_another_seed_another() {
    let mut rng = fresh_rng("the_same_seed_gives_the_same_corpus_and_another_seed_another");
    let config = GrammarConfig { seed: rng.random(), documents: 5, ..GrammarConfig::default() };
    let a = generate(&config).unwrap();
    let b = generate(&config).unwrap();
    assert_eq!(a.documents, b.documents);
    assert_eq!(a.entities, b.entities);
    assert_eq!(a.text(), b.text());
    let c = generate(&GrammarConfig { seed: config.seed.wrapping_add(1), ..config.clone() }).unwrap();
    assert_ne!(a.text(), c.text());
    assert_ne!(a.entities, c.entities);

    // More documents: the same lexicon, facts and stimuli, the same grammar
    // sentences at the start.
    let more = generate(&GrammarConfig { documents: 9, ..config.clone() }).unwrap();
    assert_eq!(a.lexicon.entries().collect::<Vec<_>>(), more.lexicon.entries().collect::<Vec<_>>());
    assert_eq!(a.entities, more.entities);
    let grammar =
        |c: &Corpus| -> Vec<Sentence> { c.sentences().filter(|s| s.kind == SentenceKind::Grammar).cloned().collect() };
    assert_eq!(grammar(&a)[..], grammar(&more)[..grammar(&a).len()]);
    let pairs = |c: &GrammarConfig| minimal_pairs(c, Phenomenon::AcrossObjectRelative, 20).unwrap();
    assert_eq!(pairs(&config), pairs(&GrammarConfig { documents: 9, ..config.clone() }));
    assert_ne!(pairs(&config), pairs(&GrammarConfig { seed: config.seed.wrapping_add(1), ..config.clone() }));
}

#[test]
fn every_sentence_parses_agrees_and_respects_selection() {
    let mut rng = fresh_rng("every_sentence_parses_agrees_and_respects_selection");
    for _ in 0..40 {
        let config = random_config(&mut rng);
        let corpus = generate(&config).unwrap();
        let lexicon = &corpus.lexicon;
        let mut grammar_sentences = 0;
        for sentence in corpus.sentences() {
            let tokens = &sentence.tokens;
            let parse = check::parse(lexicon, tokens).unwrap_or_else(|e| panic!("{e}: {}", sentence.text()));
            let errors = check::agreement_errors(&parse, tokens, lexicon);
            assert!(errors.is_empty(), "{errors:?}: {}", sentence.text());
            let errors = check::selection_errors(&parse, tokens, lexicon);
            assert!(errors.is_empty(), "{errors:?}: {}", sentence.text());
            if sentence.kind == SentenceKind::Fact {
                continue;
            }
            grammar_sentences += 1;
            assert!(tokens.iter().all(|t| t.category != Category::ProperNoun), "{}", sentence.text());
            for np in check::noun_phrases(&parse) {
                assert!(np.adjectives.len() <= config.max_adjectives, "{}", sentence.text());
                assert!(np.modifier.is_none() || np.depth < config.max_depth, "{}", sentence.text());
                if let Some(M::SubjectRelative { vp: inner }) = &np.modifier {
                    assert!(!matches!(**inner, Vp::Intransitive { pp: Some(_), .. }), "{}", sentence.text());
                }
            }
            assert!(!matches!(parse.vp, Vp::Intransitive { pp: Some(_), .. }), "{}", sentence.text());
            assert!(!matches!(parse.vp, Vp::Copular { nominal: Some(_), .. }), "{}", sentence.text());
        }
        assert_eq!(grammar_sentences, config.documents * config.sentences_per_document);

        // The text is the tokens, the table is the tokens.
        let text = corpus.text();
        let words: Vec<&str> = text.split_whitespace().collect();
        let rows: Vec<_> = corpus.rows().collect();
        assert_eq!(words, rows.iter().map(|r| r.word).collect::<Vec<_>>());
        assert_eq!(text.split("\n\n").count(), config.documents);
        assert_eq!(text.lines().filter(|l| !l.is_empty()).count(), corpus.sentences().count());
        for (i, row) in rows.iter().enumerate() {
            let entry = lexicon.lookup(row.word).unwrap();
            assert_eq!((entry.category, entry.number), (row.category, row.number));
            if i > 0 && row.position > 0 {
                let previous = rows[i - 1];
                assert_eq!(
                    (previous.document, previous.sentence, previous.position + 1),
                    (row.document, row.sentence, row.position)
                );
            }
        }
    }
}

#[test]
fn modifiers_adjectives_numbers_and_negation_occur_at_the_configured_rates() {
    let mut rng = fresh_rng("modifiers_adjectives_numbers_and_negation_occur_at_the_configured_rates");
    for _ in 0..3 {
        let p_relative_clause = rng.random_range(0.05..0.4);
        let config = GrammarConfig {
            seed: rng.random(),
            documents: 300,
            sentences_per_document: 100,
            max_depth: rng.random_range(1..4),
            p_relative_clause,
            p_prepositional_phrase: rng.random_range(0.05..(0.95 - p_relative_clause)),
            p_object_relative: rng.random_range(0.1..0.9),
            p_adjective: rng.random_range(0.1..0.7),
            max_adjectives: 2,
            p_plural: rng.random_range(0.2..0.8),
            p_negation: rng.random_range(0.1..0.9),
            facts: FactConfig { entities: 0, ..FactConfig::default() },
            ..GrammarConfig::default()
        };
        let corpus = generate(&config).unwrap();
        let (mut eligible, mut relatives, mut objects, mut pps) = (0, 0, 0, 0);
        let (mut nps, mut with_adjective, mut plural) = (0, 0, 0);
        let (mut copular, mut negated) = (0, 0);
        for sentence in corpus.sentences() {
            let parse = check::parse(&corpus.lexicon, &sentence.tokens).unwrap();
            for np in check::noun_phrases(&parse) {
                nps += 1;
                with_adjective += usize::from(!np.adjectives.is_empty());
                plural += usize::from(np.number == Number::Plural);
                if np.depth < config.max_depth {
                    eligible += 1;
                    match &np.modifier {
                        Some(M::Pp { .. }) => pps += 1,
                        Some(M::SubjectRelative { .. }) => relatives += 1,
                        Some(M::ObjectRelative { .. }) => {
                            relatives += 1;
                            objects += 1;
                        }
                        None => {}
                    }
                }
            }
            let mut vps = vec![&parse.vp];
            for np in check::noun_phrases(&parse) {
                if let Some(M::SubjectRelative { vp }) = &np.modifier {
                    vps.push(vp);
                }
            }
            for vp in vps {
                if let Vp::Copular { negation, .. } = vp {
                    copular += 1;
                    negated += usize::from(negation.is_some());
                }
            }
        }
        assert!(eligible > 2000 && copular > 200, "{eligible} {copular}");
        assert_binomial("relative clauses", relatives, eligible, config.p_relative_clause);
        assert_binomial("PPs", pps, eligible, config.p_prepositional_phrase);
        assert_binomial("object relatives", objects, relatives, config.p_object_relative);
        assert_binomial("adjectives", with_adjective, nps, config.p_adjective);
        assert_binomial("plurals", plural, nps, config.p_plural);
        assert_binomial("negations", negated, copular, config.p_negation);
    }
}

#[test]
fn minimal_pairs_differ_in_one_word_of_flipped_number() {
    let mut rng = fresh_rng("minimal_pairs_differ_in_one_word_of_flipped_number");
    for _ in 0..3 {
        let config =
            GrammarConfig { facts: FactConfig { entities: 0, ..FactConfig::default() }, ..random_config(&mut rng) };
        let lexicon = config.lexicon();
        for phenomenon in Phenomenon::ALL {
            let n = 101;
            let pairs = minimal_pairs(&config, phenomenon, n).unwrap();
            assert_eq!(pairs.len(), n);
            let mut singular = 0;
            for pair in &pairs {
                let (good, bad) = (&pair.good, &pair.bad);
                let text = pair.good_text();
                assert_eq!(good.len(), bad.len());
                let differ: Vec<usize> = (0..good.len()).filter(|&i| good[i] != bad[i]).collect();
                assert_eq!(differ, vec![pair.critical], "{text} / {}", pair.bad_text());
                let (g, b) = (&good[pair.critical], &bad[pair.critical]);
                assert_eq!(g.category, b.category);
                assert_eq!(g.number.map(Number::flip), b.number);
                assert_eq!(flip_number(&lexicon, b).as_ref(), Some(g));
                let expected = if phenomenon == Phenomenon::DeterminerNoun {
                    vec![Category::Determiner]
                } else {
                    vec![Category::VerbIntransitive, Category::VerbTransitive, Category::Copula]
                };
                assert!(expected.contains(&g.category), "{text}");

                let parse = check::parse(&lexicon, good).unwrap_or_else(|e| panic!("{e}: {text}"));
                assert_eq!(check::agreement_errors(&parse, good, &lexicon), Vec::<String>::new(), "{text}");
                assert_eq!(check::selection_errors(&parse, good, &lexicon), Vec::<String>::new(), "{text}");
                let bad_parse = check::parse(&lexicon, bad).unwrap_or_else(|e| panic!("{e}: {}", pair.bad_text()));
                assert_eq!(check::agreement_errors(&bad_parse, bad, &lexicon).len(), 1, "{}", pair.bad_text());

                // The controller, attractor and critical word as the parse sees them.
                let subject = &parse.subject;
                let controller_number = good[pair.controller].number;
                singular += usize::from(controller_number == Some(Number::Singular));
                if let Some(attractor) = pair.attractor {
                    assert!(good[attractor].category.is_noun(), "{text}");
                    assert_eq!(good[attractor].number, controller_number.map(Number::flip), "{text}");
                }
                match phenomenon {
                    Phenomenon::SimpleAgreement | Phenomenon::DeterminerNoun => {
                        assert!(subject.modifier.is_none(), "{text}");
                        assert_eq!(pair.attractor, None);
                        assert_eq!(pair.controller, subject.head);
                        let critical = if phenomenon == Phenomenon::DeterminerNoun {
                            assert!(["this", "these"].contains(&g.text.as_str()), "{text}");
                            subject.determiner.unwrap()
                        } else {
                            parse.vp.verb()
                        };
                        assert_eq!(pair.critical, critical);
                    }
                    Phenomenon::AcrossPrepositionalPhrase => {
                        let Some(M::Pp { np, .. }) = &subject.modifier else { panic!("no PP: {text}") };
                        assert_eq!(
                            (pair.controller, pair.critical, pair.attractor),
                            (subject.head, parse.vp.verb(), Some(np.head))
                        );
                    }
                    Phenomenon::AcrossSubjectRelative => {
                        let Some(M::SubjectRelative { vp }) = &subject.modifier else { panic!("no RC: {text}") };
                        let Vp::Transitive { object, .. } = &**vp else { panic!("no object: {text}") };
                        assert_eq!(
                            (pair.controller, pair.critical, pair.attractor),
                            (subject.head, parse.vp.verb(), Some(object.head))
                        );
                    }
                    Phenomenon::AcrossObjectRelative => {
                        let Some(M::ObjectRelative { subject: inner, .. }) = &subject.modifier else {
                            panic!("{text}")
                        };
                        assert_eq!(
                            (pair.controller, pair.critical, pair.attractor),
                            (subject.head, parse.vp.verb(), Some(inner.head))
                        );
                    }
                    Phenomenon::WithinObjectRelative => {
                        let Some(M::ObjectRelative { subject: inner, verb }) = &subject.modifier else {
                            panic!("{text}")
                        };
                        assert_eq!(
                            (pair.controller, pair.critical, pair.attractor),
                            (inner.head, *verb, Some(subject.head))
                        );
                    }
                }
            }
            assert_eq!(singular, n.div_ceil(2), "{phenomenon:?}");
        }
    }
}

#[test]
fn the_checker_rejects_what_it_should() {
    let config =
        GrammarConfig { facts: FactConfig { entities: 0, ..FactConfig::default() }, ..GrammarConfig::default() };
    let lexicon = config.lexicon();
    let token = |text: &str| {
        let entry = lexicon.lookup(text).unwrap_or_else(|| panic!("{text}"));
        Token { text: text.into(), category: entry.category, number: entry.number }
    };
    let sentence = |words: &str| words.split(' ').map(token).collect::<Vec<_>>();
    let noun = |class| lexicon.nouns_of(class).next().unwrap();
    let animate = noun(NounClass::Animate);
    let inanimate = noun(NounClass::Inanimate);
    let verb = lexicon.verb("lives").unwrap();
    let ok = sentence(&format!("the {} {} .", animate.singular, verb.singular));
    let parse = check::parse(&lexicon, &ok).unwrap();
    assert!(check::agreement_errors(&parse, &ok, &lexicon).is_empty());
    assert!(check::selection_errors(&parse, &ok, &lexicon).is_empty());
    let disagree = sentence(&format!("the {} {} .", animate.plural, verb.singular));
    let parse = check::parse(&lexicon, &disagree).unwrap();
    assert_eq!(check::agreement_errors(&parse, &disagree, &lexicon).len(), 1);
    let unselected = sentence(&format!("the {} {} .", inanimate.singular, verb.singular));
    let parse = check::parse(&lexicon, &unselected).unwrap();
    assert_eq!(check::selection_errors(&parse, &unselected, &lexicon).len(), 1);
    let mut mislabelled = ok.clone();
    mislabelled[1].category = Category::NounInanimate;
    assert!(check::parse(&lexicon, &mislabelled).is_err());
    assert!(check::parse(&lexicon, &sentence(&format!("the {} .", animate.singular))).is_err());
    assert!(check::parse(&lexicon, &ok[..3]).is_err());
}

#[test]
fn contrast_sets_are_balanced_and_of_the_right_categories() {
    let mut rng = fresh_rng("contrast_sets_are_balanced_and_of_the_right_categories");
    let mut config = random_config(&mut rng);
    config.vocabulary.nouns_abstract = rng.random_range(1..=VocabularyConfig::full().nouns_abstract);
    let lexicon = config.lexicon();
    let n = 60;
    for contrast in Contrast::ALL {
        let words = rng.random_range(1..12);
        let items = contrast_set(&config, contrast, n, words).unwrap();
        assert_eq!(items, contrast_set(&config, contrast, n, words).unwrap());
        assert_eq!(items.len(), 2 * n);
        let [first, second] = contrast.conditions();
        for pair in items.chunks(2) {
            assert_eq!((pair[0].condition, pair[1].condition), (first, second));
            assert_eq!(pair[0].tokens.len(), pair[1].tokens.len());
        }
        for item in &items {
            for token in &item.tokens {
                let entry = lexicon.lookup(&token.text).unwrap();
                assert_eq!((entry.category, entry.number), (token.category, token.number));
            }
            let categories: Vec<Category> = item.tokens.iter().map(|t| t.category).collect();
            let all = |f: &dyn Fn(Category) -> bool| categories.iter().all(|&c| f(c));
            let ok = match item.condition {
                "noun" => all(&|c| c.is_noun()),
                "verb" => all(&|c| c.is_verb()),
                "animate" => all(&|c| c == Category::NounAnimate),
                "inanimate" | "concrete" => all(&|c| c == Category::NounInanimate),
                "abstract" => all(&|c| c == Category::NounAbstract),
                "sentence" | "word_list" => true,
                other => panic!("{other}"),
            };
            assert!(ok, "{} {}", item.condition, item.text());
            if contrast != Contrast::SentencesWordLists {
                assert_eq!(item.tokens.len(), words);
                let mut lemmas: Vec<&str> = item
                    .tokens
                    .iter()
                    .map(|t| {
                        if t.number == Some(Number::Plural) {
                            lexicon.lookup(&t.text).unwrap().other_number.as_deref().unwrap()
                        } else {
                            t.text.as_str()
                        }
                    })
                    .collect();
                let len = lemmas.len();
                lemmas.sort_unstable();
                lemmas.dedup();
                let pool = match item.condition {
                    "noun" => lexicon.nouns.len(),
                    "verb" => lexicon.intransitive.len() + lexicon.transitive.len(),
                    "animate" => lexicon.nouns_of(NounClass::Animate).count(),
                    "inanimate" | "concrete" => lexicon.nouns_of(NounClass::Inanimate).count(),
                    _ => lexicon.nouns_of(NounClass::Abstract).count(),
                };
                if pool >= words {
                    assert_eq!(lemmas.len(), len, "repeats in {}", item.text());
                }
            }
        }
        if contrast == Contrast::SentencesWordLists {
            for pair in items.chunks(2) {
                let mut sentence = pair[0].tokens.clone();
                sentence.push(Token { text: ".".into(), category: Category::Punctuation, number: None });
                check::parse(&lexicon, &sentence).unwrap_or_else(|e| panic!("{e}: {}", pair[0].text()));
                assert_ne!(pair[0].tokens, pair[1].tokens);
                let sorted = |tokens: &[Token]| {
                    let mut words: Vec<String> = tokens.iter().map(|t| t.text.clone()).collect();
                    words.sort();
                    words
                };
                assert_eq!(sorted(&pair[0].tokens), sorted(&pair[1].tokens));
            }
        }
    }
    config.vocabulary.nouns_abstract = 0;
    assert!(contrast_set(&config, Contrast::ConcreteAbstract, 3, 3).is_err());
    assert!(contrast_set(&config, Contrast::NounsVerbs, 3, 0).is_err());
}

#[test]
fn sentiment_labels_follow_the_predicate_and_its_negation() {
    let mut rng = fresh_rng("sentiment_labels_follow_the_predicate_and_its_negation");
    let config =
        GrammarConfig { facts: FactConfig { entities: 0, ..FactConfig::default() }, ..random_config(&mut rng) };
    let lexicon = config.lexicon();
    let n = 200;
    let items = sentiment_set(&config, n).unwrap();
    assert_eq!(items.len(), 2 * n);
    for (label, negated) in
        [(Valence::Positive, false), (Valence::Positive, true), (Valence::Negative, false), (Valence::Negative, true)]
    {
        assert_eq!(items.iter().filter(|i| i.label == label && i.negated == negated).count(), n / 2);
    }
    for item in &items {
        let text = item.text();
        let parse = check::parse(&lexicon, &item.tokens).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(check::agreement_errors(&parse, &item.tokens, &lexicon).is_empty(), "{text}");
        let Vp::Copular { negation, adjective: Some(adjective), .. } = parse.vp else { panic!("{text}") };
        assert_eq!(adjective, item.adjective);
        let valence = lexicon.adjective(&item.tokens[adjective].text).unwrap().valence.expect("a valence");
        assert_eq!(negation.is_some(), item.negated, "{text}");
        let label = if negation.is_some() { valence.flip() } else { valence };
        assert_eq!(label, item.label, "{text}");
        for (i, token) in item.tokens.iter().enumerate() {
            if token.category == Category::Adjective && i != adjective {
                assert_eq!(lexicon.adjective(&token.text).unwrap().valence, None, "{text}");
            }
        }
    }
}

#[test]
fn facts_are_stated_held_out_and_probed() {
    let mut rng = fresh_rng("facts_are_stated_held_out_and_probed");
    let facts = FactConfig {
        entities: rng.random_range(1..30),
        places: rng.random_range(1..10),
        repetitions: rng.random_range(1..5),
        held_out_fraction: rng.random(),
    };
    let config = GrammarConfig { seed: rng.random(), documents: 7, facts: facts.clone(), ..GrammarConfig::default() };
    let corpus = generate(&config).unwrap();
    assert_eq!(corpus.entities.len(), facts.entities);
    let held_out = corpus.entities.iter().filter(|e| e.held_out).count();
    assert_eq!(held_out, (facts.held_out_fraction * facts.entities as f64).round() as usize);
    let mut names: Vec<&str> = corpus.entities.iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), facts.entities);
    for entity in &corpus.entities {
        assert!(corpus.lexicon.places.contains(&entity.home));
        assert!(corpus.lexicon.nouns.iter().any(|n| n.animal && n.singular == entity.pet));
        assert!(!corpus.lexicon.places.contains(&entity.name));
    }
    let lines: Vec<String> = corpus.sentences().map(|s| s.text()).collect();
    let count = |text: &str| lines.iter().filter(|l| *l == text).count();
    let facts_in_corpus = corpus.sentences().filter(|s| s.kind == SentenceKind::Fact).count();
    assert_eq!(facts_in_corpus, facts.repetitions * 2 * (2 * facts.entities - held_out));
    let probes = corpus.fact_probes();
    assert_eq!(probes.len(), 4 * facts.entities);
    for probe in &probes {
        let entity = &corpus.entities[probe.entity];
        let answer = match probe.relation {
            Relation::Home => &entity.home,
            Relation::Pet => &entity.pet,
        };
        assert_eq!(&probe.answer.text, answer);
        let sentence = format!("{} {} .", probe.prompt_text(), probe.answer.text);
        assert!(probe.prompt_text().contains(&entity.name));
        assert_eq!(probe.in_training, !(entity.held_out && probe.template == Template::Paraphrase));
        let expected = if probe.in_training { facts.repetitions } else { 0 };
        assert_eq!(count(&sentence), expected, "{sentence}");
    }
    let no_facts = generate(&GrammarConfig { facts: FactConfig { entities: 0, ..facts }, ..config }).unwrap();
    assert!(no_facts.entities.is_empty() && no_facts.fact_probes().is_empty());
    assert!(no_facts.sentences().all(|s| s.kind == SentenceKind::Grammar));
}

#[test]
fn the_config_reads_as_stage_params() {
    let config = GrammarConfig::default();
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(serde_json::from_value::<GrammarConfig>(json).unwrap(), config);
    let partial: GrammarConfig = serde_json::from_str(
        r#"{"seed": 7, "max_depth": 1, "vocabulary": {"nouns_abstract": 0}, "facts": {"entities": 3}}"#,
    )
    .unwrap();
    assert_eq!(partial.seed, 7);
    assert_eq!(partial.vocabulary.nouns_abstract, 0);
    assert_eq!(partial.vocabulary.nouns_animate, VocabularyConfig::default().nouns_animate);
    assert_eq!(partial.facts.entities, 3);
    assert_eq!(partial.facts.places, FactConfig::default().places);
    for unknown in [r#"{"seeds": 1}"#, r#"{"vocabulary": {"nouns": 3}}"#, r#"{"facts": {"people": 3}}"#] {
        assert!(serde_json::from_str::<GrammarConfig>(unknown).is_err(), "{unknown}");
    }
    let invalid = [
        GrammarConfig { p_relative_clause: 0.7, p_prepositional_phrase: 0.4, ..GrammarConfig::default() },
        GrammarConfig { p_transitive: 0.8, p_copular: 0.3, ..GrammarConfig::default() },
        GrammarConfig { p_plural: 1.5, ..GrammarConfig::default() },
        GrammarConfig { documents: 0, ..GrammarConfig::default() },
        GrammarConfig { max_depth: 11, ..GrammarConfig::default() },
        GrammarConfig {
            vocabulary: VocabularyConfig { nouns_animate: 1, ..VocabularyConfig::default() },
            ..GrammarConfig::default()
        },
        GrammarConfig {
            vocabulary: VocabularyConfig { adjectives: 1000, ..VocabularyConfig::default() },
            ..GrammarConfig::default()
        },
        GrammarConfig { facts: FactConfig { places: 0, ..FactConfig::default() }, ..GrammarConfig::default() },
    ];
    for config in invalid {
        assert!(generate(&config).is_err(), "{config:?}");
        assert!(minimal_pairs(&config, Phenomenon::SimpleAgreement, 1).is_err());
    }
    for category in Category::ALL {
        assert_eq!(serde_json::to_value(category).unwrap(), category.as_str());
    }
}

/// The output of one seed is pinned: stored corpora are keyed by their
/// parameters, so a change of the generator's output must be deliberate
/// (update this text and say so in the commit).
#[test]
fn a_fixed_seed_gives_a_fixed_corpus() {
    let config = GrammarConfig {
        seed: 7,
        documents: 2,
        sentences_per_document: 3,
        p_relative_clause: 0.5,
        p_prepositional_phrase: 0.0,
        facts: FactConfig { entities: 2, repetitions: 1, held_out_fraction: 0.5, ..FactConfig::default() },
        ..GrammarConfig::default()
    };
    let mut actual = generate(&config).unwrap().text();
    for pair in minimal_pairs(&config, Phenomenon::AcrossPrepositionalPhrase, 2).unwrap() {
        actual.push_str(&format!("{} | {}\n", pair.good_text(), pair.bad_text()));
    }
    let expected = "\
these homes that rust melt .
Nebri lives in Vinul .
Nebri feeds the wolf .
the pet of Vebe is the rabbit .
the belief exists .
the tower that all pilots that the good green wolf likes remember is broken .

the home of Vebe is Fasu .
Vebe lives in Fasu .
the dreadful painters discuss the problems that survive .
the cat admires this habit that is nasty .
every small nasty pilot that this sleepy mouse that these small pets visit remembers is horrible .
Vebe feeds the rabbit .
every table in all bottles glows . | every table in all bottles glow .
all horses in every chair walk . | all horses in every chair walks .
";
    assert_eq!(actual, expected, "\n{actual}");
}
