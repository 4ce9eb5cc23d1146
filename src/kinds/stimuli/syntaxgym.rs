//! `stimuli.syntaxgym`: SyntaxGym test suites (JSON, the layout of
//! cpllab/syntaxgym-core) for `competence.minimal_pairs`: by default the 31
//! SyntaxGym 2020 suites that ship in the brainscore-language 2.3.0 wheel,
//! which scripts/setup-python.sh links as `data/syntaxgym-2020` (from a
//! pipeline under pipelines/: `dir: ../data/syntaxgym-2020`); any
//! directory of suite files works (a user's own suite: put it in one).
//! `suites` picks files by name (without `.json`); default every `*.json`
//! in `dir`, in name order. The directory is hashed by content.
//!
//! Every suite is checked here, before any model runs: the JSON (errors
//! name file, line and column), each prediction's formula
//! (`crate::lm::syntaxgym`; errors name the suite, the formula and the
//! character), its metric, and that every item has the conditions and
//! regions the formulas read.
//!
//! Region text: `case: lower` (the default) lower-cases it, because the
//! models voxflow trains read lower-case text (as stimuli.langloc);
//! `case: keep` leaves it as written (for pretrained models).
//!
//! Output `stimuli` (stimuli.parquet), one row per (suite, item,
//! condition), an item's conditions consecutive: `item` uint32 (the item's
//! index over all suites, 0..n), `source` (`syntaxgym`), `suite` (the file
//! name without `.json`), `item_number` int64 (the suite's), `condition`
//! utf8, `regions` list<utf8> (the contents, region number i + 1 at i),
//! `predictions` list<utf8> (the suite's formulas), `metric` utf8.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray, UInt32Array};
use serde::{Deserialize, Serialize};

use super::langloc::Case;
use crate::kinds::competence::{string_list_column, table};
use crate::lm::syntaxgym::{Formula, Metric, SuiteFile};
use crate::stage::{Kind, ParamError, StageContext, StageError};

/// Where scripts/setup-python.sh links the suites (relative to the pipeline file).
pub const DEFAULT_DIR: &str = "data/syntaxgym-2020";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntaxGymParams {
    #[serde(default = "default_dir")]
    pub dir: String,
    /// Suite names (files without `.json`); default all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suites: Option<Vec<String>>,
    #[serde(default)]
    pub case: Case,
}

fn default_dir() -> String {
    DEFAULT_DIR.to_string()
}

const SETUP_HINT: &str = "run scripts/setup-python.sh, which links the SyntaxGym 2020 suites of brainscore-language \
     as data/syntaxgym-2020 in the repository (from a pipeline under pipelines/: `dir: ../data/syntaxgym-2020`), \
     or point `dir` at a directory of suite .json files";

pub struct StimuliSyntaxGym;

impl Kind for StimuliSyntaxGym {
    type Params = SyntaxGymParams;
    const NAME: &'static str = "stimuli.syntaxgym";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "SyntaxGym test suites (regions, conditions, prediction formulas), checked, for competence.minimal_pairs";
    const OUTPUTS: &'static [&'static str] = &["stimuli"];

    fn file_params(&self, params: &SyntaxGymParams) -> Vec<(String, String)> {
        vec![("dir".to_string(), params.dir.clone())]
    }

    fn missing_file_hint(&self, _param: &str) -> Option<&'static str> {
        Some(SETUP_HINT)
    }

    fn validate(&self, params: &SyntaxGymParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if let Some(suites) = &params.suites {
            if suites.is_empty() {
                errors
                    .push(ParamError::new("suites", "`suites` is empty").hint("leave it out for every suite in `dir`"));
            }
            if let Some(bad) = suites.iter().find(|s| s.is_empty() || s.contains('/') || s.ends_with(".json")) {
                errors.push(
                    ParamError::new("suites", format!("`{bad}` is not a suite name"))
                        .hint("name suites by file name without `.json`, e.g. `number_prep`"),
                );
            }
        }
        errors
    }

    fn run(&self, params: &SyntaxGymParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let dir = ctx.resolve(&params.dir);
        if !dir.is_dir() {
            return Err(StageError::failed(format!(
                "param `dir`: {} ({}) is not a directory",
                dir.display(),
                params.dir
            ))
            .with_hint(SETUP_HINT));
        }
        let files = suite_files(&dir, &params.dir, params.suites.as_deref())?;
        let mut rows = Rows::default();
        let mut item = 0u32;
        for (name, path) in files {
            let suite = read_suite(&path, &name)?;
            for it in &suite.items {
                for (condition, regions) in &it.conditions {
                    rows.item.push(item);
                    rows.suite.push(name.clone());
                    rows.item_number.push(it.item_number);
                    rows.condition.push(condition.clone());
                    rows.regions.push(
                        regions
                            .iter()
                            .map(|r| match params.case {
                                Case::Lower => r.to_lowercase(),
                                Case::Keep => r.clone(),
                            })
                            .collect(),
                    );
                    rows.predictions.push(suite.formulas.clone());
                    rows.metric.push(suite.metric.clone());
                }
                item += 1;
            }
        }
        let n = rows.item.len();
        let batch = table(vec![
            ("item", Arc::new(UInt32Array::from(rows.item)) as ArrayRef),
            ("source", Arc::new(StringArray::from(vec!["syntaxgym"; n]))),
            ("suite", Arc::new(StringArray::from(rows.suite))),
            ("item_number", Arc::new(Int64Array::from(rows.item_number))),
            ("condition", Arc::new(StringArray::from(rows.condition))),
            ("regions", string_list_column(&rows.regions)),
            ("predictions", string_list_column(&rows.predictions)),
            ("metric", Arc::new(StringArray::from(rows.metric))),
        ]);
        ctx.write_table("stimuli", &batch)
    }
}

