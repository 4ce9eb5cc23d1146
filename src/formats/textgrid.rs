//! Praat TextGrid files (the word/phone alignments of LeBel 2023 and most
//! forced aligners).
//!
//! Reads both text forms Praat writes: the long ("full") form with labels
//! (`xmin = 0`, `intervals [1]:`) and the short form with bare values. Both
//! are read by one tokenizer that, like Praat itself, keeps only numbers,
//! quoted strings and `<flags>`, and skips labels, `[index]` brackets and
//! `!` comments. Interval tiers and point tiers (`TextTier`) are supported;
//! a point is returned as an [`Interval`] with `xmin == xmax`.
//!
//! Encodings: UTF-8 with or without byte-order mark, UTF-16 LE/BE with
//! byte-order mark (what Praat writes for non-ASCII text), UTF-16 without
//! mark when the first character is ASCII, and, for files that are not
//! valid UTF-8, ISO Latin-1 (what old Praat versions wrote). The binary
//! TextGrid form and the "chronological" form are refused with a hint to
//! re-save the file from Praat as a text file.
//!
//! [`words_from_textgrid`] turns the word tier into [`Word`]s, dropping empty
//! intervals and silence/noise markers. [`LEBEL_DROP_WORDS`] is the list used
//! by the Huth lab code for LeBel 2023 (`DEFAULT_BAD_WORDS` in
//! `ridge_utils/dsutils.py`: sentence_start, sentence_end, br, lg, ls, ns, sp;
//! a later copy adds sl) plus `sil`, `cg` and `ig`. As in that code, a label
//! is compared after lower-casing and stripping `{`/`}` from its ends, so
//! `{BR}`, `{ns}` and `SP` all match; unlike it, surrounding whitespace is
//! trimmed first and empty labels are dropped too (the Huth code keeps
//! empty-string intervals as words).

use std::path::Path;

use crate::formats::error::{read_bytes, write_bytes, FormatError};
use crate::formats::words::Word;

/// Silence, noise and bookkeeping labels dropped from LeBel/Huth word tiers.
pub const LEBEL_DROP_WORDS: &[&str] =
    &["sentence_start", "sentence_end", "br", "lg", "ls", "ns", "sp", "sl", "sil", "cg", "ig"];

/// Whether a tier holds intervals or points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TierKind {
    /// `"IntervalTier"`.
    Interval,
    /// `"TextTier"` (a point tier).
    Point,
}

/// One labelled interval; for a point tier `xmin == xmax` is the point time.
#[derive(Clone, Debug, PartialEq)]
pub struct Interval {
    pub xmin: f64,
    pub xmax: f64,
    pub text: String,
}

/// One tier of a TextGrid.
#[derive(Clone, Debug, PartialEq)]
pub struct Tier {
    pub name: String,
    pub kind: TierKind,
    pub xmin: f64,
    pub xmax: f64,
    pub intervals: Vec<Interval>,
}

/// A whole TextGrid: its time domain and its tiers, in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct TextGrid {
    pub xmin: f64,
    pub xmax: f64,
    pub tiers: Vec<Tier>,
}

/// The text form to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextGridForm {
    /// Praat's "text file" form with labels.
    Long,
    /// Praat's "short text file" form with bare values.
    Short,
}

/// The encoding to write a text file in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextEncoding {
    /// UTF-8 without byte-order mark.
    Utf8,
    /// UTF-8 with byte-order mark.
    Utf8Bom,
    /// UTF-16 little-endian with byte-order mark.
    Utf16Le,
    /// UTF-16 big-endian with byte-order mark (what Praat writes).
    Utf16Be,
}

impl TextGrid {
    /// The tier whose name equals `name`, ignoring case (the first one if
    /// several do).
    pub fn tier(&self, name: &str) -> Option<&Tier> {
        let wanted = name.trim().to_lowercase();
        self.tiers.iter().find(|t| t.name.trim().to_lowercase() == wanted)
    }

