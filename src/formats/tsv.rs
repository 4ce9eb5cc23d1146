//! Tab-separated text with a header row, as BIDS `events.tsv` and word
//! alignments have it: blank lines skipped, `\r\n` endings accepted, every
//! row checked to have the header's number of fields. The one reader behind
//! [`crate::formats::bids::read_events_tsv`] and
//! [`crate::formats::words::words_from_tsv`].

use std::path::{Path, PathBuf};

use super::error::{read_utf8, FormatError};

/// A parsed TSV file: its header and its rows with their 1-based lines.
pub(crate) struct Tsv {
    path: PathBuf,
    hint: &'static str,
    pub header: Vec<String>,
    pub rows: Vec<(usize, Vec<String>)>,
}

impl Tsv {
    /// Reads `path`; `hint` ends every error about this file.
    pub fn read(path: &Path, hint: &'static str) -> Result<Tsv, FormatError> {
        let text = read_utf8(path)?;
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let Some((_, header_line)) = lines.next() else {
            return Err(FormatError::parse(path, 1, "the file is empty", hint));
        };
        let header: Vec<String> = split(header_line).map(|s| s.trim().to_string()).collect();
        let mut rows = Vec::new();
        for (i, raw) in lines {
            let line = i + 1;
            let fields: Vec<String> = split(raw).map(str::to_string).collect();
            if fields.len() != header.len() {
                return Err(FormatError::parse(
                    path,
                    line,
                    format!("{} fields, the header has {}", fields.len(), header.len()),
                    hint,
                ));
            }
            rows.push((line, fields));
        }
        Ok(Tsv { path: path.to_path_buf(), hint, header, rows })
    }

    /// The error for a column the file lacks, listing the ones it has.
    pub fn missing(&self, wanted: &str) -> FormatError {
        FormatError::MissingColumn {
            path: self.path.clone(),
            line: 1,
            wanted: wanted.to_string(),
            present: self.header.clone(),
            hint: self.hint.to_string(),
        }
    }
}

fn split(line: &str) -> impl Iterator<Item = &str> {
    line.trim_end_matches('\r').split('\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("voxflow-tsv-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.tsv");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn rows_keep_their_file_lines_and_crlf_is_accepted() {
        let path = write("lines", "onset\tword \r\n\n1.5\thello\r\n\n2\tworld\n");
        let tsv = Tsv::read(&path, "fix it").unwrap();
        assert_eq!(tsv.header, ["onset", "word"]);
        assert_eq!(tsv.rows, vec![(3, vec!["1.5".into(), "hello".into()]), (5, vec!["2".into(), "world".into()])]);
    }

    #[test]
    fn a_short_row_and_an_empty_file_name_the_line() {
        let path = write("short", "a\tb\n1\t2\n3\n");
        let error = Tsv::read(&path, "fix it").err().unwrap().to_string();
        assert!(error.contains(":3: 1 fields, the header has 2; fix it"), "{error}");
        let path = write("empty", "\n \n");
        let error = Tsv::read(&path, "fix it").err().unwrap().to_string();
        assert!(error.contains(":1: the file is empty"), "{error}");
    }
}
