//! `competence.facts` (functional competence): completions of a
//! `stimuli.facts` table (`item`, `source`, `suite`, `prompt`, `choices`
//! list<utf8>, `answer` int64, the index of the right choice), ranked by
//! the log-probability of each choice after the prompt. An item is correct
//! when the right choice's log-probability is strictly the largest.
//!
//! A choice is scored as lm-eval scores a continuation: the prompt and the
//! choice joined by one space are encoded whole, and the choice's tokens
//! are those after the prompt's own encoding (when the whole does not
//! start with the prompt's tokens, the prompt and " choice" are encoded
//! apart); its log-probability is the sum over its tokens, after the
//! prefix (`prefix: bos`) and the prompt.
//!
//! Length-normalised accuracy (lm-eval's `acc_norm`, for choices of unequal
//! length): the same ranking of each choice's log-probability divided by
//! the choice's length in characters (Unicode scalar values, as Python's
//! `len` of the choice string, without the joining space).
//!
//! `items` (items.parquet): `item` uint32, `source`, `suite`, `prompt`,
//! `answer`, `predicted` (utf8: the right choice and the top-ranked one),
//! `log_prob_answer`, `log_prob_best_other` (float64, natural log),
//! `rank` int64 (1 = first), `correct` bool, `predicted_norm` utf8 and
//! `correct_norm` bool (by log-probability per character). `accuracy` and
//! `summary` as in `crate::kinds::competence`, with `accuracy_norm`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, UInt32Array};

use super::{accuracy_table, summary_table, table, CompetenceParams, Outcome, Scorer, StimulusColumns};
use crate::device::Device;
use crate::stage::{Kind, ParamError, StageContext, StageError};

pub struct CompetenceFacts;

impl Kind for CompetenceFacts {
    type Params = CompetenceParams;
    const NAME: &'static str = "competence.facts";
    const VERSION: u32 = 2;
    const SUMMARY: &'static str =
        "functional competence: accuracy of a causal LM ranking the right completion first among candidates (libtorch)";
    const INPUTS: &'static [&'static str] = &["stimuli"];
    const OUTPUTS: &'static [&'static str] = &["accuracy", "items", "summary"];
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
        crate::worker::runtime(Self::NAME)?.competence_facts(params, ctx)
    }
}

const KIND: &str = "competence.facts";
const HINT: &str = "give the table of a stimuli.facts stage: item, source, suite, prompt, choices (a list of strings), answer (the index of the right choice)";

