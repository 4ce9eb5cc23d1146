//! Word alignments: [`Word`] (a word with onset and offset in seconds from
//! the stimulus start) and readers/writers for the table forms users have.
//!
//! * Gentle CSV (`align.csv`, e.g. Narratives `stimuli/gentle/*/align.csv`):
//!   no header, one row per transcript word, columns `word, alignedWord,
//!   start, end`, written by Python's `csv` module (RFC 4180 quoting).
//!   Words Gentle could not place ("not-found-in-audio") have empty
//!   start/end. A three-column `word,start,end` file and a header row
//!   (`word,...,start,end`) are accepted too.
//! * Gentle JSON (`align.json`): `{"words": [{"case": "success", "word",
//!   "alignedWord", "start", "end"}, ...]}`.
//! * TSV with a header: `word`/`onset`/`offset`, or a BIDS `events.tsv`
//!   (`onset`, `duration`, and a label column `word`, `text`, `token`,
//!   `stim` or `trial_type`). Column names are matched case-insensitively;
//!   `start` is an alias of `onset`, `end`/`stop` of `offset`.
//!
//! Readers that return `Vec<Word>` leave out words without times (unaligned
//! Gentle words); use [`read_gentle_csv`] to see them.

use std::path::Path;

use crate::formats::error::{read_utf8, write_bytes, FormatError};
use crate::formats::tsv::Tsv;

/// A word and when it was heard, in seconds from the stimulus start.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Word {
    pub word: String,
    pub onset: f64,
    pub offset: f64,
}

/// One row of a Gentle alignment; `start`/`end` are `None` for words Gentle
/// could not find in the audio.
#[derive(Clone, Debug, PartialEq)]
pub struct GentleRow {
    /// The word as written in the transcript.
    pub word: String,
    /// The word Gentle aligned (lower-cased, `<unk>` when out of vocabulary);
    /// `None` in the three-column form or when empty.
    pub aligned_word: Option<String>,
    pub start: Option<f64>,
    pub end: Option<f64>,
}

/// Splits one CSV record (RFC 4180: `"` quotes, `""` inside quotes).
fn split_csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut in_quotes = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
        } else if c == '"' && field.is_empty() && !was_quoted {
            in_quotes = true;
            was_quoted = true;
        } else if c == ',' {
            fields.push(std::mem::take(&mut field));
            was_quoted = false;
        } else {
            field.push(c);
        }
    }
    if in_quotes {
        return Err("a quoted field is not closed on this line".to_string());
    }
    fields.push(field);
    Ok(fields)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn parse_time(s: &str, path: &Path, line: usize, column: &str, hint: &str) -> Result<Option<f64>, FormatError> {
    let t = s.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("n/a") || t.eq_ignore_ascii_case("nan") {
        return Ok(None);
    }
    match t.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(Some(x)),
        _ => {
            Err(FormatError::parse(path, line, format!("{column} {t:?} is not a number of seconds"), hint.to_string()))
        }
    }
}

const GENTLE_HINT: &str = "expected Gentle's align.csv rows `word,alignedWord,start,end` (or `word,start,end`)";

/// Reads all rows of a Gentle `align.csv`, unaligned words included.
pub fn read_gentle_csv(path: &Path) -> Result<Vec<GentleRow>, FormatError> {
    let text = read_utf8(path)?;
    let mut rows = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim_end_matches('\r');
        if raw.trim().is_empty() {
            continue;
        }
        let fields = split_csv_line(raw).map_err(|m| FormatError::parse(path, line, m, GENTLE_HINT))?;
        let (word, aligned, start, end) = match fields.len() {
            4 => (&fields[0], Some(&fields[1]), &fields[2], &fields[3]),
            3 => (&fields[0], None, &fields[1], &fields[2]),
            n => return Err(FormatError::parse(path, line, format!("{n} columns"), GENTLE_HINT)),
        };
        if rows.is_empty() && start.trim().eq_ignore_ascii_case("start") && end.trim().eq_ignore_ascii_case("end") {
            continue; // header row
        }
        rows.push(GentleRow {
            word: word.clone(),
            aligned_word: aligned.filter(|a| !a.is_empty()).cloned(),
            start: parse_time(start, path, line, "start", GENTLE_HINT)?,
            end: parse_time(end, path, line, "end", GENTLE_HINT)?,
        });
    }
    Ok(rows)
}

/// The aligned words of a Gentle `align.csv` (words without times left out).
pub fn words_from_gentle_csv(path: &Path) -> Result<Vec<Word>, FormatError> {
    Ok(read_gentle_csv(path)?
        .into_iter()
        .filter_map(|r| match (r.start, r.end) {
            (Some(onset), Some(offset)) => Some(Word { word: r.word, onset, offset }),
            _ => None,
        })
        .collect())
}

