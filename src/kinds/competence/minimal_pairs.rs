//! `competence.minimal_pairs` (formal competence): a causal language
//! model's preferences on a stimulus table of `stimuli.minimal_pairs` or
//! `stimuli.syntaxgym` (told apart by their columns).
//!
//! Minimal pairs: an item is correct when the good sentence's total
//! log-probability is strictly greater than the bad one's (a tie counts as
//! wrong). `items` (items.parquet): `item` uint32, `source`, `suite`,
//! `good`, `bad` (utf8), `log_prob_good`, `log_prob_bad` (float64, natural
//! log), `tokens_good`, `tokens_bad` (int64), `correct` (bool).
//!
//! SyntaxGym: each condition's regions become one sentence
//! (`crate::lm::syntaxgym::assemble`), its tokens are assigned to regions,
//! a region's value is the suite's metric over its tokens' surprisals in
//! bits (a first token without a prefix has none and adds nothing), and an
//! item is correct when every prediction of its suite holds. `items`:
//! `item` uint32, `source`, `suite` (utf8), `item_number` int64,
//! `predictions` int64, `held` int64 (how many hold), `correct` (bool).
//!
//! Both also write `tokens` (tokens.parquet): one row per token of every
//! scored sentence: `item` uint32, `text` utf8 (`good`, `bad`, or the
//! SyntaxGym condition), `region` int64 (the SyntaxGym region number; null
//! for pairs), `position` int64 (0-based, after the prefix), `token_id`
//! int64, `token` utf8, `surprisal` float64 (bits: -log2 p; NaN for a
//! first token without a prefix). And `accuracy` and `summary`
//! (`crate::kinds::competence`).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, UInt32Array};

use super::{accuracy_table, score_texts, summary_table, table, CompetenceParams, Outcome, Scorer, StimulusColumns};
use crate::device::Device;
use crate::lm::syntaxgym::{assemble, assign_tokens, Formula, Metric, RegionValues};
use crate::stage::{Kind, ParamError, StageContext, StageError};

pub struct CompetenceMinimalPairs;

impl Kind for CompetenceMinimalPairs {
    type Params = CompetenceParams;
    const NAME: &'static str = "competence.minimal_pairs";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "formal competence: minimal-pair or SyntaxGym accuracy of a causal LM by log-probabilities (libtorch)";
    const INPUTS: &'static [&'static str] = &["stimuli"];
    const OUTPUTS: &'static [&'static str] = &["accuracy", "items", "tokens", "summary"];
    const FILE_INPUTS: &'static [&'static str] = &["model"];

    fn input_problems(&self, params: &CompetenceParams, roles: &[&str]) -> Vec<(String, String)> {
        super::model_problems(Self::NAME, params, roles)
    }
    fn file_params(&self, params: &CompetenceParams) -> Vec<(String, String)> {
        params.model.iter().map(|model| ("model".to_string(), model.clone())).collect()
    }
    fn wants_gpu(&self, params: &CompetenceParams) -> bool {
        params.device.wants_gpu()
    }
    fn in_worker(&self, _params: &CompetenceParams, _assigned: Device) -> bool {
        true
    }
    fn validate(&self, params: &CompetenceParams) -> Vec<ParamError> {
        super::validate(params)
    }
    fn run(&self, params: &CompetenceParams, ctx: &mut StageContext) -> Result<(), StageError> {
        crate::worker::runtime(Self::NAME)?.competence_minimal_pairs(params, ctx)
    }
}

const KIND: &str = "competence.minimal_pairs";
const HINT: &str = "give the table of a stimuli.minimal_pairs stage (item, source, suite, good, bad) or of a \
                    stimuli.syntaxgym stage (item, source, suite, item_number, condition, regions, predictions, metric)";

/// The whole scoring, given the loaded model: reads `stimuli`, writes the outputs.
pub fn score(scorer: &dyn Scorer, ctx: &mut StageContext) -> Result<(), StageError> {
    let stage = ctx.input("stimuli")?.stage.clone();
    let batch = ctx.input_table("stimuli")?;
    let columns = StimulusColumns { table: &batch, stage: &stage, kind: KIND, hint: HINT };
    if columns.has("good") && columns.has("bad") {
        score_pairs(scorer, &columns, ctx)
    } else if columns.has("regions") && columns.has("predictions") {
        score_syntaxgym(scorer, &columns, ctx)
    } else {
        Err(StageError::failed(format!(
            "{KIND}: the stimuli of `{stage}` are neither minimal pairs (columns good, bad) nor SyntaxGym items (columns regions, predictions); it has {}",
            columns.names()
        ))
        .with_hint(HINT))
    }
}