    /// The tier names in file order.
    pub fn tier_names(&self) -> Vec<String> {
        self.tiers.iter().map(|t| t.name.clone()).collect()
    }

    /// Like [`TextGrid::tier`], but a missing tier is a
    /// [`FormatError::MissingTier`] that names `path` and lists the tiers.
    pub fn require_tier(&self, name: &str, path: &Path) -> Result<&Tier, FormatError> {
        self.tier(name).ok_or_else(|| FormatError::MissingTier {
            path: path.to_path_buf(),
            wanted: name.to_string(),
            present: self.tier_names(),
        })
    }

    /// The file text in the given form (without byte-order mark).
    pub fn to_text(&self, form: TextGridForm) -> String {
        let mut out = String::new();
        out.push_str("File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n\n");
        match form {
            TextGridForm::Long => self.write_long(&mut out),
            TextGridForm::Short => self.write_short(&mut out),
        }
        out
    }

    fn write_long(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(out, "xmin = {} ", num(self.xmin));
        let _ = writeln!(out, "xmax = {} ", num(self.xmax));
        if self.tiers.is_empty() {
            out.push_str("tiers? <absent> \n");
            return;
        }
        out.push_str("tiers? <exists> \n");
        let _ = writeln!(out, "size = {} ", self.tiers.len());
        out.push_str("item []: \n");
        for (i, tier) in self.tiers.iter().enumerate() {
            let _ = writeln!(out, "    item [{}]:", i + 1);
            let _ = writeln!(out, "        class = {} ", quote(class_name(tier.kind)));
            let _ = writeln!(out, "        name = {} ", quote(&tier.name));
            let _ = writeln!(out, "        xmin = {} ", num(tier.xmin));
            let _ = writeln!(out, "        xmax = {} ", num(tier.xmax));
            let n = tier.intervals.len();
            match tier.kind {
                TierKind::Interval => {
                    let _ = writeln!(out, "        intervals: size = {n} ");
                    for (j, iv) in tier.intervals.iter().enumerate() {
                        let _ = writeln!(out, "        intervals [{}]:", j + 1);
                        let _ = writeln!(out, "            xmin = {} ", num(iv.xmin));
                        let _ = writeln!(out, "            xmax = {} ", num(iv.xmax));
                        let _ = writeln!(out, "            text = {} ", quote(&iv.text));
                    }
                }
                TierKind::Point => {
                    let _ = writeln!(out, "        points: size = {n} ");
                    for (j, iv) in tier.intervals.iter().enumerate() {
                        let _ = writeln!(out, "        points [{}]:", j + 1);
                        let _ = writeln!(out, "            number = {} ", num(iv.xmin));
                        let _ = writeln!(out, "            mark = {} ", quote(&iv.text));
                    }
                }
            }
        }
    }

    fn write_short(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(out, "{}", num(self.xmin));
        let _ = writeln!(out, "{}", num(self.xmax));
        if self.tiers.is_empty() {
            out.push_str("<absent>\n");
            return;
        }
        out.push_str("<exists>\n");
        let _ = writeln!(out, "{}", self.tiers.len());
        for tier in &self.tiers {
            let _ = writeln!(out, "{}", quote(class_name(tier.kind)));
            let _ = writeln!(out, "{}", quote(&tier.name));
            let _ = writeln!(out, "{}", num(tier.xmin));
            let _ = writeln!(out, "{}", num(tier.xmax));
            let _ = writeln!(out, "{}", tier.intervals.len());
            for iv in &tier.intervals {
                let _ = writeln!(out, "{}", num(iv.xmin));
                if tier.kind == TierKind::Interval {
                    let _ = writeln!(out, "{}", num(iv.xmax));
                }
                let _ = writeln!(out, "{}", quote(&iv.text));
            }
        }
    }
}

fn class_name(kind: TierKind) -> &'static str {
    match kind {
        TierKind::Interval => "IntervalTier",
        TierKind::Point => "TextTier",
    }
}

/// Shortest text that reads back to the same `f64`.
fn num(x: f64) -> String {
    format!("{x}")
}

