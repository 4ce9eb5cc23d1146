//! Integration tests of the file-format readers and writers in
//! `voxflow::formats`: TextGrid, word tables, BIDS, respdict, HDF5, NIfTI.
//!
//! Content is random and fresh each run: every test seeds its generator from
//! the clock and prints the seed; set `VOXFLOW_TEST_SEED=<n>` to replay one.
//! The real metadata fixtures are read from `<CARGO_MANIFEST_DIR>/../shared/
//! fixtures/real/`, falling back to `/work/shared/fixtures/real/`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use voxflow::formats::bids::{read_bold_json, read_events_tsv, run_timing, stimulus_onset, tr_grid, tr_midpoints};
use voxflow::formats::error::FormatError;
use voxflow::formats::hdf5::{hf5_datasets, read_hf5, read_hf5_dataset, write_hf5};
use voxflow::formats::nifti::{read_mask, read_masked, read_nifti_info, write_mask, write_masked, Mask};
use voxflow::formats::respdict::{lebel_tr_times, read_respdict, write_respdict};
use voxflow::formats::textgrid::{
    encode_text, is_dropped, read_textgrid, read_tier, words_from_textgrid, write_textgrid, Interval, TextEncoding,
    TextGrid, TextGridForm, Tier, TierKind, LEBEL_DROP_WORDS,
};
use voxflow::formats::words::{
    read_gentle_csv, words_from_gentle_csv, words_from_gentle_json, words_from_tsv, write_gentle_csv, write_words_tsv,
    Word,
};
use voxflow::numeric::Matrix;

// ---------------------------------------------------------------- helpers

/// SplitMix64: small, seedable, good enough for test content.
struct Rng(u64);

impl Rng {
    fn new(test: &str) -> Rng {
        println!("{test}");
        Rng(common::fresh_seed())
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo) as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal_f32(&mut self) -> f32 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len())]
    }

    /// A random word, sometimes with non-ASCII letters, a quote or a comma.
    fn word(&mut self) -> String {
        const LETTERS: &[char] = &[
            'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'k', 'l', 'm', 'n', 'o', 'p', 'r', 's', 't', 'u', 'w', 'y',
            'z', 'A', 'T', 'é', 'ü', 'ß', 'ñ', 'ø', '中', 'ж', '\'',
        ];
        let n = self.range(1, 9);
        let mut w: String = (0..n).map(|_| *self.pick(LETTERS)).collect();
        match self.range(0, 10) {
            0 => w.push('"'),
            1 => w.insert(0, '"'),
            2 => w.push(','),
            _ => {}
        }
        w
    }

    fn matrix(&mut self, rows: usize, cols: usize) -> Matrix {
        Matrix::from_vec(rows, cols, (0..rows * cols).map(|_| self.normal_f32()).collect())
    }
}

