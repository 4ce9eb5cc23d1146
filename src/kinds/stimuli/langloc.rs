//! `stimuli.langloc`: the Fedorenko et al. (2010) language localizer,
//! sentences (`S`) against lists of pronounceable non-words (`N`), 12 words
//! each, read from its CSV files in `dir` (default
//! `data/fedorenko2010_localization`, relative to the pipeline file, where
//! scripts/setup-python.sh links the files the brainscore-language 2.3.0
//! wheel ships; any directory in the same layout works). The directory is
//! hashed by content: every file in it enters the key.
//!
//! Files: `langloc_fmri_run{R}_stim_set{S}.csv` for the chosen `runs`
//! (default 1, 2) and `sets` (default 1..5), read run by run, set by set,
//! rows in file order. Each has the header `stim1,...,stim14` and rows of
//! an index, 12 words and `S` or `N`. The ten files hold 480 distinct
//! items, 240 of each label.
//!
//! Output `stimuli` (stimuli.parquet): `item` (uint32, 0..n in that order),
//! `text` (the 12 words joined by single spaces), `label` (`S` or `N`),
//! `file` (the CSV's name) and `index` (uint32, the row's index field,
//! which repeats within a file). The files are upper case; `case: lower`
//! (the default) lower-cases the text, because the models voxflow trains
//! read lower-case text (corpus.grammar writes only lower case, so its
//! tokenizers have no upper-case tokens); `case: keep` leaves it as written.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{StringArray, UInt32Array};
use serde::{Deserialize, Serialize};

use super::stimulus_table;
use crate::stage::{Kind, ParamError, StageContext, StageError};

/// Where scripts/setup-python.sh links the localizer (relative to the
/// pipeline file).
pub const DEFAULT_DIR: &str = "data/fedorenko2010_localization";
/// Words per item in the localizer.
pub const WORDS: usize = 12;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanglocParams {
    /// The directory of the CSV files, relative to the pipeline file.
    #[serde(default = "default_dir")]
    pub dir: String,
    #[serde(default)]
    pub case: Case,
    /// The runs to read (1 and 2 in the localizer), ascending.
    #[serde(default = "default_runs")]
    pub runs: Vec<u32>,
    /// The stimulus sets to read (1..5 in the localizer), ascending.
    #[serde(default = "default_sets")]
    pub sets: Vec<u32>,
}

/// The case of `text`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Case {
    #[default]
    Lower,
    Keep,
}

fn default_dir() -> String {
    DEFAULT_DIR.to_string()
}

fn default_runs() -> Vec<u32> {
    vec![1, 2]
}

fn default_sets() -> Vec<u32> {
    vec![1, 2, 3, 4, 5]
}

pub struct StimuliLangloc;

impl Kind for StimuliLangloc {
    type Params = LanglocParams;
    const NAME: &'static str = "stimuli.langloc";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "the Fedorenko 2010 language localizer (sentences vs non-word lists) from its CSV files";
    const OUTPUTS: &'static [&'static str] = &["stimuli"];

    fn file_params(&self, params: &LanglocParams) -> Vec<(String, String)> {
        vec![("dir".to_string(), params.dir.clone())]
    }

    fn missing_file_hint(&self, _param: &str) -> Option<&'static str> {
        Some(SETUP_HINT)
    }

    fn validate(&self, params: &LanglocParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        for (name, values) in [("runs", &params.runs), ("sets", &params.sets)] {
            if values.is_empty() {
                errors.push(ParamError::new(name, format!("give at least one of the localizer's {name}")));
            } else if values.windows(2).any(|w| w[0] >= w[1]) || values[0] == 0 {
                errors.push(
                    ParamError::new(name, format!("{name} must be distinct positive numbers in ascending order")).hint(
                        format!("e.g. `{name}: {:?}`", if name == "runs" { default_runs() } else { default_sets() }),
                    ),
                );
            }
        }
        errors
    }

    fn run(&self, params: &LanglocParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let dir = ctx.resolve(&params.dir);
        if !dir.is_dir() {
            return Err(missing_dir(&params.dir, &dir));
        }
        let mut rows = Vec::new();
        for &run in &params.runs {
            for &set in &params.sets {
                let name = format!("langloc_fmri_run{run}_stim_set{set}.csv");
                let path = dir.join(&name);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    StageError::failed(format!("param `dir`: cannot read {}: {e}", path.display())).with_hint(format!(
                        "the localizer has langloc_fmri_run{{1,2}}_stim_set{{1..5}}.csv; choose `runs` and `sets` that {} holds",
                        params.dir
                    ))
                })?;
                rows.extend(parse_file(&path, &name, &text)?);
            }
        }
        let text_of = |row: &Row| match params.case {
            Case::Lower => row.words.join(" ").to_lowercase(),
            Case::Keep => row.words.join(" "),
        };
        let texts: Vec<String> = rows.iter().map(text_of).collect();
        let labels: Vec<String> = rows.iter().map(|row| row.label.to_string()).collect();
        let files: Vec<&str> = rows.iter().map(|row| row.file.as_str()).collect();
        let indices: Vec<u32> = rows.iter().map(|row| row.index).collect();
        let table = stimulus_table(
            texts,
            labels,
            vec![("file", Arc::new(StringArray::from(files))), ("index", Arc::new(UInt32Array::from(indices)))],
        );
        ctx.write_table("stimuli", &table)
    }
}