#[derive(Default)]
struct Rows {
    item: Vec<u32>,
    suite: Vec<String>,
    item_number: Vec<i64>,
    condition: Vec<String>,
    regions: Vec<Vec<String>>,
    predictions: Vec<Vec<String>>,
    metric: Vec<String>,
}

/// The suite files to read: (name, path), in name order.
fn suite_files(dir: &Path, param: &str, suites: Option<&[String]>) -> Result<Vec<(String, PathBuf)>, StageError> {
    let mut available: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| StageError::failed(format!("param `dir` ({param}): cannot read {}: {e}", dir.display())))?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_string))
        .collect();
    available.sort();
    let chosen: Vec<String> = match suites {
        None => available.clone(),
        Some(suites) => {
            for suite in suites {
                if !available.contains(suite) {
                    let hint = match crate::spec::nearest(suite, available.iter().map(String::as_str)) {
                        Some(near) => format!("did you mean `{near}`? {} has {} suites", param, available.len()),
                        None => format!("{param} has: {}", available.join(", ")),
                    };
                    return Err(StageError::failed(format!(
                        "param `suites`: no suite `{suite}` ({}.json) in {}",
                        suite,
                        dir.display()
                    ))
                    .with_hint(hint));
                }
            }
            suites.to_vec()
        }
    };
    if chosen.is_empty() {
        return Err(StageError::failed(format!("param `dir` ({param}): {} has no .json suites", dir.display()))
            .with_hint(SETUP_HINT));
    }
    Ok(chosen.into_iter().map(|name| (name.clone(), dir.join(format!("{name}.json")))).collect())
}

/// A checked suite: items as (condition, region contents), the formulas
/// as written, the metric.
#[derive(Debug, Clone)]
pub struct CheckedSuite {
    pub items: Vec<CheckedItem>,
    pub formulas: Vec<String>,
    pub metric: String,
}

#[derive(Debug, Clone)]
pub struct CheckedItem {
    pub item_number: i64,
    pub conditions: Vec<(String, Vec<String>)>,
}

/// Reads and checks one suite file.
pub fn read_suite(path: &Path, name: &str) -> Result<CheckedSuite, StageError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| StageError::failed(format!("suite `{name}`: cannot read {}: {e}", path.display())))?;
    check_suite(path, name, &text)
}

const SUITE_HINT: &str = "a SyntaxGym suite has `meta` (with `metric`), `region_meta`, `predictions` \
     ([{\"type\": \"formula\", \"formula\": ...}]) and `items` (item_number, conditions: condition_name, regions: region_number, content)";

