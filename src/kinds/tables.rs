//! The tables the encoding-model stages pass between them, and their Arrow
//! schemas: word timings (`story, word, onset, offset`) and TR grids
//! (`story, tr, time, tr_seconds`). Stories keep their order of first
//! appearance; rows within a story keep file order.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Schema};

use crate::artifact::Segment;
use crate::formats::words::Word;
use crate::stage::StageError;

/// Which time stands for a word (`word_time`): its midpoint, onset or offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WordTime {
    #[default]
    Midpoint,
    Onset,
    Offset,
}

impl WordTime {
    pub fn of(self, word: &Word) -> f64 {
        match self {
            WordTime::Midpoint => 0.5 * (word.onset + word.offset),
            WordTime::Onset => word.onset,
            WordTime::Offset => word.offset,
        }
    }
}

/// The words of one story, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct StoryWords {
    pub story: String,
    pub words: Vec<Word>,
}

/// The TR times of one story (seconds, relative to the stimulus onset).
#[derive(Debug, Clone, PartialEq)]
pub struct StoryTrs {
    pub story: String,
    pub times: Vec<f64>,
}

/// A TR grid for several stories with one repetition time.
#[derive(Debug, Clone, PartialEq)]
pub struct TrGrid {
    pub tr_seconds: f64,
    pub stories: Vec<StoryTrs>,
}

impl TrGrid {
    pub fn story(&self, name: &str) -> Option<&StoryTrs> {
        self.stories.iter().find(|s| s.story == name)
    }
}

pub fn words_to_batch(stories: &[StoryWords]) -> RecordBatch {
    let mut story = Vec::new();
    let mut word = Vec::new();
    let mut onset = Vec::new();
    let mut offset = Vec::new();
    for s in stories {
        for w in &s.words {
            story.push(s.story.clone());
            word.push(w.word.clone());
            onset.push(w.onset);
            offset.push(w.offset);
        }
    }
    let schema = Schema::new(vec![
        Field::new("story", DataType::Utf8, false),
        Field::new("word", DataType::Utf8, false),
        Field::new("onset", DataType::Float64, false),
        Field::new("offset", DataType::Float64, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(story)),
        Arc::new(StringArray::from(word)),
        Arc::new(Float64Array::from(onset)),
        Arc::new(Float64Array::from(offset)),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).expect("word table schema")
}

/// The column `name` as text: Utf8 as it is; LargeUtf8 (polars' strings,
/// pandas' pyarrow strings), string views, dictionaries and numbers (story
/// ids such as 1, 2, 3) converted to Utf8.
pub fn text_column(batch: &RecordBatch, name: &str, what: &str) -> Result<StringArray, StageError> {
    let column =
        batch.column_by_name(name).ok_or_else(|| StageError::failed(format!("{what} has no column `{name}`")))?;
    let cast = arrow::compute::cast(column, &DataType::Utf8)
        .map_err(|_| StageError::failed(format!("{what}: column `{name}` is {}, not text", column.data_type())))?;
    Ok(cast.as_string::<i32>().clone())
}

fn float_column(batch: &RecordBatch, name: &str, what: &str) -> Result<Float64Array, StageError> {
    let column =
        batch.column_by_name(name).ok_or_else(|| StageError::failed(format!("{what} has no column `{name}`")))?;
    let cast = arrow::compute::cast(column, &DataType::Float64)
        .map_err(|_| StageError::failed(format!("{what}: column `{name}` is not numeric")))?;
    Ok(cast.as_primitive::<Float64Type>().clone())
}

/// The error for a story of the TR grid that the words do not cover
/// (`word_stories`: the stories they do cover), with the two ways out.
pub fn story_without_words<'a>(story: &str, word_stories: impl IntoIterator<Item = &'a str>) -> StageError {
    let covered: Vec<&str> = word_stories.into_iter().collect();
    let listed = match covered.len() {
        0 => "no story".to_string(),
        n if n <= 8 => format!("{n} stories: {}", covered.join(", ")),
        n => format!("{n} stories: {}, ...", covered[..8].join(", ")),
    };
    StageError::failed(format!("story `{story}` is in the TR grid but not in the words (they cover {listed})"))
        .with_hint(format!(
            "every story with responses needs its word timings: add its word file (for TextGrids, \
             `{story}.TextGrid` in the words stage's `dir`), or keep the story out with `stories: [...]` \
             on the load.responses or align.trs stage"
        ))
}