/// A scratch directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let unique =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_nanos();
        let dir = std::env::temp_dir().join(format!("voxflow-formats-{test}-{}-{unique}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixtures() -> PathBuf {
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/real");
    if beside.is_dir() {
        beside
    } else {
        PathBuf::from("/work/shared/fixtures/real")
    }
}

/// Increasing random boundaries starting at 0.
fn boundaries(rng: &mut Rng, n: usize) -> Vec<f64> {
    let mut t = 0.0;
    let mut out = vec![t];
    for _ in 0..n {
        t += 0.01 + rng.unit() * 0.7;
        out.push(t);
    }
    out
}

fn interval_tier(name: &str, bounds: &[f64], labels: Vec<String>) -> Tier {
    Tier {
        name: name.to_string(),
        kind: TierKind::Interval,
        xmin: bounds[0],
        xmax: *bounds.last().expect("bounds"),
        intervals: labels
            .into_iter()
            .enumerate()
            .map(|(i, text)| Interval { xmin: bounds[i], xmax: bounds[i + 1], text })
            .collect(),
    }
}

fn random_grid(rng: &mut Rng) -> TextGrid {
    let n_words = rng.range(1, 60);
    let word_bounds = boundaries(rng, n_words);
    let words: Vec<String> = (0..n_words).map(|_| rng.word()).collect();
    let n_phones = rng.range(1, 120);
    let mut phone_bounds = boundaries(rng, n_phones);
    let end = *word_bounds.last().expect("bounds");
    let scale = end / phone_bounds.last().expect("bounds");
    phone_bounds.iter_mut().for_each(|t| *t *= scale);
    *phone_bounds.last_mut().expect("bounds") = end;
    let phones: Vec<String> = (0..n_phones).map(|_| rng.pick(&["AA", "B", "sp", "", "ZH", "é"]).to_string()).collect();
    let n_points = rng.range(0, 5);
    let points = (0..n_points)
        .map(|_| {
            let t = rng.unit() * end;
            Interval { xmin: t, xmax: t, text: rng.word() }
        })
        .collect();
    TextGrid {
        xmin: 0.0,
        xmax: end,
        tiers: vec![
            interval_tier("phone", &phone_bounds, phones),
            interval_tier("word", &word_bounds, words),
            Tier { name: "bell".to_string(), kind: TierKind::Point, xmin: 0.0, xmax: end, intervals: points },
        ],
    }
}

fn assert_names_file(err: &FormatError, path: &Path) {
    let shown = err.to_string();
    assert!(shown.contains(&path.display().to_string()), "error does not name {}: {shown}", path.display());
}

// ---------------------------------------------------------------- TextGrid

#[test]
fn textgrid_round_trips_in_both_forms_and_all_encodings() {
    let mut rng = Rng::new("textgrid_round_trip");
    let dir = TempDir::new("tg-roundtrip");
    for round in 0..4 {
        let grid = random_grid(&mut rng);
        for form in [TextGridForm::Long, TextGridForm::Short] {
            for enc in [TextEncoding::Utf8, TextEncoding::Utf8Bom, TextEncoding::Utf16Le, TextEncoding::Utf16Be] {
                let path = dir.path(&format!("r{round}-{form:?}-{enc:?}.TextGrid"));
                write_textgrid(&path, &grid, form, enc).expect("write");
                let bytes = std::fs::read(&path).expect("read bytes");
                match enc {
                    TextEncoding::Utf16Le => assert_eq!(&bytes[..2], &[0xFF, 0xFE]),
                    TextEncoding::Utf16Be => assert_eq!(&bytes[..2], &[0xFE, 0xFF]),
                    TextEncoding::Utf8Bom => assert_eq!(&bytes[..3], b"\xEF\xBB\xBF"),
                    TextEncoding::Utf8 => assert_eq!(&bytes[..4], b"File"),
                }
                let back = read_textgrid(&path).expect("read back");
                assert_eq!(back, grid, "{form:?} {enc:?} differs");
            }
        }
    }
}

/// The minimal TextGrid of Praat's manual ("TextGrid file formats"), in the
/// long and the short form, with the tiers Mary, John (intervals) and bell
/// (points).
#[test]
fn textgrid_reads_praat_manual_examples() {
    let dir = TempDir::new("tg-manual");
    let long = "File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n\nxmin = 0\nxmax = 2.3\n\
tiers? <exists>\nsize = 3\nitem []:\n    item [1]:\n        class = \"IntervalTier\"\n\
        name = \"Mary\"\n        xmin = 0\n        xmax = 2.3\n        intervals: size = 1\n\
        intervals [1]:\n            xmin = 0\n            xmax = 2.3\n            text = \"\"\n\
    item [2]:\n        class = \"IntervalTier\"\n        name = \"John\"\n        xmin = 0\n\
        xmax = 2.3\n        intervals: size = 1\n        intervals [1]:\n            xmin = 0\n\
            xmax = 2.3\n            text = \"\"\n    item [3]:\n        class = \"TextTier\"\n\
        name = \"bell\"\n        xmin = 0\n        xmax = 2.3\n        points: size = 0\n";
    let short = "File type = \"ooTextFile\"\r\nObject class = \"TextGrid\"\r\n\r\n0\r\n2.3\r\n\
<exists>\r\n3\r\n\"IntervalTier\"\r\n\"Mary\"\r\n0\r\n2.3\r\n1\r\n0\r\n2.3\r\n\"\"\r\n\
\"IntervalTier\"\r\n\"John\"\r\n0\r\n2.3\r\n1\r\n0\r\n2.3\r\n\"\"\r\n\"TextTier\"\r\n\"bell\"\r\n\
0\r\n2.3\r\n0\r\n";
    for (name, text) in [("long", long), ("short", short)] {
        let path = dir.path(&format!("{name}.TextGrid"));
        std::fs::write(&path, text).expect("write");
        let grid = read_textgrid(&path).expect("parse manual example");
        assert_eq!(grid.xmax, 2.3);
        assert_eq!(grid.tier_names(), vec!["Mary", "John", "bell"]);
        assert_eq!(grid.tiers[0].intervals, vec![Interval { xmin: 0.0, xmax: 2.3, text: String::new() }]);
        assert_eq!(grid.tiers[2].kind, TierKind::Point);
        assert!(grid.tiers[2].intervals.is_empty());
    }
}

#[test]
fn textgrid_missing_tier_names_file_and_lists_tiers() {
    let mut rng = Rng::new("textgrid_missing_tier");
    let dir = TempDir::new("tg-missing");
    let grid = random_grid(&mut rng);
    let path = dir.path("story.TextGrid");
    let form = if rng.range(0, 2) == 0 { TextGridForm::Long } else { TextGridForm::Short };
    write_textgrid(&path, &grid, form, TextEncoding::Utf16Be).expect("write");
    let wanted = format!("words{}", rng.range(0, 1000));
    let err = words_from_textgrid(&path, &wanted, LEBEL_DROP_WORDS).expect_err("missing tier");
    match &err {
        FormatError::MissingTier { path: p, wanted: w, present } => {
            assert_eq!(p, &path);
            assert_eq!(w, &wanted);
            assert_eq!(present, &vec!["phone".to_string(), "word".into(), "bell".into()]);
        }
        other => panic!("expected MissingTier, got {other:?}"),
    }
    let shown = err.to_string();
    assert_names_file(&err, &path);
    for tier in ["\"phone\"", "\"word\"", "\"bell\"", &format!("{wanted:?}")] {
        assert!(shown.contains(tier), "{shown} does not mention {tier}");
    }
    // Tier names match case-insensitively.
    assert!(read_tier(&path, "WORD").is_ok());
    assert!(read_tier(&path, "Phone").is_ok());
}

#[test]
fn textgrid_words_drop_silence_and_noise_markers() {
    let mut rng = Rng::new("textgrid_drop_markers");
    let dir = TempDir::new("tg-drop");
    let markers = [
        "sp",
        "SP",
        "{sp}",
        "{SP}",
        "sil",
        "{br}",
        "{BR}",
        "{lg}",
        "{ns}",
        "{ls}",
        "{cg}",
        "{ig}",
        "br",
        "lg",
        "ns",
        "ls",
        "sl",
        "sentence_start",
        "sentence_end",
        "",
        " ",
        "  {LG} ",
    ];
    let n = rng.range(5, 80);
    let bounds = boundaries(&mut rng, n);
    let mut labels = Vec::new();
    let mut expected = Vec::new();
    for i in 0..n {
        if rng.range(0, 3) == 0 {
            labels.push(rng.pick(&markers).to_string());
        } else {
            // Real words never collide with a marker ("sp" etc. need 2 letters; add 3).
            let w = format!("{}x{}", rng.word().replace('"', ""), rng.range(0, 9));
            expected.push(Word { word: w.clone(), onset: bounds[i], offset: bounds[i + 1] });
            labels.push(w);
        }
    }
    let grid = TextGrid {
        xmin: 0.0,
        xmax: *bounds.last().expect("bounds"),
        tiers: vec![interval_tier("Word", &bounds, labels)],
    };
    let path = dir.path("drop.TextGrid");
    write_textgrid(&path, &grid, TextGridForm::Long, TextEncoding::Utf16Le).expect("write");
    let words = words_from_textgrid(&path, "word", LEBEL_DROP_WORDS).expect("words");
    assert_eq!(words, expected);
    for m in markers {
        assert!(is_dropped(m, LEBEL_DROP_WORDS), "{m:?} should be dropped");
    }
    for w in ["speak", "brother", "sign", "{laugh}x", "I", "a"] {
        assert!(!is_dropped(w, LEBEL_DROP_WORDS), "{w:?} should be kept");
    }
}

#[test]
fn textgrid_truncated_or_garbage_is_a_parse_error_naming_the_file() {
    let mut rng = Rng::new("textgrid_truncated");
    let dir = TempDir::new("tg-trunc");
    let grid = random_grid(&mut rng);
    for form in [TextGridForm::Long, TextGridForm::Short] {
        let text = grid.to_text(form);
        let last_quote = text.rfind('"').expect("a string");
        // Anywhere before the closing quote of the last label leaves data missing.
        let mut cut = rng.range(1, last_quote);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let path = dir.path(&format!("cut-{form:?}.TextGrid"));
        std::fs::write(&path, encode_text(&text[..cut], TextEncoding::Utf8)).expect("write");
        let err = read_textgrid(&path).expect_err("truncated file must fail");
        assert_names_file(&err, &path);
        assert!(err.line().is_some(), "a text error gives a line: {err}");
        assert!(err.to_string().contains("Praat"), "hint missing: {err}");
    }
    let path = dir.path("not-a-grid.TextGrid");
    std::fs::write(&path, "word,start,end\nhello,0.1,0.4\n").expect("write");
    let err = read_textgrid(&path).expect_err("not a TextGrid");
    assert_names_file(&err, &path);
    let missing = dir.path("absent.TextGrid");
    let err = read_textgrid(&missing).expect_err("missing file");
    assert!(matches!(err, FormatError::Read { .. }));
    assert_names_file(&err, &missing);
}

// ---------------------------------------------------------------- word tables

fn random_words(rng: &mut Rng) -> Vec<Word> {
    let n = rng.range(1, 200);
    let bounds = boundaries(rng, n);
    (0..n).map(|i| Word { word: rng.word(), onset: bounds[i], offset: bounds[i + 1] }).collect()
}

#[test]
fn gentle_csv_round_trips_and_skips_unaligned_words() {
    let mut rng = Rng::new("gentle_csv");
    let dir = TempDir::new("gentle");
    let words = random_words(&mut rng);
    let path = dir.path("align.csv");
    write_gentle_csv(&path, &words).expect("write");
    assert_eq!(words_from_gentle_csv(&path).expect("read"), words);

    // Gentle's own output: not-found-in-audio words have empty times.
    let path = dir.path("gentle-real.csv");
    let t = 0.5 + rng.unit();
    let csv = format!(
        "Sometimes,sometimes,{t},{}\r\n\"Hello, there\",<unk>,1.9,2.2\r\n\
         mumble,,,\r\nend,end,3.0,3.5\r\n",
        t + 0.25
    );
    std::fs::write(&path, csv).expect("write");
    let rows = read_gentle_csv(&path).expect("rows");
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[1].word, "Hello, there");
    assert_eq!(rows[1].aligned_word.as_deref(), Some("<unk>"));
    assert_eq!((rows[2].start, rows[2].end), (None, None));
    let words = words_from_gentle_csv(&path).expect("words");
    assert_eq!(words.iter().map(|w| w.word.as_str()).collect::<Vec<_>>(), vec!["Sometimes", "Hello, there", "end"]);
    assert_eq!(words[0].onset, t);

    let bad = dir.path("bad.csv");
    std::fs::write(&bad, "a,a,0.1,0.2\nb,b,zero,0.4\n").expect("write");
    let err = words_from_gentle_csv(&bad).expect_err("bad time");
    assert_names_file(&err, &bad);
    assert_eq!(err.line(), Some(2));
}

