//! Property-based fuzzing (proptest) of the readers of files users write or
//! bring: the pipeline reader (spec + plan), TextGrid, Gentle CSV, words TSV
//! and respdict.json.
//!
//! Two kinds of inputs per reader:
//! - mutations of a corpus of valid files (the pipelines in pipelines/,
//!   files the writers produce from random content, the real respdict and
//!   events.tsv fixtures of /work/shared/fixtures/real when present): bytes
//!   flipped, inserted (random, or tokens the formats give meaning to),
//!   deleted or repeated, the file cut, lines spliced in from another file,
//!   numbers replaced by extreme values (NaN, inf, 1e309, -0, 2^64 ...);
//! - structure-aware generators: TextGrids (long and short form) with
//!   random intervals whose times may be NaN, negative, huge, reversed or
//!   overlapping; Gentle CSV and TSV tables with random rows and headers;
//!   pipelines with random stages, keys, values and placeholders; respdict
//!   maps with random values.
//!
//! The property: the reader never panics, and answers Ok or an error whose
//! text is not empty and names the file (and, where the error has a line,
//! a line of the file). A TextGrid the reader accepts has only times it
//! promises to refuse otherwise (finite, 0 to 1e6 s, ordered, no overlap).
//!
//! A short run is part of the normal test suite: `PROPTEST_CASES` cases
//! per reader and kind of input (default [`DEFAULT_CASES`]). Longer:
//! `PROPTEST_CASES=100000 cargo test --release --test fuzz`. A failure is
//! shrunk to a small input, which is kept in the temp directory and
//! printed with the seed (`VOXFLOW_TEST_SEED` replays the run).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use common::Scratch;
use voxflow::formats::error::FormatError;
use voxflow::formats::textgrid::{Interval, TextEncoding, TextGrid, TextGridForm, Tier, TierKind};
use voxflow::formats::words::Word;

/// Cases per reader and kind of input in a normal test run.
const DEFAULT_CASES: u32 = 300;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(DEFAULT_CASES)
}

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
    "\u{feff}",
    "${matrix.",
    "{inputs.",
    "{outputs.",
    "{params.",
    "{{",
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
    "item [2]:",
    "class = \"TextTier\"",
    "onset",
    "offset",
    "duration",
    "word",
    "n/a",
];

/// Numbers a reader must survive.
const EXTREMES: &[&str] = &[
    "NaN",
    "nan",
    ".nan",
    "inf",
    "-inf",
    ".inf",
    "1e300",
    "1e309",
    "-1e308",
    "1e-320",
    "-0",
    "0",
    "-1",
    "-0.5",
    "1000000.0000001",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "99999999999999999999999999999",
    "0x10",
    "+1",
    "1.5.3",
    "1e",
    "",
];

// ---------------------------------------------------------------- running

