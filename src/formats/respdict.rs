//! LeBel 2023 (ds003020) `derivative/respdict.json`: a JSON object mapping
//! each story name to its number of TRs (`{"alternateithicatom": 363, ...}`,
//! 84 stories in the real file).
//!
//! How LeBel/Huth code turns a count into times
//! (`load_simulated_trfiles(respdict, tr=2.0, start_time=10.0, pad=5)`):
//! it simulates `n - 5` triggers at 2.0 s, with the sound starting 10 s
//! after the first, and interpolates features at the TR midpoints; then it
//! trims `[5 + trim : -trim]` (trim = 5) from the downsampled features.
//! [`lebel_tr_times`] reproduces the first part.

use std::collections::BTreeMap;
use std::path::Path;

use crate::formats::bids::tr_midpoints;
use crate::formats::error::{read_utf8, write_bytes, FormatError};

/// LeBel 2023 repetition time, seconds.
pub const LEBEL_TR_SECONDS: f64 = 2.0;
/// Seconds from the first simulated trigger to the story onset in LeBel's code.
pub const LEBEL_LEAD_IN_SECONDS: f64 = 10.0;
/// TRs that LeBel's code leaves out of the simulated trigger list.
pub const LEBEL_PAD_TRS: usize = 5;

/// Reads a respdict: story name -> TR count (sorted by story name).
pub fn read_respdict(path: &Path) -> Result<BTreeMap<String, usize>, FormatError> {
    let text = read_utf8(path)?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| FormatError::parse(path, e.line(), format!("invalid JSON: {e}"), "fix the JSON syntax"))?;
    let serde_json::Value::Object(map) = value else {
        return Err(FormatError::invalid(
            path,
            "the JSON is not an object",
            "a respdict maps story names to TR counts: {\"story\": 300, ...}",
        ));
    };
    let mut out = BTreeMap::new();
    for (story, v) in map {
        match v.as_u64() {
            Some(n) => {
                out.insert(story, n as usize);
            }
            None => {
                return Err(FormatError::invalid(
                    path,
                    format!("story {story:?} has TR count {v}, not a non-negative integer"),
                    "each value must be the story's number of TRs",
                ))
            }
        }
    }
    Ok(out)
}

/// Writes a respdict as one-line JSON (the layout of the real file).
pub fn write_respdict(path: &Path, counts: &BTreeMap<String, usize>) -> Result<(), FormatError> {
    let text = serde_json::to_string(counts).expect("a map of strings to integers serializes");
    write_bytes(path, text.as_bytes())
}

/// The feature-interpolation times LeBel's code uses for a story with
/// `n_trs` TRs in the respdict: `n_trs - 5` TR midpoints at 2.0 s relative to
/// a story onset 10 s after the first trigger (`i * 2 - 10 + 1`).
pub fn lebel_tr_times(n_trs: usize) -> Vec<f64> {
    tr_midpoints(n_trs.saturating_sub(LEBEL_PAD_TRS), LEBEL_TR_SECONDS, LEBEL_LEAD_IN_SECONDS)
}