#[test]
fn gentle_json_keeps_only_aligned_words() {
    let dir = TempDir::new("gentle-json");
    let path = dir.path("align.json");
    std::fs::write(
        &path,
        r#"{"transcript": "a b c", "words": [
            {"case": "success", "word": "a", "alignedWord": "a", "start": 0.5, "end": 0.7,
             "startOffset": 0, "endOffset": 1, "phones": []},
            {"case": "not-found-in-audio", "word": "b", "startOffset": 2, "endOffset": 3},
            {"case": "success", "word": "c", "alignedWord": "c", "start": 1.25, "end": 1.5}
        ]}"#,
    )
    .expect("write");
    let words = words_from_gentle_json(&path).expect("read");
    assert_eq!(
        words,
        vec![Word { word: "a".into(), onset: 0.5, offset: 0.7 }, Word { word: "c".into(), onset: 1.25, offset: 1.5 },]
    );
}

#[test]
fn words_tsv_round_trips_and_reads_bids_events() {
    let mut rng = Rng::new("words_tsv");
    let dir = TempDir::new("words-tsv");
    let words: Vec<Word> =
        random_words(&mut rng).into_iter().map(|w| Word { word: w.word.replace(',', ";"), ..w }).collect();
    let path = dir.path("words.tsv");
    write_words_tsv(&path, &words).expect("write");
    assert_eq!(words_from_tsv(&path).expect("read"), words);

    // A BIDS events.tsv with onset, duration, trial_type and an extra column.
    let mut events = String::from("onset\tduration\ttrial_type\tstim_file\n");
    for w in &words {
        events.push_str(&format!("{}\t{}\t{}\tstory.wav\n", w.onset, w.offset - w.onset, w.word));
    }
    let path = dir.path("sub-01_task-story_events.tsv");
    std::fs::write(&path, events).expect("write");
    let back = words_from_tsv(&path).expect("read events");
    assert_eq!(back.len(), words.len());
    for (a, b) in back.iter().zip(&words) {
        assert_eq!(a.word, b.word);
        assert_eq!(a.onset, b.onset);
        assert!((a.offset - b.offset).abs() < 1e-9);
    }

    let path = dir.path("no-onset.tsv");
    std::fs::write(&path, "word\tstart_time\tend\nhi\t0.1\t0.2\n").expect("write");
    let err = words_from_tsv(&path).expect_err("no onset column");
    assert!(matches!(err, FormatError::MissingColumn { .. }), "{err:?}");
    assert_names_file(&err, &path);
    assert!(err.to_string().contains("\"start_time\""), "{err}");
}