/// The whole scoring, given the loaded model.
pub fn score(scorer: &dyn Scorer, ctx: &mut StageContext) -> Result<(), StageError> {
    let stage = ctx.input("stimuli")?.stage.clone();
    let batch = ctx.input_table("stimuli")?;
    let columns = StimulusColumns { table: &batch, stage: &stage, kind: KIND, hint: HINT };
    let items = columns.u32s("item")?;
    let sources = columns.strings("source")?;
    let suites = columns.strings("suite")?;
    let prompts = columns.strings("prompt")?;
    let choices = columns.string_lists("choices")?;
    let answers = columns.i64s("answer")?;
    if items.is_empty() {
        return Err(columns.fail("no rows".into()));
    }
    let prefix = scorer.prefix();
    // One sequence per (item, choice): prefix + prompt + choice; `starts`
    // is where the choice's tokens begin.
    let mut sequences = Vec::new();
    let mut spans = Vec::new();
    for row in 0..items.len() {
        let answer = answers[row];
        if answer < 0 || answer as usize >= choices[row].len() {
            return Err(columns.fail(format!(
                "item {}: answer {answer} is not an index into its {} choices",
                items[row],
                choices[row].len()
            )));
        }
        let encode = |text: &str| -> Result<Vec<i64>, StageError> {
            Ok(scorer
                .encode(text)
                .map_err(|e| StageError::failed(format!("{KIND}: item {}: cannot tokenise {text:?}: {e}", items[row])))?
                .into_iter()
                .map(|(id, _)| id)
                .collect())
        };
        let context = encode(&prompts[row])?;
        for choice in &choices[row] {
            let whole = encode(&format!("{} {choice}", prompts[row]))?;
            let continuation = if whole.len() > context.len() && whole.starts_with(&context) {
                whole[context.len()..].to_vec()
            } else {
                encode(&format!(" {choice}"))?
            };
            if continuation.is_empty() {
                return Err(columns.fail(format!("item {}: the choice {choice:?} has no tokens", items[row])));
            }
            let mut sequence: Vec<i64> = prefix.iter().map(|(id, _)| *id).collect();
            sequence.extend(&context);
            let start = sequence.len();
            sequence.extend(&continuation);
            if start == 0 {
                return Err(columns
                    .fail(format!("item {}: the prompt is empty and there is no prefix", items[row]))
                    .with_hint("give a prompt, or use `prefix: bos`"));
            }
            spans.push(start);
            sequences.push(sequence);
        }
    }
    ctx.phase("scoring");
    ctx.progress_unit("texts");
    let log_probs = scorer
        .log_probs(&sequences, &mut |done, total| ctx.progress(done as u64, total as u64))
        .map_err(StageError::failed)?;
    // log_probs[s][t] is token t + 1's.
    let totals: Vec<f64> = log_probs.iter().zip(&spans).map(|(lp, &start)| lp[start - 1..].iter().sum()).collect();
    let mut next = 0;
    let mut outcomes = Vec::with_capacity(items.len());
    let (mut answer_texts, mut predicted, mut lp_answer, mut lp_other, mut ranks, mut correct) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut predicted_norm, mut correct_norm) = (vec![], vec![]);
    for row in 0..items.len() {
        let n = choices[row].len();
        let values = &totals[next..next + n];
        next += n;
        let answer = answers[row] as usize;
        let best = (0..n).fold(0, |best, c| if values[c] > values[best] { c } else { best });
        let other = (0..n).filter(|&c| c != answer).map(|c| values[c]).fold(f64::NEG_INFINITY, f64::max);
        let rank = 1 + (0..n).filter(|&c| c != answer && values[c] >= values[answer]).count() as i64;
        let ok = values[answer] > other;
        let normed: Vec<f64> = (0..n).map(|c| values[c] / choices[row][c].chars().count().max(1) as f64).collect();
        let best_norm = (0..n).fold(0, |best, c| if normed[c] > normed[best] { c } else { best });
        let ok_norm = (0..n).all(|c| c == answer || normed[answer] > normed[c]);
        answer_texts.push(choices[row][answer].clone());
        predicted.push(choices[row][best].clone());
        lp_answer.push(values[answer]);
        lp_other.push(other);
        ranks.push(rank);
        correct.push(ok);
        predicted_norm.push(choices[row][best_norm].clone());
        correct_norm.push(ok_norm);
        outcomes.push(Outcome {
            source: sources[row].clone(),
            suite: suites[row].clone(),
            correct: ok,
            correct_norm: Some(ok_norm),
        });
    }
    let items_table = table(vec![
        ("item", Arc::new(UInt32Array::from(items)) as ArrayRef),
        ("source", Arc::new(StringArray::from(sources))),
        ("suite", Arc::new(StringArray::from(suites))),
        ("prompt", Arc::new(StringArray::from(prompts))),
        ("answer", Arc::new(StringArray::from(answer_texts))),
        ("predicted", Arc::new(StringArray::from(predicted))),
        ("log_prob_answer", Arc::new(Float64Array::from(lp_answer))),
        ("log_prob_best_other", Arc::new(Float64Array::from(lp_other))),
        ("rank", Arc::new(Int64Array::from(ranks))),
        ("correct", Arc::new(BooleanArray::from(correct))),
        ("predicted_norm", Arc::new(StringArray::from(predicted_norm))),
        ("correct_norm", Arc::new(BooleanArray::from(correct_norm))),
    ]);
    let prefix_text = prefix.map(|(_, text)| text);
    ctx.write_table("accuracy", &accuracy_table(&outcomes))?;
    ctx.write_table("items", &items_table)?;
    ctx.write_table("summary", &summary_table(&outcomes, prefix_text.as_deref()))
}