/// The story segments of a table's rows from its story column: runs of equal
/// names, each story's rows together. A row without a story, or a story
/// that comes back after another one, is an error naming `what` and the row.
pub fn story_segments(story: &StringArray, what: &str) -> Result<Vec<Segment>, StageError> {
    let mut segments: Vec<Segment> = Vec::new();
    for row in 0..story.len() {
        if story.is_null(row) {
            return Err(
                StageError::failed(format!("{what}: row {row} has no story")).with_hint("give every row its story")
            );
        }
        let name = story.value(row);
        match segments.last_mut() {
            Some(last) if last.name == name => last.rows += 1,
            _ => {
                if segments.iter().any(|s| s.name == name) {
                    return Err(StageError::failed(format!(
                        "{what}: story `{name}` appears again at row {row}, after other stories"
                    ))
                    .with_hint("sort the table by story, keeping each story's rows in time order"));
                }
                segments.push(Segment { name: name.to_string(), rows: 1 });
            }
        }
    }
    Ok(segments)
}

/// Reads a word table (`story, word, onset, offset`).
pub fn words_from_batch(batch: &RecordBatch) -> Result<Vec<StoryWords>, StageError> {
    let what = "the word table";
    let story = text_column(batch, "story", what)?;
    let word = text_column(batch, "word", what)?;
    let onset = float_column(batch, "onset", what)?;
    let offset = float_column(batch, "offset", what)?;
    let mut out: Vec<StoryWords> = Vec::new();
    for i in 0..batch.num_rows() {
        let name = story.value(i);
        let entry = Word { word: word.value(i).to_string(), onset: onset.value(i), offset: offset.value(i) };
        match out.iter_mut().find(|s| s.story == name) {
            Some(s) => s.words.push(entry),
            None => out.push(StoryWords { story: name.to_string(), words: vec![entry] }),
        }
    }
    Ok(out)
}

pub fn grid_to_batch(grid: &TrGrid) -> RecordBatch {
    let mut story = Vec::new();
    let mut tr = Vec::new();
    let mut time = Vec::new();
    for s in &grid.stories {
        for (i, t) in s.times.iter().enumerate() {
            story.push(s.story.clone());
            tr.push(i as i32);
            time.push(*t);
        }
    }
    let n = time.len();
    let schema = Schema::new(vec![
        Field::new("story", DataType::Utf8, false),
        Field::new("tr", DataType::Int32, false),
        Field::new("time", DataType::Float64, false),
        Field::new("tr_seconds", DataType::Float64, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(story)),
        Arc::new(Int32Array::from(tr)),
        Arc::new(Float64Array::from(time)),
        Arc::new(Float64Array::from(vec![grid.tr_seconds; n])),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).expect("TR table schema")
}

/// Reads a TR table (`story, tr, time, tr_seconds`).
pub fn grid_from_batch(batch: &RecordBatch) -> Result<TrGrid, StageError> {
    let what = "the TR table";
    let story = text_column(batch, "story", what)?;
    let time = float_column(batch, "time", what)?;
    let tr_seconds = float_column(batch, "tr_seconds", what)?;
    if batch.num_rows() == 0 {
        return Err(StageError::failed("the TR table is empty"));
    }
    let mut stories: Vec<StoryTrs> = Vec::new();
    for i in 0..batch.num_rows() {
        let name = story.value(i);
        match stories.iter_mut().find(|s| s.story == name) {
            Some(s) => s.times.push(time.value(i)),
            None => stories.push(StoryTrs { story: name.to_string(), times: vec![time.value(i)] }),
        }
    }
    Ok(TrGrid { tr_seconds: tr_seconds.value(0), stories })
}

/// The TR times of `n_trs` volumes: `i * tr - lead_in + offset * tr`
/// (offset 0.5 puts each TR at the middle of its acquisition, as Huth's and
/// LITcoder's code do).
pub fn tr_times(n_trs: usize, tr_seconds: f64, lead_in: f64, offset: f64) -> Vec<f64> {
    (0..n_trs).map(|i| i as f64 * tr_seconds - lead_in + offset * tr_seconds).collect()
}