// ---------------------------------------------------------------- BIDS and respdict

#[test]
fn bids_real_fixtures_parse() {
    let real = fixtures();
    let lebel = read_bold_json(&real.join("ds003020/task-wheretheressmoke_bold.json")).expect("ds003020 bold.json");
    assert_eq!(lebel.repetition_time, 2.0);
    assert_eq!(lebel.slice_timing, None);
    assert_eq!(lebel.task_name.as_deref(), Some("wheretheressmoke"));

    let bold = real.join("ds002345/sub-075_task-21styear_bold.json");
    let narratives = read_bold_json(&bold).expect("ds002345 bold.json");
    assert_eq!(narratives.repetition_time, 1.5);
    let slices = narratives.slice_timing.as_ref().expect("SliceTiming");
    assert_eq!(slices.len(), 27);
    assert!(slices.iter().all(|&s| (0.0..1.5).contains(&s)));
    assert_eq!(narratives.task_name.as_deref(), Some("21styear"));
    assert!(narratives.other.contains_key("EchoTime"));

    let events_path = real.join("ds002345/sub-075_task-21styear_events.tsv");
    let events = read_events_tsv(&events_path).expect("events.tsv");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].trial_type.as_deref(), Some("music"));
    assert_eq!((events[0].onset, events[0].duration), (0.0, Some(18.0)));
    assert_eq!(events[1].trial_type.as_deref(), Some("story"));
    assert_eq!((events[1].onset, events[1].duration), (21.0, Some(3338.0)));
    assert_eq!(events[1].extra.get("stim_file").map(String::as_str), Some("21styear_audio.wav"));
    assert_eq!(stimulus_onset(&events, None, &events_path).expect("onset"), 21.0);
    assert_eq!(stimulus_onset(&events, Some("music"), &events_path).expect("onset"), 0.0);
    let err = stimulus_onset(&events, Some("speech"), &events_path).expect_err("no such type");
    assert_names_file(&err, &events_path);
    assert!(err.to_string().contains("\"music\", \"story\""), "{err}");

    let mut rng = Rng::new("bids_real_fixtures");
    let n_trs = rng.range(1, 3000);
    let timing = run_timing(&bold, &events_path, n_trs, None).expect("timing");
    assert_eq!(timing.tr_seconds, 1.5);
    assert_eq!(timing.lead_in_seconds, 21.0);
    assert_eq!(timing.tr_times.len(), n_trs);
    assert_eq!(timing.tr_times[0], -21.0);
    if n_trs > 14 {
        assert_eq!(timing.tr_times[14], 0.0);
    }
}

