//! BIDS metadata of a functional run: the `*_bold.json` sidecar
//! (`RepetitionTime`, optional `SliceTiming`), the `*_events.tsv` table
//! (`onset`, `duration`, `trial_type` and any extra columns), and the TR grid
//! they imply.
//!
//! Time convention: [`tr_grid`] gives, for each TR (volume) `i`, the time its
//! acquisition starts, in seconds relative to the stimulus onset:
//! `i * tr - lead_in`, where `lead_in` is the time from the first retained
//! volume to the stimulus onset. So a word at `t` seconds into the story
//! falls in TR `floor((t + lead_in) / tr)`. For Narratives (ds002345) the
//! lead-in is the onset of the `story` event in `events.tsv` (21 s for
//! 21styear, after 18 s of music); for LeBel 2023 (ds003020), which ships no
//! per-story events, it is 10 s (see `respdict`). LeBel's code takes the TR
//! midpoints (`+ tr / 2`) as the times to interpolate features at:
//! [`tr_midpoints`].

use std::collections::BTreeMap;
use std::path::Path;

use crate::formats::error::{read_utf8, FormatError};
use crate::formats::tsv::Tsv;

/// The parts of a `*_bold.json` sidecar that timing needs; everything else
/// is kept in `other`.
#[derive(Clone, Debug, PartialEq)]
pub struct BoldSidecar {
    /// Seconds between volumes (`RepetitionTime`).
    pub repetition_time: f64,
    /// Per-slice acquisition offsets within a TR, seconds (`SliceTiming`).
    pub slice_timing: Option<Vec<f64>>,
    /// `TaskName`, when present.
    pub task_name: Option<String>,
    /// All other fields, as JSON.
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// One row of an `events.tsv`.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub onset: f64,
    /// `None` when the duration is `n/a`.
    pub duration: Option<f64>,
    /// `None` when there is no `trial_type` column or the value is `n/a`.
    pub trial_type: Option<String>,
    /// The other columns by header name (values as written, `n/a` included).
    pub extra: BTreeMap<String, String>,
}

/// Reads a BIDS `*_bold.json`.
pub fn read_bold_json(path: &Path) -> Result<BoldSidecar, FormatError> {
    let text = read_utf8(path)?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| FormatError::parse(path, e.line(), format!("invalid JSON: {e}"), "fix the JSON syntax"))?;
    let serde_json::Value::Object(mut map) = value else {
        return Err(FormatError::invalid(
            path,
            "the JSON is not an object",
            "a BIDS sidecar is a JSON object such as {\"RepetitionTime\": 2.0}",
        ));
    };
    let tr_value = map.remove("RepetitionTime").ok_or_else(|| {
        FormatError::invalid(
            path,
            "no \"RepetitionTime\" field",
            "add \"RepetitionTime\": <seconds between volumes> to the sidecar",
        )
    })?;
    let repetition_time = match tr_value.as_f64() {
        Some(tr) if tr.is_finite() && tr > 0.0 => tr,
        _ => {
            return Err(FormatError::invalid(
                path,
                format!("\"RepetitionTime\" is {tr_value}, not a positive number of seconds"),
                "set \"RepetitionTime\" to the seconds between volumes (e.g. 2.0)",
            ))
        }
    };
    let slice_timing = match map.remove("SliceTiming") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in &items {
                match item.as_f64() {
                    Some(x) if x.is_finite() => out.push(x),
                    _ => {
                        return Err(FormatError::invalid(
                            path,
                            format!("\"SliceTiming\" holds {item}, not a number"),
                            "\"SliceTiming\" must be a list of seconds, one per slice",
                        ))
                    }
                }
            }
            Some(out)
        }
        Some(other) => {
            return Err(FormatError::invalid(
                path,
                format!("\"SliceTiming\" is {other}, not a list"),
                "\"SliceTiming\" must be a list of seconds, one per slice",
            ))
        }
    };
    let task_name = map.get("TaskName").and_then(|v| v.as_str()).map(str::to_string);
    Ok(BoldSidecar { repetition_time, slice_timing, task_name, other: map })
}

const EVENTS_HINT: &str = "a BIDS events.tsv is tab-separated with a header row starting onset<TAB>duration";

fn parse_opt(s: &str) -> Option<Result<f64, ()>> {
    let t = s.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("n/a") {
        return None;
    }
    Some(t.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or(()))
}