/// Rows of the tokens table.
#[derive(Default)]
struct TokenRows {
    item: Vec<u32>,
    text: Vec<String>,
    region: Vec<Option<i64>>,
    position: Vec<i64>,
    token_id: Vec<i64>,
    token: Vec<String>,
    surprisal: Vec<f64>,
}

impl TokenRows {
    fn push(
        &mut self,
        scorer: &dyn Scorer,
        item: u32,
        text: &str,
        regions: &[Option<i64>],
        scored: &super::ScoredText,
    ) {
        for (k, (&id, &lp)) in scored.ids.iter().zip(&scored.log_probs).enumerate() {
            self.item.push(item);
            self.text.push(text.to_string());
            self.region.push(regions.get(k).copied().flatten());
            self.position.push(k as i64);
            self.token_id.push(id);
            self.token.push(scorer.token_text(id));
            self.surprisal.push(-lp / std::f64::consts::LN_2);
        }
    }

    fn batch(self) -> arrow::array::RecordBatch {
        table(vec![
            ("item", Arc::new(UInt32Array::from(self.item)) as ArrayRef),
            ("text", Arc::new(StringArray::from(self.text))),
            ("region", Arc::new(Int64Array::from(self.region))),
            ("position", Arc::new(Int64Array::from(self.position))),
            ("token_id", Arc::new(Int64Array::from(self.token_id))),
            ("token", Arc::new(StringArray::from(self.token))),
            ("surprisal", Arc::new(Float64Array::from(self.surprisal))),
        ])
    }
}

fn score_pairs(scorer: &dyn Scorer, columns: &StimulusColumns, ctx: &mut StageContext) -> Result<(), StageError> {
    let items = columns.u32s("item")?;
    let sources = columns.strings("source")?;
    let suites = columns.strings("suite")?;
    let good = columns.strings("good")?;
    let bad = columns.strings("bad")?;
    if items.is_empty() {
        return Err(columns.fail("no rows".into()));
    }
    let texts: Vec<String> = good.iter().zip(&bad).flat_map(|(g, b)| [g.clone(), b.clone()]).collect();
    let what = |k: usize| format!("{KIND}: item {} ({})", items[k / 2], if k % 2 == 0 { "good" } else { "bad" });
    ctx.phase("scoring");
    let scored = score_texts(scorer, &texts, &what, ctx)?;
    let mut tokens = TokenRows::default();
    let mut outcomes = Vec::with_capacity(items.len());
    let (mut lp_good, mut lp_bad, mut n_good, mut n_bad, mut correct) = (vec![], vec![], vec![], vec![], vec![]);
    for (row, pair) in scored.chunks(2).enumerate() {
        let (g, b) = (pair[0].total(), pair[1].total());
        let ok = g > b;
        tokens.push(scorer, items[row], "good", &[], &pair[0]);
        tokens.push(scorer, items[row], "bad", &[], &pair[1]);
        lp_good.push(g);
        lp_bad.push(b);
        n_good.push(pair[0].ids.len() as i64);
        n_bad.push(pair[1].ids.len() as i64);
        correct.push(ok);
        outcomes.push(Outcome {
            source: sources[row].clone(),
            suite: suites[row].clone(),
            correct: ok,
            correct_norm: None,
        });
    }
    let items_table = table(vec![
        ("item", Arc::new(UInt32Array::from(items)) as ArrayRef),
        ("source", Arc::new(StringArray::from(sources))),
        ("suite", Arc::new(StringArray::from(suites))),
        ("good", Arc::new(StringArray::from(good))),
        ("bad", Arc::new(StringArray::from(bad))),
        ("log_prob_good", Arc::new(Float64Array::from(lp_good))),
        ("log_prob_bad", Arc::new(Float64Array::from(lp_bad))),
        ("tokens_good", Arc::new(Int64Array::from(n_good))),
        ("tokens_bad", Arc::new(Int64Array::from(n_bad))),
        ("correct", Arc::new(BooleanArray::from(correct))),
    ]);
    write_outputs(scorer, ctx, &outcomes, items_table, tokens.batch())
}

fn write_outputs(
    scorer: &dyn Scorer,
    ctx: &mut StageContext,
    outcomes: &[Outcome],
    items: arrow::array::RecordBatch,
    tokens: arrow::array::RecordBatch,
) -> Result<(), StageError> {
    let prefix = scorer.prefix().map(|(_, text)| text);
    ctx.write_table("accuracy", &accuracy_table(outcomes))?;
    ctx.write_table("items", &items)?;
    ctx.write_table("tokens", &tokens)?;
    ctx.write_table("summary", &summary_table(outcomes, prefix.as_deref()))
}

/// One SyntaxGym item: its conditions' regions.
struct SgItem {
    item: u32,
    source: String,
    suite: String,
    item_number: i64,
    conditions: Vec<(String, Vec<String>)>,
    predictions: Vec<String>,
    metric: String,
}