/// Runs `check` on `cases()` inputs from `strategy`, seeded from
/// `VOXFLOW_TEST_SEED` or the clock. A panic or a failed check is shrunk,
/// and the smallest failing input kept in the temp directory.
fn fuzz<S>(name: &str, strategy: S, check: impl Fn(&[u8]) -> Result<(), TestCaseError>)
where
    S: Strategy<Value = Vec<u8>>,
{
    let seed = common::fresh_seed();
    let mut bytes = [0u8; 32];
    ChaCha8Rng::seed_from_u64(seed).fill(&mut bytes);
    let config = Config { cases: cases(), max_shrink_iters: 2000, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    match runner.run(&strategy, |input| check(&input)) {
        Ok(()) => {}
        Err(TestError::Fail(reason, input)) => {
            let kept = std::env::temp_dir().join(format!("voxflow-fuzz-{name}-{seed}"));
            std::fs::write(&kept, &input).unwrap();
            panic!(
                "{name}: {reason} (seed {seed}); the shrunk input is {} ({} bytes):\n{}",
                kept.display(),
                input.len(),
                String::from_utf8_lossy(&input[..input.len().min(2000)])
            );
        }
        Err(TestError::Abort(reason)) => panic!("{name}: aborted: {reason} (seed {seed})"),
    }
}

/// Writes `input` to a fresh file of `dir` named `case.EXTENSION` and
/// returns its path.
fn case_file(dir: &Scratch, extension: &str, input: &[u8]) -> PathBuf {
    let path = dir.join(&format!("case.{extension}"));
    std::fs::write(&path, input).unwrap();
    path
}

/// The most lines `input` can be said to have (a line number in an error
/// may be one past the last line: end of file).
fn line_bound(input: &[u8]) -> usize {
    input.iter().filter(|&&b| b == b'\n' || b == b'\r').count() + 2
}

/// A reader's error must name the file, a line of it where it has one, and
/// say something.
fn clear_format_error(error: &FormatError, path: &Path, input: &[u8]) -> Result<(), TestCaseError> {
    let text = error.to_string();
    prop_assert!(!text.trim().is_empty(), "empty error text");
    prop_assert_eq!(error.path(), path, "the error names another file: {}", text);
    prop_assert!(text.contains(&path.display().to_string()), "the error text does not name the file: {}", text);
    if let Some(line) = error.line() {
        prop_assert!(line >= 1 && line <= line_bound(input), "line {} is not in the file: {}", line, text);
        prop_assert!(text.contains(&format!(":{line}:")), "the error text does not name line {}: {}", line, text);
    }
    Ok(())
}

// ---------------------------------------------------------------- mutations

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    InsertToken(Index, Index),
    InsertBytes(Index, Vec<u8>),
    Delete(Index, usize),
    Repeat(Index, usize),
    Truncate(Index),
    /// Lines `from..from + count` of corpus file `other` inserted before line `at`.
    SpliceLines {
        at: Index,
        other: Index,
        from: Index,
        count: usize,
    },
    DeleteLine(Index),
    /// The `which`-th number of the text replaced by an extreme value.
    Number {
        which: Index,
        value: Index,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(at, token)| Mutation::InsertToken(at, token)),
        1 => (any::<Index>(), vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| Mutation::InsertBytes(at, bytes)),
        2 => (any::<Index>(), 1..64usize).prop_map(|(at, len)| Mutation::Delete(at, len)),
        1 => (any::<Index>(), 1..64usize).prop_map(|(at, len)| Mutation::Repeat(at, len)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        2 => (any::<Index>(), any::<Index>(), any::<Index>(), 1..5usize)
            .prop_map(|(at, other, from, count)| Mutation::SpliceLines { at, other, from, count }),
        1 => any::<Index>().prop_map(Mutation::DeleteLine),
        4 => (any::<Index>(), any::<Index>()).prop_map(|(which, value)| Mutation::Number { which, value }),
    ]
}

/// Byte ranges of `bytes` that hold a line each, with its end of line.
fn lines(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < bytes.len() {
        out.push(start..bytes.len());
    }
    out
}

/// Byte ranges of the numbers in `bytes` (digits with a sign, a point, an
/// exponent).
fn numbers(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let mut start = i;
            if start > 0 && bytes[start - 1] == b'-' {
                start -= 1;
            }
            while i < bytes.len() && (bytes[i].is_ascii_digit() || matches!(bytes[i], b'.' | b'e' | b'E')) {
                i += 1;
            }
            out.push(start..i);
        } else {
            i += 1;
        }
    }
    out
}