/// Reads a BIDS `events.tsv`: `onset` (required, seconds), `duration`
/// (required column, `n/a` allowed), `trial_type` (optional) and any other
/// columns into [`Event::extra`].
pub fn read_events_tsv(path: &Path) -> Result<Vec<Event>, FormatError> {
    let tsv = Tsv::read(path, EVENTS_HINT)?;
    let col = |name: &str| tsv.header.iter().position(|h| h == name);
    let onset_col = col("onset").ok_or_else(|| tsv.missing("onset"))?;
    let duration_col = col("duration").ok_or_else(|| tsv.missing("duration"))?;
    let type_col = col("trial_type");
    let mut events = Vec::new();
    for (line, fields) in &tsv.rows {
        let line = *line;
        let onset = match parse_opt(&fields[onset_col]) {
            Some(Ok(x)) => x,
            _ => {
                return Err(FormatError::parse(
                    path,
                    line,
                    format!("onset {:?} is not a number of seconds", fields[onset_col]),
                    "every event needs a numeric onset",
                ))
            }
        };
        let duration = match parse_opt(&fields[duration_col]) {
            None => None,
            Some(Ok(x)) => Some(x),
            Some(Err(())) => {
                return Err(FormatError::parse(
                    path,
                    line,
                    format!("duration {:?} is not a number of seconds", fields[duration_col]),
                    "write the duration in seconds, or n/a",
                ))
            }
        };
        let trial_type = type_col
            .map(|c| fields[c].trim())
            .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("n/a"))
            .map(str::to_string);
        let extra = tsv
            .header
            .iter()
            .enumerate()
            .filter(|(c, _)| *c != onset_col && *c != duration_col && Some(*c) != type_col)
            .map(|(c, name)| (name.clone(), fields[c].to_string()))
            .collect();
        events.push(Event { onset, duration, trial_type, extra });
    }
    Ok(events)
}

/// TR acquisition-start times relative to the stimulus onset:
/// `i * tr_seconds - lead_in_seconds` for `i` in `0..n_trs`.
pub fn tr_grid(n_trs: usize, tr_seconds: f64, lead_in_seconds: f64) -> Vec<f64> {
    (0..n_trs).map(|i| i as f64 * tr_seconds - lead_in_seconds).collect()
}

/// TR midpoints relative to the stimulus onset: [`tr_grid`] `+ tr / 2`
/// (the times LeBel/Huth code interpolates features at).
pub fn tr_midpoints(n_trs: usize, tr_seconds: f64, lead_in_seconds: f64) -> Vec<f64> {
    tr_grid(n_trs, tr_seconds, lead_in_seconds).into_iter().map(|t| t + tr_seconds / 2.0).collect()
}

/// The onset of the stimulus among `events`, in seconds from the first
/// volume. With `trial_type` given: the earliest event of that type. Without:
/// the earliest `story` event if there is one, else the earliest event when
/// all events share one trial type (or have none). Errors name `path` and
/// list the trial types present.
pub fn stimulus_onset(events: &[Event], trial_type: Option<&str>, path: &Path) -> Result<f64, FormatError> {
    let earliest = |ty: Option<&str>| {
        events
            .iter()
            .filter(|e| ty.is_none_or(|t| e.trial_type.as_deref() == Some(t)))
            .map(|e| e.onset)
            .min_by(f64::total_cmp)
    };
    let mut types: Vec<String> = events.iter().filter_map(|e| e.trial_type.clone()).collect();
    types.sort();
    types.dedup();
    let listed = if types.is_empty() {
        "none".to_string()
    } else {
        types.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(", ")
    };
    if events.is_empty() {
        return Err(FormatError::invalid(
            path,
            "the events table has no rows",
            "add a row with the stimulus onset (onset<TAB>duration<TAB>trial_type)",
        ));
    }
    match trial_type {
        Some(t) => earliest(Some(t)).ok_or_else(|| {
            FormatError::invalid(
                path,
                format!("no event with trial_type {t:?} (trial types present: {listed})"),
                "pass one of the trial types present",
            )
        }),
        None => {
            if let Some(onset) = earliest(Some("story")) {
                Ok(onset)
            } else if types.len() <= 1 {
                Ok(earliest(None).expect("events is not empty"))
            } else {
                Err(FormatError::invalid(
                    path,
                    format!("cannot tell which event is the stimulus (trial types present: {listed})"),
                    "name the stimulus trial_type explicitly",
                ))
            }
        }
    }
}

/// The timing of one run: TR, lead-in and the TR grid.
#[derive(Clone, Debug, PartialEq)]
pub struct RunTiming {
    pub tr_seconds: f64,
    /// Seconds from the first volume to the stimulus onset.
    pub lead_in_seconds: f64,
    /// [`tr_grid`]`(n_trs, tr_seconds, lead_in_seconds)`.
    pub tr_times: Vec<f64>,
}

/// Reads a `*_bold.json` and an `events.tsv` and builds the TR grid of a run
/// with `n_trs` volumes; the lead-in is [`stimulus_onset`]`(events,
/// trial_type)`.
pub fn run_timing(
    bold_json: &Path,
    events_tsv: &Path,
    n_trs: usize,
    trial_type: Option<&str>,
) -> Result<RunTiming, FormatError> {
    let sidecar = read_bold_json(bold_json)?;
    let events = read_events_tsv(events_tsv)?;
    let lead_in = stimulus_onset(&events, trial_type, events_tsv)?;
    Ok(RunTiming {
        tr_seconds: sidecar.repetition_time,
        lead_in_seconds: lead_in,
        tr_times: tr_grid(n_trs, sidecar.repetition_time, lead_in),
    })
}
