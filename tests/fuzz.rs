//! Mutation fuzzing of the readers of files users write or bring: the
//! pipeline reader (spec + plan), TextGrid, Gentle CSV, words TSV and
//! respdict.json. Each starts from a corpus of valid files (the pipelines
//! in pipelines/, files the writers produce from random content, the real
//! respdict and events.tsv fixtures when present) and feeds mutated copies
//! (bytes flipped, ranges cut or repeated, tokens the formats give meaning
//! to inserted, two files spliced) to the reader, which must answer Ok or
//! Err and never panic.
//!
//! A short run is part of the normal test suite (`FUZZ_CASES` per reader).
//! Longer: `VOXFLOW_FUZZ_CASES=200000 cargo test --release --workspace
//! --test fuzz`; a failure prints the seed (`VOXFLOW_TEST_SEED` replays it)
//! and keeps the input that panicked in the temp directory.

mod common;

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use common::Scratch;
use voxflow::formats::textgrid::{Interval, TextEncoding, TextGrid, TextGridForm, Tier, TierKind};
use voxflow::formats::words::Word;

/// Mutated inputs per reader in a normal test run.
const FUZZ_CASES: usize = 400;

/// Tokens that mean something to one of the formats.
const TOKENS: &[&str] = &[
    "=",
    "\"",
    "\"\"",
    "<exists>",
    "<",
    ">",
    "[",
    "]",
    "!",
    "\n",
    "\r\n",
    "\t",
    ",",
    ":",
    "{",
    "}",
    "-",
    "- ",
    "&a",
    "*a",
    "!!binary ",
    "!x ",
    "-1",
    "-0.5",
    "1e300",
    "nan",
    "inf",
    "1e-320",
    "18446744073709551616",
    "0",
    "\u{feff}",
    "${matrix.",
    "{inputs.",
    "{outputs.",
    "{params.",
    "kind: ",
    "inputs: ",
    "stages:",
    "matrix:",
    "\u{0}",
    "é",
    "'",
    "size = 99999999",
    "xmin = ",
    "xmax = ",
    "intervals [1]:",
    "onset",
    "offset",
    "word",
];

fn cases() -> usize {
    std::env::var("VOXFLOW_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(FUZZ_CASES)
}

fn mutate(rng: &mut impl Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = corpus[rng.random_range(0..corpus.len())].clone();
    for _ in 0..rng.random_range(1..6) {
        let at = if bytes.is_empty() { 0 } else { rng.random_range(0..=bytes.len()) };
        match rng.random_range(0..7) {
            0 if !bytes.is_empty() => {
                let i = rng.random_range(0..bytes.len());
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
            1 => bytes.truncate(at),
            2 => {
                let end = rng.random_range(at..=bytes.len());
                bytes.drain(at..end);
            }
            3 => {
                let end = (at + rng.random_range(0..64)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            4 | 5 => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())];
                bytes.splice(at..at, token.bytes());
            }
            _ => {
                let other = &corpus[rng.random_range(0..corpus.len())];
                let from = rng.random_range(0..=other.len());
                bytes.truncate(at);
                bytes.extend_from_slice(&other[from..]);
            }
        }
    }
    bytes
}

/// Feeds `cases()` mutations of `corpus` to `read` (given the file's path)
/// and fails on the first panic, keeping the input.
fn fuzz(name: &str, extension: &str, corpus: Vec<Vec<u8>>, read: impl Fn(&Path)) {
    let seed = common::fresh_seed();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = Scratch::new(&format!("fuzz-{name}"));
    for read_back in &corpus {
        let path = dir.join(&format!("seed.{extension}"));
        std::fs::write(&path, read_back).unwrap();
        read(&path);
    }
    for case in 0..cases() {
        let input = mutate(&mut rng, &corpus);
        let path = dir.join(&format!("case.{extension}"));
        std::fs::write(&path, &input).unwrap();
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(&path))).is_err() {
            let kept = std::env::temp_dir().join(format!("voxflow-fuzz-{name}-{seed}-{case}.{extension}"));
            std::fs::write(&kept, &input).unwrap();
            panic!("{name}: case {case} panicked (seed {seed}); the input is {}", kept.display());
        }
    }
}