fn apply(corpus: &[Vec<u8>], mut bytes: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    let position = |at: &Index, len: usize| at.index(len + 1);
    match mutation {
        Mutation::Flip(at, bit) if !bytes.is_empty() => {
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        Mutation::Flip(..) => {}
        Mutation::InsertToken(at, token) => {
            let at = position(at, bytes.len());
            bytes.splice(at..at, TOKENS[token.index(TOKENS.len())].bytes());
        }
        Mutation::InsertBytes(at, inserted) => {
            let at = position(at, bytes.len());
            bytes.splice(at..at, inserted.iter().copied());
        }
        Mutation::Delete(at, len) => {
            let at = position(at, bytes.len());
            let end = (at + len).min(bytes.len());
            bytes.drain(at..end);
        }
        Mutation::Repeat(at, len) => {
            let at = position(at, bytes.len());
            let end = (at + len).min(bytes.len());
            let copy = bytes[at..end].to_vec();
            bytes.splice(at..at, copy);
        }
        Mutation::Truncate(at) => bytes.truncate(position(at, bytes.len())),
        Mutation::SpliceLines { at, other, from, count } => {
            let here = lines(&bytes);
            let at = if here.is_empty() { 0 } else { here[at.index(here.len())].start };
            let other = &corpus[other.index(corpus.len())];
            let there = lines(other);
            if !there.is_empty() {
                let first = from.index(there.len());
                let last = (first + count).min(there.len()) - 1;
                let mut piece = other[there[first].start..there[last].end].to_vec();
                if piece.last() != Some(&b'\n') {
                    piece.push(b'\n');
                }
                bytes.splice(at..at, piece);
            }
        }
        Mutation::DeleteLine(at) => {
            let here = lines(&bytes);
            if !here.is_empty() {
                let line = here[at.index(here.len())].clone();
                bytes.drain(line);
            }
        }
        Mutation::Number { which, value } => {
            let found = numbers(&bytes);
            if !found.is_empty() {
                let range = found[which.index(found.len())].clone();
                bytes.splice(range, EXTREMES[value.index(EXTREMES.len())].bytes());
            }
        }
    }
    bytes
}

/// A file of `corpus` with one to six mutations.
fn mutated(corpus: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    assert!(!corpus.is_empty());
    let corpus = Arc::new(corpus);
    (any::<Index>(), vec(mutation(), 1..7)).prop_map(move |(seed, mutations)| {
        let start = corpus[seed.index(corpus.len())].clone();
        mutations.iter().fold(start, |bytes, m| apply(&corpus, bytes, m))
    })
}

// ---------------------------------------------------------------- generators

/// A time as written in a file: mostly plain, sometimes extreme.
fn time_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0.0f64..50.0).prop_map(|t| format!("{t:.4}")),
        1 => (0.0f64..2e6).prop_map(|t| t.to_string()),
        1 => (-10.0f64..0.0).prop_map(|t| t.to_string()),
        2 => any::<Index>().prop_map(|i| EXTREMES[i.index(EXTREMES.len())].to_string()),
        1 => "[a-z]{0,4}".prop_map(|s| s),
    ]
}

/// Free text for words and labels: letters mostly, with quotes, commas,
/// tabs, escapes and non-ASCII.
fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z]{1,8}",
        1 => "[a-z\"',\t\\\\ é{}\\[\\]=:-]{0,10}",
        1 => Just(String::new()),
        1 => Just("sp".to_string()),
    ]
}

#[derive(Debug, Clone)]
struct GridEntry {
    /// The gap before this interval (negative: it overlaps the previous one).
    gap: f64,
    length: f64,
    /// Times written instead of the computed ones.
    xmin: Option<String>,
    xmax: Option<String>,
    text: String,
}

fn grid_entry() -> impl Strategy<Value = GridEntry> {
    (
        prop_oneof![4 => Just(0.0), 2 => 0.0f64..1.0, 1 => -1.0f64..0.0],
        prop_oneof![6 => 0.01f64..2.0, 1 => -1.0f64..0.0, 1 => Just(0.0)],
        proptest::option::weighted(0.1, time_text()),
        proptest::option::weighted(0.1, time_text()),
        label(),
    )
        .prop_map(|(gap, length, xmin, xmax, text)| GridEntry { gap, length, xmin, xmax, text })
}

#[derive(Debug, Clone)]
struct GridTier {
    name: String,
    point: bool,
    entries: Vec<GridEntry>,
    /// A declared size other than the count.
    size: Option<usize>,
}

fn grid_tier() -> impl Strategy<Value = GridTier> {
    (
        prop_oneof![3 => Just("words".to_string()), 1 => label()],
        proptest::bool::weighted(0.2),
        vec(grid_entry(), 0..25),
        proptest::option::weighted(0.1, 0..30usize),
    )
        .prop_map(|(name, point, entries, size)| GridTier { name, point, entries, size })
}

fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// A TextGrid, long or short form, built from random tiers; the file's
/// times come from the entries' gaps and lengths unless an entry gives
/// its own text.
fn textgrid() -> impl Strategy<Value = Vec<u8>> {
    (vec(grid_tier(), 0..4), any::<bool>(), proptest::option::weighted(0.1, 0..6usize), any::<bool>()).prop_map(
        |(tiers, long, size, crlf)| {
            let mut rendered = Vec::new();
            let mut end = 0.0f64;
            for tier in &tiers {
                let mut t = 0.0f64;
                let mut items = Vec::new();
                for entry in &tier.entries {
                    t += entry.gap;
                    let (a, b) = (t, if tier.point { t } else { t + entry.length });
                    t = b.max(t);
                    end = end.max(b);
                    items.push((
                        entry.xmin.clone().unwrap_or_else(|| format!("{a:.4}")),
                        entry.xmax.clone().unwrap_or_else(|| format!("{b:.4}")),
                        entry.text.clone(),
                    ));
                }
                rendered.push((tier, items));
            }
            let end = format!("{end:.4}");
            let mut out = String::from("File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n\n");
            let count = size.unwrap_or(tiers.len());
            if long {
                out += &format!("xmin = 0 \nxmax = {end} \ntiers? <exists> \nsize = {count} \nitem []: \n");
                for (i, (tier, items)) in rendered.iter().enumerate() {
                    let (class, what) = if tier.point { ("TextTier", "points") } else { ("IntervalTier", "intervals") };
                    out += &format!(
                        "    item [{}]:\n        class = \"{class}\" \n        name = {} \n        xmin = 0 \n        \
                         xmax = {end} \n        {what}: size = {} \n",
                        i + 1,
                        quoted(&tier.name),
                        tier.size.unwrap_or(items.len())
                    );
                    for (j, (a, b, text)) in items.iter().enumerate() {
                        if tier.point {
                            out += &format!(
                                "        points [{}]:\n            number = {a} \n            mark = {} \n",
                                j + 1,
                                quoted(text)
                            );
                        } else {
                            out += &format!(
                                "        intervals [{}]:\n            xmin = {a} \n            xmax = {b} \n            \
                                 text = {} \n",
                                j + 1,
                                quoted(text)
                            );
                        }
                    }
                }
            } else {
                out += &format!("0\n{end}\n<exists>\n{count}\n");
                for (tier, items) in &rendered {
                    let class = if tier.point { "TextTier" } else { "IntervalTier" };
                    out += &format!(
                        "\"{class}\"\n{}\n0\n{end}\n{}\n",
                        quoted(&tier.name),
                        tier.size.unwrap_or(items.len())
                    );
                    for (a, b, text) in items {
                        if tier.point {
                            out += &format!("{a}\n{}\n", quoted(text));
                        } else {
                            out += &format!("{a}\n{b}\n{}\n", quoted(text));
                        }
                    }
                }
            }
            if crlf {
                out = out.replace('\n', "\r\n");
            }
            out.into_bytes()
        },
    )
}

/// Rows of word, aligned word, start, end (or onset, offset, duration).
fn table_rows() -> impl Strategy<Value = Vec<(String, String, String, String)>> {
    vec((label(), label(), time_text(), time_text()), 0..30)
}