#[test]
fn bids_tr_grid_and_bad_sidecars() {
    let mut rng = Rng::new("bids_tr_grid");
    let n = rng.range(0, 500);
    let tr = 0.5 + rng.unit() * 2.5;
    let lead = rng.unit() * 30.0;
    let grid = tr_grid(n, tr, lead);
    assert_eq!(grid.len(), n);
    for (i, t) in grid.iter().enumerate() {
        assert_eq!(*t, i as f64 * tr - lead);
    }
    let mids = tr_midpoints(n, tr, lead);
    for (m, t) in mids.iter().zip(&grid) {
        assert!((m - t - tr / 2.0).abs() < 1e-12);
    }

    let dir = TempDir::new("bids-bad");
    let path = dir.path("sub-01_task-x_bold.json");
    std::fs::write(&path, "{\"EchoTime\": 0.03}").expect("write");
    let err = read_bold_json(&path).expect_err("no TR");
    assert_names_file(&err, &path);
    assert!(err.to_string().contains("RepetitionTime"), "{err}");
    std::fs::write(&path, "{\"RepetitionTime\": 2.0,\n \"SliceTiming\": [0, 1,").expect("write");
    let err = read_bold_json(&path).expect_err("truncated JSON");
    assert_names_file(&err, &path);
    assert_eq!(err.line(), Some(2));

    let events = dir.path("events.tsv");
    std::fs::write(&events, "onset\tduration\n0.0\t1.0\nlater\t2.0\n").expect("write");
    let err = read_events_tsv(&events).expect_err("bad onset");
    assert_names_file(&err, &events);
    assert_eq!(err.line(), Some(3));
}