fn score_syntaxgym(scorer: &dyn Scorer, columns: &StimulusColumns, ctx: &mut StageContext) -> Result<(), StageError> {
    let items = columns.u32s("item")?;
    let sources = columns.strings("source")?;
    let suites = columns.strings("suite")?;
    let numbers = columns.i64s("item_number")?;
    let conditions = columns.strings("condition")?;
    let regions = columns.string_lists("regions")?;
    let predictions = columns.string_lists("predictions")?;
    let metrics = columns.strings("metric")?;
    if items.is_empty() {
        return Err(columns.fail("no rows".into()));
    }
    // Rows of one item are consecutive (stimuli.syntaxgym writes them so).
    let mut grouped: Vec<SgItem> = Vec::new();
    for row in 0..items.len() {
        let same = grouped.last().is_some_and(|g| g.item == items[row]);
        if !same {
            if grouped.iter().any(|g| g.item == items[row]) {
                return Err(columns.fail(format!("the rows of item {} are not consecutive", items[row])));
            }
            grouped.push(SgItem {
                item: items[row],
                source: sources[row].clone(),
                suite: suites[row].clone(),
                item_number: numbers[row],
                conditions: Vec::new(),
                predictions: predictions[row].clone(),
                metric: metrics[row].clone(),
            });
        }
        grouped.last_mut().expect("pushed").conditions.push((conditions[row].clone(), regions[row].clone()));
    }
    // Every condition's sentence, scored once.
    let mut texts = Vec::new();
    let mut spans = Vec::new();
    let mut names = Vec::new();
    for g in &grouped {
        for (condition, regions) in &g.conditions {
            let (text, span) = assemble(regions);
            texts.push(text);
            spans.push(span);
            names.push(format!("{KIND}: suite `{}` item {} condition `{condition}`", g.suite, g.item_number));
        }
    }
    ctx.phase("scoring");
    let scored = score_texts(scorer, &texts, &|k| names[k].clone(), ctx)?;
    let mut tokens = TokenRows::default();
    let mut outcomes = Vec::with_capacity(grouped.len());
    let (mut counts, mut held_counts, mut correct) = (vec![], vec![], vec![]);
    let mut k = 0;
    for g in &grouped {
        let metric = Metric::parse(&g.metric).ok_or_else(|| {
            columns.fail(format!(
                "suite `{}`: metric `{}` is not one of {}",
                g.suite,
                g.metric,
                Metric::NAMES.join(", ")
            ))
        })?;
        let mut values = RegionValues::new();
        for (condition, regions) in &g.conditions {
            let s = &scored[k];
            let assigned = assign_tokens(&texts[k], &spans[k], &s.offsets);
            let numbers: Vec<Option<i64>> = assigned.iter().map(|r| r.map(|r| r as i64 + 1)).collect();
            tokens.push(scorer, g.item, condition, &numbers, s);
            for r in 0..regions.len() {
                let surprisals: Vec<f64> = assigned
                    .iter()
                    .zip(&s.log_probs)
                    .filter(|(a, lp)| **a == Some(r) && !lp.is_nan())
                    .map(|(_, lp)| -lp / std::f64::consts::LN_2)
                    .collect();
                values.insert((condition.clone(), r as i64 + 1), metric.apply(&surprisals));
            }
            k += 1;
        }
        let mut held = 0;
        for text in &g.predictions {
            let formula = Formula::parse(text)
                .map_err(|e| columns.fail(format!("suite `{}`: prediction `{text}`: {e}", g.suite)))?;
            let holds = formula.eval(&values).map_err(|e| {
                columns.fail(format!("suite `{}` item {}: prediction `{text}`: {e}", g.suite, g.item_number))
            })?;
            held += i64::from(holds);
        }
        let ok = held == g.predictions.len() as i64;
        counts.push(g.predictions.len() as i64);
        held_counts.push(held);
        correct.push(ok);
        outcomes.push(Outcome { source: g.source.clone(), suite: g.suite.clone(), correct: ok, correct_norm: None });
    }
    let items_table = table(vec![
        ("item", Arc::new(UInt32Array::from_iter_values(grouped.iter().map(|g| g.item))) as ArrayRef),
        ("source", Arc::new(StringArray::from_iter_values(grouped.iter().map(|g| g.source.as_str())))),
        ("suite", Arc::new(StringArray::from_iter_values(grouped.iter().map(|g| g.suite.as_str())))),
        ("item_number", Arc::new(Int64Array::from_iter_values(grouped.iter().map(|g| g.item_number)))),
        ("predictions", Arc::new(Int64Array::from(counts))),
        ("held", Arc::new(Int64Array::from(held_counts))),
        ("correct", Arc::new(BooleanArray::from(correct))),
    ]);
    write_outputs(scorer, ctx, &outcomes, items_table, tokens.batch())
}