/// A Praat string literal: double quotes, inner quotes doubled.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Reads and parses a TextGrid file in any of the supported encodings.
pub fn read_textgrid(path: &Path) -> Result<TextGrid, FormatError> {
    let bytes = read_bytes(path)?;
    let text = decode_text(&bytes, path)?;
    parse_textgrid(&text, path)
}

/// Writes a TextGrid in the given form and encoding (UTF-16 always with a
/// byte-order mark).
pub fn write_textgrid(
    path: &Path,
    grid: &TextGrid,
    form: TextGridForm,
    encoding: TextEncoding,
) -> Result<(), FormatError> {
    write_bytes(path, &encode_text(&grid.to_text(form), encoding))
}

/// The intervals (or points) of the tier named `tier_name` (case-insensitive).
pub fn read_tier(path: &Path, tier_name: &str) -> Result<Vec<Interval>, FormatError> {
    let grid = read_textgrid(path)?;
    Ok(grid.require_tier(tier_name, path)?.intervals.clone())
}

/// The words of the tier `tier_name`: empty labels and labels matching
/// `drop` (see [`is_dropped`]) are left out; each label is trimmed, case kept.
/// Pass [`LEBEL_DROP_WORDS`] for LeBel 2023 / Huth-lab TextGrids.
pub fn words_from_textgrid(path: &Path, tier_name: &str, drop: &[&str]) -> Result<Vec<Word>, FormatError> {
    let intervals = read_tier(path, tier_name)?;
    Ok(intervals
        .into_iter()
        .filter(|iv| !is_dropped(&iv.text, drop))
        .map(|iv| Word { word: iv.text.trim().to_string(), onset: iv.xmin, offset: iv.xmax })
        .collect())
}

/// Normalizes a label the way the Huth lab code does before looking it up
/// in its bad-word list: trim, strip `{`/`}` from both ends, trim, lower-case.
pub fn normalize_label(label: &str) -> String {
    label.trim().trim_matches(|c| c == '{' || c == '}').trim().to_lowercase()
}

/// Whether a label is empty or, after [`normalize_label`], equal to one of
/// `drop` (normalized the same way).
pub fn is_dropped(label: &str, drop: &[&str]) -> bool {
    let norm = normalize_label(label);
    norm.is_empty() || drop.iter().any(|d| normalize_label(d) == norm)
}

/// Encodes text in the given encoding (with byte-order mark where named).
pub fn encode_text(text: &str, encoding: TextEncoding) -> Vec<u8> {
    match encoding {
        TextEncoding::Utf8 => text.as_bytes().to_vec(),
        TextEncoding::Utf8Bom => {
            let mut out = b"\xEF\xBB\xBF".to_vec();
            out.extend_from_slice(text.as_bytes());
            out
        }
        TextEncoding::Utf16Le => {
            let mut out = vec![0xFF, 0xFE];
            out.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
            out
        }
        TextEncoding::Utf16Be => {
            let mut out = vec![0xFE, 0xFF];
            out.extend(text.encode_utf16().flat_map(|u| u.to_be_bytes()));
            out
        }
    }
}