fn random_words(rng: &mut impl Rng) -> Vec<Word> {
    let mut t = rng.random_range(0.0..2.0);
    (0..rng.random_range(1..30))
        .map(|_| {
            let onset = t;
            t += rng.random_range(0.05..0.8);
            let word: String =
                (0..rng.random_range(1..9)).map(|_| (b'a' + rng.random_range(0..26u8)) as char).collect();
            Word { word, onset, offset: t }
        })
        .collect()
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_pipeline_reader_never_panics() {
    let corpus: Vec<Vec<u8>> = std::fs::read_dir(repository().join("pipelines"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    assert!(corpus.len() >= 3, "pipelines/ has no pipelines to start from");
    fuzz("pipeline", "yaml", corpus, |path| {
        let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).to_string();
        if let Ok(spec) = voxflow::spec::parse(path, &text, &["fit.alphas=[1, 2]".to_string()]) {
            let _ = voxflow::plan::resolve(&spec, None);
        }
    });
}

#[test]
fn the_textgrid_reader_never_panics() {
    let mut rng = ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let scratch = Scratch::new("fuzz-textgrid-corpus");
    let mut corpus = Vec::new();
    for (i, (form, encoding)) in [
        (TextGridForm::Long, TextEncoding::Utf8),
        (TextGridForm::Short, TextEncoding::Utf8),
        (TextGridForm::Long, TextEncoding::Utf16Be),
    ]
    .into_iter()
    .enumerate()
    {
        let words = random_words(&mut rng);
        let end = words.last().unwrap().offset;
        let intervals =
            words.iter().map(|w| Interval { xmin: w.onset, xmax: w.offset, text: w.word.clone() }).collect();
        let points = vec![Interval { xmin: end / 2.0, xmax: end / 2.0, text: "bell".into() }];
        let grid = TextGrid {
            xmin: 0.0,
            xmax: end,
            tiers: vec![
                Tier { name: "words".into(), kind: TierKind::Interval, xmin: 0.0, xmax: end, intervals },
                Tier { name: "bell".into(), kind: TierKind::Point, xmin: 0.0, xmax: end, intervals: points },
            ],
        };
        let path = scratch.join(&format!("{i}.TextGrid"));
        voxflow::formats::textgrid::write_textgrid(&path, &grid, form, encoding).unwrap();
        corpus.push(std::fs::read(&path).unwrap());
    }
    fuzz("textgrid", "TextGrid", corpus, |path| {
        let _ = voxflow::formats::textgrid::read_textgrid(path);
        let _ = voxflow::formats::textgrid::words_from_textgrid(path, "words", &["sp"]);
    });
}

#[test]
fn the_word_table_readers_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let scratch = Scratch::new("fuzz-words-corpus");
    let (mut csv, mut tsv) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let words = random_words(&mut rng);
        let path = scratch.join(&format!("{i}.csv"));
        voxflow::formats::words::write_gentle_csv(&path, &words).unwrap();
        csv.push(std::fs::read(&path).unwrap());
        let path = scratch.join(&format!("{i}.tsv"));
        voxflow::formats::words::write_words_tsv(&path, &words).unwrap();
        tsv.push(std::fs::read(&path).unwrap());
    }
    let events = Path::new("/work/shared/fixtures/real/ds002345/sub-075_task-21styear_events.tsv");
    if let Ok(bytes) =
        std::fs::read(repository().join("../shared/fixtures/real/ds002345/sub-075_task-21styear_events.tsv"))
            .or_else(|_| std::fs::read(events))
    {
        tsv.push(bytes);
    }
    fuzz("gentle", "csv", csv, |path| {
        let _ = voxflow::formats::words::read_gentle_csv(path);
        let _ = voxflow::formats::words::words_from_gentle_csv(path);
    });
    fuzz("tsv", "tsv", tsv, |path| {
        let _ = voxflow::formats::words::words_from_tsv(path);
    });
}

#[test]
fn the_respdict_reader_never_panics() {
    let mut rng = ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let scratch = Scratch::new("fuzz-respdict-corpus");
    let mut corpus = Vec::new();
    for i in 0..3 {
        let counts =
            (0..rng.random_range(1..12)).map(|s| (format!("story{s}"), rng.random_range(1..600usize))).collect();
        let path = scratch.join(&format!("{i}.json"));
        voxflow::formats::respdict::write_respdict(&path, &counts).unwrap();
        corpus.push(std::fs::read(&path).unwrap());
    }
    let real = Path::new("/work/shared/fixtures/real/ds003020/respdict.json");
    if let Ok(bytes) = std::fs::read(repository().join("../shared/fixtures/real/ds003020/respdict.json"))
        .or_else(|_| std::fs::read(real))
    {
        corpus.push(bytes);
    }
    fuzz("respdict", "json", corpus, |path| {
        let _ = voxflow::formats::respdict::read_respdict(path);
    });
}