/// One localizer item.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub file: String,
    pub index: u32,
    pub words: Vec<String>,
    /// `S` or `N`.
    pub label: char,
}

/// How to get the localizer files.
const SETUP_HINT: &str = "run scripts/setup-python.sh, which links the localizer as data/fedorenko2010_localization \
     in the repository (from a pipeline under pipelines/: `dir: ../data/fedorenko2010_localization`), \
     or point `dir` at a localizer in the same layout";

fn missing_dir(param: &str, resolved: &Path) -> StageError {
    StageError::failed(format!("param `dir`: {} ({param}) is not a directory", resolved.display()))
        .with_hint(SETUP_HINT)
}

/// The items of one localizer file; `path` names it in errors (with the line).
pub fn parse_file(path: &Path, name: &str, text: &str) -> Result<Vec<Row>, StageError> {
    let fail = |line: usize, message: String| {
        StageError::failed(format!("{}:{line}: {message}", path.display()))
            .with_hint("a localizer row is an index, 12 words and S (sentence) or N (non-words), separated by commas")
    };
    let mut lines = text.lines().enumerate().map(|(i, line)| (i + 1, line.trim_end_matches('\r')));
    let expected_header: Vec<String> = (1..=WORDS + 2).map(|k| format!("stim{k}")).collect();
    match lines.next() {
        Some((_, header)) if header.split(',').map(str::trim).eq(expected_header.iter().map(String::as_str)) => {}
        Some((line, header)) => {
            return Err(fail(line, format!("the header is `{header}`, expected `{}`", expected_header.join(","))))
        }
        None => return Err(fail(1, "the file is empty".into())),
    }
    let mut rows = Vec::new();
    for (line, content) in lines {
        if content.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = content.split(',').map(str::trim).collect();
        if fields.len() != WORDS + 2 {
            return Err(fail(line, format!("{} fields, expected {}: `{content}`", fields.len(), WORDS + 2)));
        }
        let index = fields[0]
            .parse::<u32>()
            .map_err(|_| fail(line, format!("the index `{}` is not a whole number", fields[0])))?;
        let words = &fields[1..=WORDS];
        if let Some(k) = words.iter().position(|w| w.is_empty()) {
            return Err(fail(line, format!("word {} is empty: `{content}`", k + 1)));
        }
        let label = match fields[WORDS + 1] {
            "S" => 'S',
            "N" => 'N',
            other => return Err(fail(line, format!("the label is `{other}`, expected S or N"))),
        };
        rows.push(Row { file: name.to_string(), index, words: words.iter().map(|w| w.to_string()).collect(), label });
    }
    if rows.is_empty() {
        return Err(fail(1, "the file has a header but no items".into()));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "stim1,stim2,stim3,stim4,stim5,stim6,stim7,stim8,stim9,stim10,stim11,stim12,stim13,stim14\n\
        1,A,B,C,D,E,F,G,H,I,J,K,L,S\r\n\
        1,POME,OY,REE,X,Y,Z,W,V,U,T,R,Q,N\n\n";

    #[test]
    fn rows_parse_and_bad_rows_name_file_line_and_value() {
        let path = Path::new("/x/set.csv");
        let rows = parse_file(path, "set.csv", GOOD).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].label, rows[1].label, rows[1].index), ('S', 'N', 1));
        assert_eq!(rows[0].words.join(" "), "A B C D E F G H I J K L");
        let cases = [
            (GOOD.replace(",S\r", ",X\r"), "/x/set.csv:2: the label is `X`, expected S or N"),
            (GOOD.replace("1,POME", "one,POME"), "/x/set.csv:3: the index `one` is not a whole number"),
            (GOOD.replace(",OY,", ","), "/x/set.csv:3: 13 fields, expected 14"),
            (GOOD.replace("stim14", "label"), "/x/set.csv:1: the header is"),
            (GOOD.replace(",REE,", ",,"), "/x/set.csv:3: word 3 is empty"),
        ];
        for (text, expected) in cases {
            let error = parse_file(path, "set.csv", &text).unwrap_err();
            assert!(error.to_string().starts_with(expected), "{error} / {expected}");
            assert!(error.hint().unwrap().contains("12 words"));
        }
    }
}