/// Decodes a text file: byte-order mark (UTF-8, UTF-16 LE/BE) if present,
/// else UTF-16 guessed from a NUL in the first two bytes, else UTF-8, else
/// ISO Latin-1.
pub fn decode_text(bytes: &[u8], path: &Path) -> Result<String, FormatError> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return std::str::from_utf8(rest).map(str::to_string).map_err(|e| {
            FormatError::invalid(
                path,
                format!("starts with a UTF-8 byte-order mark but has invalid UTF-8 at byte {}", e.valid_up_to() + 3),
                "re-save the file as UTF-8 or UTF-16",
            )
        });
    }
    let utf16 = if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        Some((rest, false))
    } else if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        Some((rest, true))
    } else if bytes.len() >= 2 && bytes[0] != 0 && bytes[1] == 0 {
        Some((bytes, false))
    } else if bytes.len() >= 2 && bytes[0] == 0 && bytes[1] != 0 {
        Some((bytes, true))
    } else {
        None
    };
    if let Some((body, big_endian)) = utf16 {
        if body.len() % 2 != 0 {
            return Err(FormatError::invalid(
                path,
                format!("UTF-16 text with an odd number of bytes ({})", body.len()),
                "the file is truncated or not UTF-16; re-save it from Praat",
            ));
        }
        let units: Vec<u16> = body
            .chunks_exact(2)
            .map(|c| if big_endian { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_le_bytes([c[0], c[1]]) })
            .collect();
        return String::from_utf16(&units).map_err(|_| {
            FormatError::invalid(
                path,
                "invalid UTF-16 text (unpaired surrogate)",
                "the file is damaged; re-save it from Praat as a text file",
            )
        });
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(_) => Ok(bytes.iter().map(|&b| b as char).collect()),
    }
}

#[derive(Debug)]
enum Tok {
    Num(f64),
    Str(String),
    Flag(String),
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Num(x) => format!("the number {x}"),
        Tok::Str(s) => format!("the string {s:?}"),
        Tok::Flag(f) => format!("<{f}>"),
    }
}

const REPAIR: &str = "the file looks truncated or hand-edited; open it in Praat and save it again as a text file";

/// Splits TextGrid text into numbers, strings and flags, each with its line.
fn tokenize(text: &str, path: &Path) -> Result<Vec<(Tok, usize)>, FormatError> {
    let mut toks = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    // Where the last `=` label was (line, tokens so far): a bare word right
    // after it on its line is a value that is not a number (`xmax = banana`).
    let mut equals: Option<(usize, usize)> = None;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '!' => {
                // Comment to the end of the line.
                while let Some(&n) = chars.peek() {
                    if n == '\n' {
                        break;
                    }
                    chars.next();
                }
            }
            '"' => {
                let start = line;
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err(FormatError::parse(path, start, "a string opened here is never closed", REPAIR))
                        }
                        Some('"') => {
                            if chars.peek() == Some(&'"') {
                                chars.next();
                                s.push('"');
                            } else {
                                break;
                            }
                        }
                        Some(ch) => {
                            if ch == '\n' {
                                line += 1;
                            }
                            s.push(ch);
                        }
                    }
                }
                toks.push((Tok::Str(s), start));
            }
            '<' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None | Some('\n') => {
                            return Err(FormatError::parse(path, line, "a <flag> is never closed", REPAIR))
                        }
                        Some('>') => break,
                        Some(ch) => s.push(ch),
                    }
                }
                toks.push((Tok::Flag(s), line));
            }
            '[' => {
                // `item [1]:`, `intervals [3]:`: the index is a label, not data.
                for ch in chars.by_ref() {
                    if ch == '\n' {
                        line += 1;
                    }
                    if ch == ']' {
                        break;
                    }
                }
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || n == '!' || n == '"' || n == '<' {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                let value: f64 =
                    s.parse().map_err(|_| FormatError::parse(path, line, format!("{s:?} is not a number"), REPAIR))?;
                toks.push((Tok::Num(value), line));
            }
            _ => {
                // A label such as `xmin`, `=`, `tiers?` or `intervals:`.
                let mut label = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || n == '"' || n == '<' || n == '[' || n == '!' {
                        break;
                    }
                    label.push(n);
                    chars.next();
                }
                let value = match label.split_once('=') {
                    Some((_, value)) if !value.is_empty() => Some(value.to_string()),
                    _ if equals == Some((line, toks.len())) => Some(label.clone()),
                    _ => None,
                };
                if let Some(value) = value {
                    return Err(FormatError::parse(
                        path,
                        line,
                        format!("{value:?} after `=` is not a number, a quoted string or a <flag>"),
                        REPAIR,
                    ));
                }
                if label.ends_with('=') {
                    equals = Some((line, toks.len()));
                }
            }
        }
    }
    Ok(toks)
}