/// A Gentle align.csv: 3 or 4 columns, a header or not, quoted fields.
fn gentle_csv() -> impl Strategy<Value = Vec<u8>> {
    (table_rows(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(rows, header, four, quote)| {
        let field = |text: &str| {
            if quote || text.contains([',', '"', '\n']) {
                quoted(text)
            } else {
                text.to_string()
            }
        };
        let mut out = String::new();
        if header {
            out += if four { "word,alignedWord,start,end\n" } else { "word,start,end\n" };
        }
        for (word, aligned, start, end) in rows {
            if four {
                out += &format!("{},{},{start},{end}\n", field(&word), field(&aligned));
            } else {
                out += &format!("{},{start},{end}\n", field(&word));
            }
        }
        out.into_bytes()
    })
}

/// A words TSV or BIDS events.tsv: a header of known and unknown columns
/// in any order, rows that may have too few or too many fields.
fn words_tsv() -> impl Strategy<Value = Vec<u8>> {
    const COLUMNS: &[&str] = &["word", "onset", "offset", "duration", "trial_type", "text", "start", "end", "x"];
    (vec(any::<Index>(), 0..6), table_rows(), vec(0..3usize, 0..30)).prop_map(|(header, rows, shapes)| {
        let header: Vec<&str> = header.iter().map(|i| COLUMNS[i.index(COLUMNS.len())]).collect();
        let mut out = header.join("\t") + "\n";
        for (i, (word, other, start, end)) in rows.into_iter().enumerate() {
            let pool = [word, start.clone(), end, other, start];
            let width = match shapes.get(i) {
                Some(0) if !header.is_empty() => header.len() - 1,
                Some(1) => header.len() + 1,
                _ => header.len(),
            };
            let fields: Vec<String> = (0..width).map(|c| pool[c % pool.len()].replace(['\t', '\n'], " ")).collect();
            out += &(fields.join("\t") + "\n");
        }
        out.into_bytes()
    })
}

/// A respdict.json: an object of story names to TR counts, or other JSON.
fn respdict() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        6 => (0..2000u64).prop_map(serde_json::Value::from),
        1 => any::<i64>().prop_map(serde_json::Value::from),
        1 => any::<f64>().prop_map(|x| serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, Into::into)),
        1 => label().prop_map(serde_json::Value::from),
        1 => Just(serde_json::Value::Null),
        1 => Just(serde_json::json!([1, 2])),
    ];
    prop_oneof![
        8 => vec((label(), value), 0..12)
            .prop_map(|pairs| serde_json::Value::Object(pairs.into_iter().collect())),
        1 => Just(serde_json::json!([])),
        1 => label().prop_map(serde_json::Value::from),
    ]
    .prop_map(|v| serde_json::to_vec_pretty(&v).unwrap())
}