#[test]
fn respdict_real_fixture_and_round_trip() {
    let real = fixtures().join("ds003020/respdict.json");
    let counts = read_respdict(&real).expect("respdict");
    assert_eq!(counts.len(), 84);
    assert_eq!(counts["alternateithicatom"], 363);
    assert_eq!(counts["sweetaspie"], 177);
    assert_eq!(counts.values().copied().min(), Some(177));
    assert_eq!(counts.values().copied().max(), Some(541));

    let times = lebel_tr_times(counts["alternateithicatom"]);
    assert_eq!(times.len(), 358);
    assert_eq!(times[0], -9.0);
    assert_eq!(times[5], 1.0);

    let mut rng = Rng::new("respdict");
    let dir = TempDir::new("respdict");
    let mut random = BTreeMap::new();
    for _ in 0..rng.range(1, 50) {
        random.insert(format!("story{}", rng.next_u64()), rng.range(0, 10_000));
    }
    let path = dir.path("respdict.json");
    write_respdict(&path, &random).expect("write");
    assert_eq!(read_respdict(&path).expect("read"), random);
    std::fs::write(&path, "{\"a\": 12, \"b\": -3}").expect("write");
    let err = read_respdict(&path).expect_err("negative count");
    assert_names_file(&err, &path);
}