/// Writes words as a Gentle `align.csv` (no header; `alignedWord` is the
/// lower-cased word).
pub fn write_gentle_csv(path: &Path, words: &[Word]) -> Result<(), FormatError> {
    let mut out = String::new();
    for w in words {
        out.push_str(&format!(
            "{},{},{},{}\r\n",
            csv_field(&w.word),
            csv_field(&w.word.to_lowercase()),
            w.onset,
            w.offset
        ));
    }
    write_bytes(path, out.as_bytes())
}

#[derive(serde::Deserialize)]
struct GentleJson {
    words: Vec<GentleJsonWord>,
}

#[derive(serde::Deserialize)]
struct GentleJsonWord {
    #[serde(default)]
    case: Option<String>,
    word: String,
    #[serde(default)]
    start: Option<f64>,
    #[serde(default)]
    end: Option<f64>,
}

/// The aligned words (case "success" with start and end) of a Gentle
/// `align.json`.
pub fn words_from_gentle_json(path: &Path) -> Result<Vec<Word>, FormatError> {
    let text = read_utf8(path)?;
    let doc: GentleJson = serde_json::from_str(&text).map_err(|e| {
        FormatError::parse(
            path,
            e.line(),
            format!("not a Gentle alignment: {e}"),
            "expected Gentle's JSON output with a \"words\" list",
        )
    })?;
    Ok(doc
        .words
        .into_iter()
        .filter(|w| w.case.as_deref().is_none_or(|c| c == "success"))
        .filter_map(|w| match (w.start, w.end) {
            (Some(onset), Some(offset)) => Some(Word { word: w.word, onset, offset }),
            _ => None,
        })
        .collect())
}

const TSV_HINT: &str = "expected a tab-separated table with a header row: word, onset, offset \
(or BIDS onset, duration and a word/trial_type column)";

fn find_col(header: &[String], names: &[&str]) -> Option<usize> {
    names.iter().find_map(|n| header.iter().position(|h| h.trim().eq_ignore_ascii_case(n)))
}

/// Reads words from a TSV with a header: `word`, `onset`, `offset`, or BIDS
/// `onset`, `duration` and a label column (`word`, `text`, `token`, `stim`,
/// `trial_type`, first present wins). Rows whose onset is `n/a` are an
/// error; a `n/a` duration gives `offset == onset`.
pub fn words_from_tsv(path: &Path) -> Result<Vec<Word>, FormatError> {
    let tsv = Tsv::read(path, TSV_HINT)?;
    let header = &tsv.header;
    let word_col = find_col(header, &["word", "text", "token", "stim", "trial_type"])
        .ok_or_else(|| tsv.missing("word (or text, token, stim, trial_type)"))?;
    let onset_col = find_col(header, &["onset", "start"]).ok_or_else(|| tsv.missing("onset"))?;
    let offset_col = find_col(header, &["offset", "end", "stop"]);
    let duration_col = find_col(header, &["duration"]);
    if offset_col.is_none() && duration_col.is_none() {
        return Err(tsv.missing("offset (or duration)"));
    }
    let mut words = Vec::new();
    for (line, fields) in &tsv.rows {
        let line = *line;
        let onset = parse_time(&fields[onset_col], path, line, "onset", TSV_HINT)?
            .ok_or_else(|| FormatError::parse(path, line, "onset is empty or n/a", TSV_HINT))?;
        let offset = match (offset_col, duration_col) {
            (Some(c), _) => parse_time(&fields[c], path, line, "offset", TSV_HINT)?
                .ok_or_else(|| FormatError::parse(path, line, "offset is empty or n/a", TSV_HINT))?,
            (None, Some(c)) => onset + parse_time(&fields[c], path, line, "duration", TSV_HINT)?.unwrap_or(0.0),
            (None, None) => unreachable!("checked above"),
        };
        words.push(Word { word: fields[word_col].trim().to_string(), onset, offset });
    }
    Ok(words)
}

/// Writes words as a TSV with the header `word\tonset\toffset`. Tabs and
/// newlines inside a word are replaced by spaces.
pub fn write_words_tsv(path: &Path, words: &[Word]) -> Result<(), FormatError> {
    let mut out = String::from("word\tonset\toffset\n");
    for w in words {
        let word = w.word.replace(['\t', '\n', '\r'], " ");
        out.push_str(&format!("{}\t{}\t{}\n", word, w.onset, w.offset));
    }
    write_bytes(path, out.as_bytes())
}