/// A YAML value of a pipeline: scalars the spec reader meets (numbers,
/// extreme ones too, placeholders, stage names) and lists and maps of them.
fn yaml_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    let leaf = prop_oneof![
        3 => "[a-z_]{1,8}".prop_map(Value::from),
        2 => (-5i64..200).prop_map(Value::from),
        1 => any::<f64>().prop_map(|x| serde_json::Number::from_f64(x).map_or(Value::Null, Into::into)),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
        2 => prop_oneof![
            Just("echo {params.x} > {outputs.out}"),
            Just("cat {inputs.a} > {outputs.out}"),
            Just("{inputs.}"),
            Just("${matrix.s}"),
            Just("{threads} {out_dir} {{"),
            Just("a.txt"),
            Just("../../etc/passwd"),
            Just("/abs"),
            Just("cpu"),
            Just("cuda"),
        ]
        .prop_map(Value::from),
        1 => Just(json!([1, 10, 100])),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            vec(("[a-z_]{1,8}", inner), 0..5).prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// A pipeline of random stages: known kinds and keys with random values,
/// inputs naming other stages (or none, or themselves), unknown keys.
fn pipeline() -> impl Strategy<Value = Vec<u8>> {
    use serde_json::Value;
    const KINDS: &[&str] = &["command", "ridge", "responses.synthetic", "features.word_rate", "nonsense", ""];
    const KEYS: &[&str] =
        &["run", "inputs", "outputs", "params", "matrix", "resources", "device", "after", "description", "bogus"];
    let stage = (any::<Index>(), vec((any::<Index>(), yaml_value()), 0..6), vec(any::<Index>(), 0..3));
    (vec(stage, 1..6), proptest::option::weighted(0.2, yaml_value()), "[a-z_ -]{0,12}").prop_map(
        move |(stages, defaults, name)| {
            let names: Vec<String> = (0..stages.len()).map(|i| format!("s{i}")).collect();
            let mut map = serde_json::Map::new();
            for (i, (kind, keys, inputs)) in stages.into_iter().enumerate() {
                let mut stage = serde_json::Map::new();
                stage.insert("kind".into(), Value::from(KINDS[kind.index(KINDS.len())]));
                for (key, value) in keys {
                    stage.insert(KEYS[key.index(KEYS.len())].into(), value);
                }
                if !inputs.is_empty() {
                    let roles: Vec<Value> =
                        inputs.iter().map(|j| Value::from(names[j.index(names.len())].clone())).collect();
                    stage.insert("inputs".into(), Value::Array(roles));
                }
                map.insert(names[i].clone(), Value::Object(stage));
            }
            let mut document = serde_json::Map::new();
            document.insert("name".into(), Value::from(name));
            if let Some(defaults) = defaults {
                document.insert("defaults".into(), defaults);
            }
            document.insert("stages".into(), Value::Object(map));
            serde_yaml::to_string(&Value::Object(document)).unwrap().into_bytes()
        },
    )
}

// ---------------------------------------------------------------- readers

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture of /work/shared/fixtures/real (beside the clone or at the
/// usual place), when present.
fn real_fixture(relative: &str) -> Option<Vec<u8>> {
    std::fs::read(repository().join("../shared/fixtures/real").join(relative))
        .or_else(|_| std::fs::read(Path::new("/work/shared/fixtures/real").join(relative)))
        .ok()
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

/// The pipeline reader (spec and plan) on `input`.
fn check_pipeline(dir: &Scratch, input: &[u8], overrides: &[String]) -> Result<(), TestCaseError> {
    let path = case_file(dir, "yaml", input);
    let text = String::from_utf8_lossy(input).to_string();
    let result = voxflow::spec::parse(&path, &text, overrides).and_then(|spec| voxflow::plan::resolve(&spec, None));
    let Err(diagnostics) = result else { return Ok(()) };
    prop_assert!(!diagnostics.0.is_empty(), "an error without a diagnostic");
    for diagnostic in &diagnostics.0 {
        prop_assert!(!diagnostic.message.trim().is_empty(), "an empty diagnostic: {:?}", diagnostic);
        prop_assert!(!diagnostic.file.as_os_str().is_empty(), "a diagnostic without a file: {:?}", diagnostic);
        if diagnostic.file == path {
            if let Some(line) = diagnostic.line {
                prop_assert!(
                    line >= 1 && line <= line_bound(input),
                    "line {} is not in the file: {}",
                    line,
                    diagnostic
                );
            }
        }
    }
    Ok(())
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
    let dir = Scratch::new("fuzz-pipeline");
    for valid in &corpus {
        check_pipeline(&dir, valid, &[]).unwrap();
    }
    fuzz("pipeline-mutated", mutated(corpus), |input| check_pipeline(&dir, input, &[]));
    fuzz("pipeline-generated", pipeline(), |input| check_pipeline(&dir, input, &[]));
    // An override of a stage that may not be there, or of a key that is.
    fuzz("pipeline-override", pipeline(), |input| check_pipeline(&dir, input, &["s0.x=[1, 2]".to_string()]));
}

/// The TextGrid reader on `input`: Ok only with times it promises.
fn check_textgrid(dir: &Scratch, input: &[u8]) -> Result<(), TestCaseError> {
    let path = case_file(dir, "TextGrid", input);
    match voxflow::formats::textgrid::read_textgrid(&path) {
        Err(error) => clear_format_error(&error, &path, input)?,
        Ok(grid) => {
            for tier in &grid.tiers {
                let mut previous: Option<&Interval> = None;
                for interval in &tier.intervals {
                    for x in [interval.xmin, interval.xmax] {
                        prop_assert!(
                            x.is_finite() && (0.0..=1e6).contains(&x),
                            "accepted time {} in {:?}",
                            x,
                            tier.name
                        );
                    }
                    prop_assert!(interval.xmax >= interval.xmin, "accepted a reversed interval in {:?}", tier.name);
                    if let (TierKind::Interval, Some(previous)) = (tier.kind, previous) {
                        prop_assert!(
                            interval.xmin >= previous.xmax - 1e-6,
                            "accepted overlapping intervals in {:?}",
                            tier.name
                        );
                    }
                    previous = Some(interval);
                }
            }
        }
    }
    if let Err(error) = voxflow::formats::textgrid::words_from_textgrid(&path, "words", &["sp"]) {
        clear_format_error(&error, &path, input)?;
    }
    Ok(())
}

#[test]
fn the_textgrid_reader_never_panics() {
    let mut rng = ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let dir = Scratch::new("fuzz-textgrid");
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
        let path = dir.join(&format!("{i}.TextGrid"));
        voxflow::formats::textgrid::write_textgrid(&path, &grid, form, encoding).unwrap();
        corpus.push(std::fs::read(&path).unwrap());
    }
    for valid in &corpus {
        check_textgrid(&dir, valid).unwrap();
    }
    fuzz("textgrid-mutated", mutated(corpus), |input| check_textgrid(&dir, input));
    fuzz("textgrid-generated", textgrid(), |input| check_textgrid(&dir, input));
}

fn check_gentle(dir: &Scratch, input: &[u8]) -> Result<(), TestCaseError> {
    let path = case_file(dir, "csv", input);
    if let Err(error) = voxflow::formats::words::read_gentle_csv(&path) {
        clear_format_error(&error, &path, input)?;
    }
    if let Err(error) = voxflow::formats::words::words_from_gentle_csv(&path) {
        clear_format_error(&error, &path, input)?;
    }
    Ok(())
}

fn check_tsv(dir: &Scratch, input: &[u8]) -> Result<(), TestCaseError> {
    let path = case_file(dir, "tsv", input);
    if let Err(error) = voxflow::formats::words::words_from_tsv(&path) {
        clear_format_error(&error, &path, input)?;
    }
    Ok(())
}

#[test]
fn the_word_table_readers_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let dir = Scratch::new("fuzz-words");
    let (mut csv, mut tsv) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let words = random_words(&mut rng);
        let path = dir.join(&format!("{i}.csv"));
        voxflow::formats::words::write_gentle_csv(&path, &words).unwrap();
        csv.push(std::fs::read(&path).unwrap());
        let path = dir.join(&format!("{i}.tsv"));
        voxflow::formats::words::write_words_tsv(&path, &words).unwrap();
        tsv.push(std::fs::read(&path).unwrap());
    }
    if let Some(events) = real_fixture("ds002345/sub-075_task-21styear_events.tsv") {
        tsv.push(events);
    }
    for valid in &csv {
        check_gentle(&dir, valid).unwrap();
    }
    for valid in &tsv {
        check_tsv(&dir, valid).unwrap();
    }
    fuzz("gentle-mutated", mutated(csv), |input| check_gentle(&dir, input));
    fuzz("gentle-generated", gentle_csv(), |input| check_gentle(&dir, input));
    fuzz("tsv-mutated", mutated(tsv), |input| check_tsv(&dir, input));
    fuzz("tsv-generated", words_tsv(), |input| check_tsv(&dir, input));
}