struct Cursor<'a> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    path: &'a Path,
    last_line: usize,
}

impl Cursor<'_> {
    fn next(&mut self, what: &str) -> Result<(Tok, usize), FormatError> {
        if self.pos >= self.toks.len() {
            return Err(FormatError::parse(
                self.path,
                self.last_line,
                format!("the file ends while {what} is expected"),
                REPAIR,
            ));
        }
        // The token is taken, its line kept: errors about the token just
        // read name it (`toks[pos - 1].1`).
        let line = self.toks[self.pos].1;
        let tok = std::mem::replace(&mut self.toks[self.pos].0, Tok::Flag(String::new()));
        self.pos += 1;
        Ok((tok, line))
    }

    fn num(&mut self, what: &str) -> Result<f64, FormatError> {
        match self.next(what)? {
            (Tok::Num(x), _) => Ok(x),
            (other, line) => Err(FormatError::parse(
                self.path,
                line,
                format!("expected {what} (a number) but found {}", describe(&other)),
                REPAIR,
            )),
        }
    }

    fn count(&mut self, what: &str) -> Result<usize, FormatError> {
        let line = self.peek_line();
        let x = self.num(what)?;
        if x < 0.0 || x.fract() != 0.0 || x > 1e9 {
            return Err(FormatError::parse(
                self.path,
                line,
                format!("expected {what} (a count) but found {x}"),
                REPAIR,
            ));
        }
        Ok(x as usize)
    }

    fn string(&mut self, what: &str) -> Result<String, FormatError> {
        match self.next(what)? {
            (Tok::Str(s), _) => Ok(s),
            (other, line) => Err(FormatError::parse(
                self.path,
                line,
                format!("expected {what} (a quoted string) but found {}", describe(&other)),
                REPAIR,
            )),
        }
    }

    fn peek_line(&self) -> usize {
        self.toks.get(self.pos).map_or(self.last_line, |t| t.1)
    }
}

/// The latest time a TextGrid may name, in seconds (about 11.6 days): a
/// larger one is a damaged or mistyped file, not a recording.
pub const MAX_SECONDS: f64 = 1e6;

/// Refuses an entry whose times cannot belong to a recording: not finite,
/// negative, past [`MAX_SECONDS`], ending before it starts, or (intervals)
/// starting before the previous interval ends.
fn check_times(
    path: &Path,
    line: usize,
    kind: TierKind,
    index: usize,
    tier: &str,
    entry: &Interval,
    previous: Option<&Interval>,
) -> Result<(), FormatError> {
    let what = match kind {
        TierKind::Interval => format!("interval {index} of tier {tier:?}"),
        TierKind::Point => format!("point {index} of tier {tier:?}"),
    };
    let fail = |message: String| Err(FormatError::parse(path, line, message, REPAIR));
    for (name, x) in [("xmin", entry.xmin), ("xmax", entry.xmax)] {
        if !x.is_finite() || !(0.0..=MAX_SECONDS).contains(&x) {
            // 1e300 as written, not as 301 digits.
            let shown = if x.is_finite() && x.abs() >= MAX_SECONDS { format!("{x:e}") } else { x.to_string() };
            return fail(format!("{what} has {name} = {shown}, outside 0 to {MAX_SECONDS:e} seconds"));
        }
    }
    if entry.xmax < entry.xmin {
        return fail(format!("{what} ends before it starts (xmin = {}, xmax = {})", entry.xmin, entry.xmax));
    }
    if let (TierKind::Interval, Some(previous)) = (kind, previous) {
        // Praat writes adjacent intervals with equal boundaries; allow rounding.
        if entry.xmin < previous.xmax - 1e-6 {
            return fail(format!(
                "{what} starts at {} before interval {} ends at {} (intervals overlap)",
                entry.xmin,
                index - 1,
                previous.xmax
            ));
        }
    }
    Ok(())
}