// ---------------------------------------------------------------- HDF5

#[test]
fn hdf5_round_trips_random_matrices() {
    let mut rng = Rng::new("hdf5_round_trip");
    let dir = TempDir::new("hdf5");
    for i in 0..3 {
        let (rows, cols) = (rng.range(1, 300), rng.range(1, 200));
        let m = rng.matrix(rows, cols);
        let path = dir.path(&format!("story{i}.hf5"));
        write_hf5(&path, &m).expect("write");
        assert_eq!(read_hf5(&path).expect("read"), m);
        assert_eq!(hf5_datasets(&path).expect("list"), vec!["data".to_string()]);
    }

    // float64 data, written the way h5py writes numpy float64 arrays.
    let rows = rng.range(1, 50);
    let cols = rng.range(1, 50);
    let values: Vec<f64> = (0..rows * cols).map(|_| rng.normal_f32() as f64 * 3.0).collect();
    let path = dir.path("f64.hf5");
    let file = hdf5::File::create(&path).expect("create");
    let ds = file.new_dataset::<f64>().shape((rows, cols)).create("data").expect("dataset");
    ds.write_raw(values.as_slice()).expect("write");
    file.new_dataset::<i32>().shape((3,)).create("other").expect("other");
    drop(ds);
    file.close().expect("close");
    let m = read_hf5(&path).expect("read f64");
    assert_eq!((m.rows, m.cols), (rows, cols));
    assert_eq!(m.data, values.iter().map(|&v| v as f32).collect::<Vec<_>>());
    let other = read_hf5_dataset(&path, "other").expect("1-D dataset");
    assert_eq!((other.rows, other.cols), (3, 1));
}

#[test]
fn hdf5_bad_inputs_name_the_file() {
    let mut rng = Rng::new("hdf5_bad");
    let dir = TempDir::new("hdf5-bad");

    // No `data` dataset: the error lists what is there.
    let path = dir.path("resp-only.hf5");
    let file = hdf5::File::create(&path).expect("create");
    file.new_dataset::<f32>().shape((4, 3)).create("resp").expect("dataset");
    file.close().expect("close");
    let err = read_hf5(&path).expect_err("no data");
    assert_names_file(&err, &path);
    assert!(err.to_string().contains("\"resp\""), "{err}");
    assert!(err.to_string().contains("\"data\""), "{err}");

    // Truncated file.
    let (rows, cols) = (rng.range(50, 200), rng.range(20, 100));
    let m = rng.matrix(rows, cols);
    let path = dir.path("truncated.hf5");
    write_hf5(&path, &m).expect("write");
    let bytes = std::fs::read(&path).expect("read");
    let cut = rng.range(1, bytes.len() / 2);
    std::fs::write(&path, &bytes[..cut]).expect("truncate");
    let err = read_hf5(&path).expect_err("truncated");
    assert_names_file(&err, &path);

    // Not HDF5 at all, and missing.
    let path = dir.path("text.hf5");
    std::fs::write(&path, "just text").expect("write");
    assert_names_file(&read_hf5(&path).expect_err("text"), &path);
    let path = dir.path("absent.hf5");
    let err = read_hf5(&path).expect_err("absent");
    assert!(matches!(err, FormatError::Read { .. }), "{err:?}");
    assert_names_file(&err, &path);
}

// ---------------------------------------------------------------- NIfTI

fn random_mask(rng: &mut Rng) -> Mask {
    let shape = [rng.range(1, 12), rng.range(1, 12), rng.range(1, 9)];
    let n = shape[0] * shape[1] * shape[2];
    let p = 0.2 + 0.7 * rng.unit();
    let mut inside: Vec<bool> = (0..n).map(|_| rng.unit() < p).collect();
    let k = rng.range(0, n);
    inside[k] = true;
    Mask::new(shape, inside)
}