/// Checks a suite's text: JSON, formulas, metric, conditions and regions.
pub fn check_suite(path: &Path, name: &str, text: &str) -> Result<CheckedSuite, StageError> {
    let fail = |message: String| StageError::failed(format!("suite `{name}` ({}): {message}", path.display()));
    let suite: SuiteFile = serde_json::from_str(text).map_err(|e| {
        StageError::failed(format!("{}:{}:{}: suite `{name}`: {e}", path.display(), e.line(), e.column()))
            .with_hint(SUITE_HINT)
    })?;
    let metric = suite.meta.metric.clone().unwrap_or_else(|| "sum".to_string());
    if Metric::parse(&metric).is_none() {
        return Err(fail(format!("meta.metric `{metric}` is not one of {}", Metric::NAMES.join(", "))));
    }
    if suite.predictions.is_empty() {
        return Err(fail("no predictions".into()).with_hint(SUITE_HINT));
    }
    if suite.items.is_empty() {
        return Err(fail("no items".into()).with_hint(SUITE_HINT));
    }
    let mut formulas = Vec::new();
    let mut parsed = Vec::new();
    for (k, prediction) in suite.predictions.iter().enumerate() {
        if prediction.kind != "formula" {
            return Err(fail(format!(
                "prediction {k} has type `{}`; only `formula` predictions exist",
                prediction.kind
            )));
        }
        let formula = Formula::parse(&prediction.formula).map_err(|e| {
            fail(format!("prediction {k} `{}`: {e}", prediction.formula))
                .with_hint("a formula compares regions `(N;%condition%)` with < > =, joined by & and |; + - and numbers combine regions")
        })?;
        formulas.push(prediction.formula.clone());
        parsed.push(formula);
    }
    let mut items = Vec::with_capacity(suite.items.len());
    for item in &suite.items {
        let mut conditions = Vec::new();
        for condition in &item.conditions {
            let mut regions: Vec<(i64, String)> =
                condition.regions.iter().map(|r| (r.region_number, r.content.clone())).collect();
            regions.sort_by_key(|r| r.0);
            if regions.iter().enumerate().any(|(i, r)| r.0 != i as i64 + 1) {
                let numbers: Vec<i64> = regions.iter().map(|r| r.0).collect();
                return Err(fail(format!(
                    "item {} condition `{}`: region numbers {numbers:?} are not 1..{}",
                    item.item_number,
                    condition.condition_name,
                    regions.len()
                )));
            }
            conditions.push((condition.condition_name.clone(), regions.into_iter().map(|r| r.1).collect::<Vec<_>>()));
        }
        for (formula, text) in parsed.iter().zip(&formulas) {
            for region in formula.regions() {
                let Some((_, regions)) = conditions.iter().find(|(c, _)| *c == region.condition) else {
                    let names: Vec<&str> = conditions.iter().map(|(c, _)| c.as_str()).collect();
                    return Err(fail(format!(
                        "prediction `{text}` reads condition `{}`, which item {} does not have (it has {})",
                        region.condition,
                        item.item_number,
                        names.join(", ")
                    )));
                };
                if let Some(n) = region.region {
                    if n < 1 || n as usize > regions.len() {
                        return Err(fail(format!(
                            "prediction `{text}` reads region {n} of `{}`, which has regions 1..{} in item {}",
                            region.condition,
                            regions.len(),
                            item.item_number
                        )));
                    }
                }
            }
        }
        items.push(CheckedItem { item_number: item.item_number, conditions });
    }
    Ok(CheckedSuite { items, formulas, metric })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: &str = r#"{
  "meta": {"name": "number_prep", "metric": "sum"},
  "region_meta": {"1": "np", "2": "verb"},
  "predictions": [{"type": "formula", "formula": "(2;%match%) < (2;%mismatch%)"}],
  "items": [{"item_number": 1, "conditions": [
    {"condition_name": "match", "regions": [{"region_number": 1, "content": "The dog"}, {"region_number": 2, "content": "runs"}]},
    {"condition_name": "mismatch", "regions": [{"region_number": 2, "content": "run"}, {"region_number": 1, "content": "The dog"}]}
  ]}]
}"#;

    #[test]
    fn suites_are_checked_and_errors_name_suite_and_formula() {
        let path = Path::new("/s/number_prep.json");
        let suite = check_suite(path, "number_prep", SUITE).unwrap();
        assert_eq!(
            suite.items[0].conditions[1],
            ("mismatch".to_string(), vec!["The dog".to_string(), "run".to_string()])
        );
        let cases = [
            (
                SUITE.replace("< (2;%mismatch%)", "< (2;%mismatch%) <"),
                "suite `number_prep` (/s/number_prep.json): prediction 0 `(2;%match%) < (2;%mismatch%) <`: ",
            ),
            (
                SUITE.replace("(2;%mismatch%)", "(3;%mismatch%)"),
                "reads region 3 of `mismatch`, which has regions 1..2 in item 1",
            ),
            (
                SUITE.replace("(2;%mismatch%)", "(2;%mis%)"),
                "reads condition `mis`, which item 1 does not have (it has match, mismatch)",
            ),
            (SUITE.replace("\"sum\"", "\"total\""), "meta.metric `total` is not one of sum, mean"),
            (SUITE.replace("\"items\"", "\"itemz\""), "/s/number_prep.json:"),
        ];
        for (text, expected) in cases {
            let error = check_suite(path, "number_prep", &text).unwrap_err();
            assert!(error.to_string().contains(expected), "{error} / {expected}");
        }
    }

    /// Every formula of every suite that brainscore-language ships parses
    /// and fits its items (31 suites, in the brainscore-language wheel that
    /// scripts/setup-python.sh installs; the test fails without it).
    #[test]
    fn every_shipped_suite_parses() {
        let venv = std::env::var_os("VOXFLOW_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cache/voxflow-venv"));
        let lib = venv.join("lib");
        let python = std::fs::read_dir(&lib)
            .unwrap_or_else(|e| panic!("{}: {e}: run scripts/setup-python.sh", lib.display()))
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with("python3"))
            .expect("a python3.* directory in the venv")
            .path();
        let dir = python.join("site-packages/brainscore_language/benchmarks/syntaxgym/suites/syntaxgym-2020");
        let files = suite_files(&dir, "dir", None).unwrap();
        assert_eq!(files.len(), 31, "{}", dir.display());
        let (mut formulas, mut items) = (0, 0);
        for (name, path) in files {
            let suite = read_suite(&path, &name).unwrap_or_else(|e| panic!("{e}"));
            formulas += suite.formulas.len();
            items += suite.items.len();
        }
        assert!(formulas >= 31 && items > 700, "{formulas} formulas, {items} items");
    }
}