fn check_respdict(dir: &Scratch, input: &[u8]) -> Result<(), TestCaseError> {
    let path = case_file(dir, "json", input);
    if let Err(error) = voxflow::formats::respdict::read_respdict(&path) {
        clear_format_error(&error, &path, input)?;
    }
    Ok(())
}

#[test]
fn the_respdict_reader_never_panics() {
    let mut rng = ChaCha8Rng::seed_from_u64(common::fresh_seed());
    let dir = Scratch::new("fuzz-respdict");
    let mut corpus = Vec::new();
    for i in 0..3 {
        let counts =
            (0..rng.random_range(1..12)).map(|s| (format!("story{s}"), rng.random_range(1..600usize))).collect();
        let path = dir.join(&format!("{i}.json"));
        voxflow::formats::respdict::write_respdict(&path, &counts).unwrap();
        corpus.push(std::fs::read(&path).unwrap());
    }
    if let Some(real) = real_fixture("ds003020/respdict.json") {
        corpus.push(real);
    }
    for valid in &corpus {
        check_respdict(&dir, valid).unwrap();
    }
    fuzz("respdict-mutated", mutated(corpus), |input| check_respdict(&dir, input));
    fuzz("respdict-generated", respdict(), |input| check_respdict(&dir, input));
}

/// The mutations themselves never step outside the input; numbers and
/// lines are found where they are.
#[test]
fn mutations_stay_in_bounds() {
    let corpus = vec![b"xmin = 1.5\nxmax = -2\n".to_vec(), Vec::new()];
    let mut runner = TestRunner::new(Config { cases: 200, failure_persistence: None, ..Config::default() });
    runner
        .run(&(any::<Index>(), vec(mutation(), 1..7)), |(seed, mutations)| {
            let start = corpus[seed.index(corpus.len())].clone();
            let _ = mutations.iter().fold(start, |bytes, m| apply(&corpus, bytes, m));
            Ok(())
        })
        .unwrap();
    assert_eq!(numbers(b"a = -1.5e3, b 7"), [4..10, 14..15]);
    assert_eq!(lines(b"a\nb"), [0..2, 2..3]);
}
