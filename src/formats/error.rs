//! `FormatError`: the one error type of the file-format readers and writers
//! (TextGrid, word alignments, BIDS, HDF5, NIfTI, respdict). Every variant
//! names the file it is about, text formats also give the 1-based line, and
//! every message ends with a hint that says how to fix the input.

use std::path::{Path, PathBuf};

/// An error while reading or writing a data file.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file could not be opened or read at the operating-system level.
    #[error(
        "cannot read {}: {source}; check that the path is right and the file is readable",
        .path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file could not be created or written.
    #[error(
        "cannot write {}: {source}; check that the directory exists and is writable",
        .path.display()
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A text file has bad content at a given line (1-based).
    #[error("{}:{line}: {message}; {hint}", .path.display())]
    Parse { path: PathBuf, line: usize, message: String, hint: String },
    /// A file (text or binary) has content that cannot be used.
    #[error("{}: {message}; {hint}", .path.display())]
    Invalid { path: PathBuf, message: String, hint: String },
    /// A TextGrid has no tier of the requested name.
    #[error(
        "{}: no tier named {wanted:?} (tiers present: {}); \
         pass one of these names as the word tier",
        .path.display(),
        quoted_list(.present)
    )]
    MissingTier { path: PathBuf, wanted: String, present: Vec<String> },
    /// A table (TSV/CSV/events) lacks a column that is needed.
    #[error(
        "{}:{line}: no column named {wanted} (columns present: {}); {hint}",
        .path.display(),
        quoted_list(.present)
    )]
    MissingColumn { path: PathBuf, line: usize, wanted: String, present: Vec<String>, hint: String },
}

fn quoted_list(items: &[String]) -> String {
    if items.is_empty() {
        return "none".to_string();
    }
    items.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ")
}

impl FormatError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            FormatError::Read { path, .. }
            | FormatError::Write { path, .. }
            | FormatError::Parse { path, .. }
            | FormatError::Invalid { path, .. }
            | FormatError::MissingTier { path, .. }
            | FormatError::MissingColumn { path, .. } => path,
        }
    }

    /// The 1-based line of a text-format error, when there is one.
    pub fn line(&self) -> Option<usize> {
        match self {
            FormatError::Parse { line, .. } | FormatError::MissingColumn { line, .. } => Some(*line),
            _ => None,
        }
    }

    pub fn read(path: &Path, source: std::io::Error) -> FormatError {
        FormatError::Read { path: path.to_path_buf(), source }
    }

    pub fn write(path: &Path, source: std::io::Error) -> FormatError {
        FormatError::Write { path: path.to_path_buf(), source }
    }

    pub fn parse(path: &Path, line: usize, message: impl Into<String>, hint: impl Into<String>) -> FormatError {
        FormatError::Parse { path: path.to_path_buf(), line, message: message.into(), hint: hint.into() }
    }

    pub fn invalid(path: &Path, message: impl Into<String>, hint: impl Into<String>) -> FormatError {
        FormatError::Invalid { path: path.to_path_buf(), message: message.into(), hint: hint.into() }
    }
}

/// Reads a whole file, mapping the I/O error to [`FormatError::Read`].
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, FormatError> {
    std::fs::read(path).map_err(|e| FormatError::read(path, e))
}

/// Reads a whole UTF-8 file (a leading byte-order mark is dropped).
pub(crate) fn read_utf8(path: &Path) -> Result<String, FormatError> {
    let bytes = read_bytes(path)?;
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    match std::str::from_utf8(body) {
        Ok(text) => Ok(text.to_string()),
        Err(e) => {
            let line = 1 + body[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count();
            Err(FormatError::parse(
                path,
                line,
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                "save the file as UTF-8",
            ))
        }
    }
}

/// Writes a whole file, mapping the I/O error to [`FormatError::Write`].
pub(crate) fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), FormatError> {
    std::fs::write(path, bytes).map_err(|e| FormatError::write(path, e))
}