#[test]
fn nifti_round_trips_with_a_random_mask() {
    use nifti::{NiftiObject, RandomAccessNiftiVolume};
    let mut rng = Rng::new("nifti_round_trip");
    let dir = TempDir::new("nifti");
    for ext in ["nii", "nii.gz"] {
        let mask = random_mask(&mut rng);
        let n_t = rng.range(1, 40);
        let m = rng.matrix(n_t, mask.count());
        let tr = 0.5 + rng.unit() * 2.0;
        let image = dir.path(&format!("bold.{ext}"));
        let mask_path = dir.path(&format!("mask.{ext}"));
        write_masked(&image, &m, &mask, tr).expect("write image");
        write_mask(&mask_path, &mask).expect("write mask");
        assert_eq!(read_mask(&mask_path).expect("read mask"), mask);
        assert_eq!(read_masked(&image, &mask_path).expect("read image"), m);

        let info = read_nifti_info(&image).expect("info");
        let [nx, ny, nz] = mask.shape;
        assert_eq!(info.dims, vec![nx, ny, nz, n_t]);
        assert!((info.tr_seconds.expect("TR") - tr).abs() < 1e-6);

        // Column k is the k-th inside voxel in C order over (x, y, z): check
        // against the nifti crate's own coordinate lookup.
        let obj = nifti::ReaderOptions::new().read_file(&image).expect("nifti crate reads it");
        let vol = obj.volume();
        let t = rng.range(0, n_t);
        let mut k = 0;
        for x in 0..nx {
            for y in 0..ny {
                for z in 0..nz {
                    let v = vol.get_f32(&[x as u16, y as u16, z as u16, t as u16]).expect("voxel");
                    if mask.contains(x, y, z) {
                        assert_eq!(v, m.get(t, k), "voxel ({x},{y},{z}) at t={t}");
                        k += 1;
                    } else {
                        assert_eq!(v, 0.0);
                    }
                }
            }
        }
        assert_eq!(k, m.cols);
    }
}

#[test]
fn nifti_bad_inputs_name_the_file() {
    let mut rng = Rng::new("nifti_bad");
    let dir = TempDir::new("nifti-bad");
    let mask = random_mask(&mut rng);
    let n_t = rng.range(3, 20);
    let m = rng.matrix(n_t, mask.count());
    let image = dir.path("bold.nii");
    write_masked(&image, &m, &mask, 2.0).expect("write");

    // A mask whose shape differs from the image.
    let [nx, ny, nz] = mask.shape;
    let other_shape = [nx + 1, ny, nz + rng.range(0, 2)];
    let other = Mask::new(other_shape, vec![true; other_shape.iter().product()]);
    let other_path = dir.path("other-mask.nii.gz");
    write_mask(&other_path, &other).expect("write mask");
    let err = read_masked(&image, &other_path).expect_err("shape mismatch");
    assert_names_file(&err, &image);
    assert_names_file(&err, &other_path);

    // Truncated image, plain and gzip.
    let mask_path = dir.path("mask.nii");
    write_mask(&mask_path, &mask).expect("write mask");
    for ext in ["nii", "nii.gz"] {
        let full = dir.path(&format!("full.{ext}"));
        write_masked(&full, &m, &mask, 2.0).expect("write");
        let bytes = std::fs::read(&full).expect("read");
        // Gzip: cut well inside the deflate data, where the reader must
        // notice; plain: anywhere.
        let limit = if ext == "nii" { bytes.len() } else { bytes.len() / 2 };
        let cut = rng.range(1, limit);
        let cut_path = dir.path(&format!("cut.{ext}"));
        std::fs::write(&cut_path, &bytes[..cut]).expect("truncate");
        let err = read_masked(&cut_path, &mask_path).expect_err("truncated image");
        assert_names_file(&err, &cut_path);
    }

    // An all-zero mask is refused.
    let empty = Mask::new(mask.shape, vec![false; mask.inside.len()]);
    let empty_path = dir.path("empty-mask.nii");
    write_mask(&empty_path, &empty).expect("write");
    assert_names_file(&read_mask(&empty_path).expect_err("empty mask"), &empty_path);
}