/// Parses TextGrid text (already decoded); `path` is only used in errors.
pub fn parse_textgrid(text: &str, path: &Path) -> Result<TextGrid, FormatError> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with("\"Praat chronological TextGrid text file\"") {
        return Err(FormatError::parse(
            path,
            1,
            "this is a chronological TextGrid, which is not supported",
            "open it in Praat and use Save as text file (long or short form)",
        ));
    }
    if text.starts_with("ooBinaryFile") {
        return Err(FormatError::parse(
            path,
            1,
            "this is a binary Praat file",
            "open it in Praat and use Save as text file",
        ));
    }
    let toks = tokenize(text, path)?;
    let last_line = 1 + text.matches('\n').count();
    let mut cur = Cursor { toks, pos: 0, path, last_line };

    let file_type = cur.string("the file type \"ooTextFile\"")?;
    if !file_type.starts_with("ooTextFile") {
        return Err(FormatError::parse(
            path,
            1,
            format!("file type is {file_type:?}, not \"ooTextFile\""),
            "this is not a Praat text file; export the TextGrid from Praat with Save as text file",
        ));
    }
    let class = cur.string("the object class \"TextGrid\"")?;
    if class != "TextGrid" {
        return Err(FormatError::parse(
            path,
            cur.toks[cur.pos - 1].1,
            format!("object class is {class:?}, not \"TextGrid\""),
            "pass a TextGrid file (this Praat file holds another kind of object)",
        ));
    }
    let xmin = cur.num("the TextGrid xmin")?;
    let xmax = cur.num("the TextGrid xmax")?;
    let exists = match cur.next("tiers? <exists> or <absent>")? {
        (Tok::Flag(f), _) if f == "exists" => true,
        (Tok::Flag(f), _) if f == "absent" => false,
        (other, line) => {
            return Err(FormatError::parse(
                path,
                line,
                format!("expected <exists> or <absent> but found {}", describe(&other)),
                REPAIR,
            ))
        }
    };
    let n_tiers = if exists { cur.count("the number of tiers")? } else { 0 };
    let mut tiers = Vec::with_capacity(n_tiers.min(1024));
    for t in 1..=n_tiers {
        let class_line = cur.peek_line();
        let class = cur.string(&format!("the class of tier {t}"))?;
        let kind = match class.as_str() {
            "IntervalTier" => TierKind::Interval,
            "TextTier" | "PointTier" => TierKind::Point,
            other => {
                return Err(FormatError::parse(
                    path,
                    class_line,
                    format!("tier {t} has class {other:?}"),
                    "only \"IntervalTier\" and \"TextTier\" tiers exist in a TextGrid; \
                     re-save it from Praat",
                ))
            }
        };
        let name = cur.string(&format!("the name of tier {t}"))?;
        let tier_xmin = cur.num(&format!("the xmin of tier {name:?}"))?;
        let tier_xmax = cur.num(&format!("the xmax of tier {name:?}"))?;
        let n = cur.count(&format!("the number of entries of tier {name:?}"))?;
        let mut intervals = Vec::with_capacity(n.min(1 << 16));
        for i in 1..=n {
            let line = cur.peek_line();
            let iv = match kind {
                TierKind::Interval => {
                    let a = cur.num(&format!("the xmin of interval {i} of tier {name:?}"))?;
                    let b = cur.num(&format!("the xmax of interval {i} of tier {name:?}"))?;
                    let s = cur.string(&format!("the text of interval {i} of tier {name:?}"))?;
                    Interval { xmin: a, xmax: b, text: s }
                }
                TierKind::Point => {
                    let a = cur.num(&format!("the time of point {i} of tier {name:?}"))?;
                    let s = cur.string(&format!("the mark of point {i} of tier {name:?}"))?;
                    Interval { xmin: a, xmax: a, text: s }
                }
            };
            check_times(path, line, kind, i, &name, &iv, intervals.last())?;
            intervals.push(iv);
        }
        tiers.push(Tier { name, kind, xmin: tier_xmin, xmax: tier_xmax, intervals });
    }
    Ok(TextGrid { xmin, xmax, tiers })
}
