//! `align.words`: a word table (`story, word, onset, offset`) from Praat
//! TextGrids (word tier by name), Gentle CSVs or TSVs (one file per story,
//! named `<story>.<ext>`), or from an upstream `words` table; silence and
//! noise markers (LeBel's sp, sil, {br}, {lg}, {ns}, ...) dropped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::formats::{self, textgrid};
use crate::kinds::tables::{self, StoryWords};
use crate::stage::{Kind, ParamError, StageContext, StageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlignWordsParams {
    /// `table` (the `words` input), `textgrid`, `gentle` or `tsv`.
    #[serde(default)]
    pub source: WordSource,
    /// Directory with one file per story (for textgrid, gentle, tsv).
    #[serde(default)]
    pub dir: Option<String>,
    /// Only these stories (default: all).
    #[serde(default)]
    pub stories: Vec<String>,
    /// TextGrid tier holding the words.
    #[serde(default = "default_tier")]
    pub tier: String,
    /// Labels to drop (default: LeBel's silence and noise markers).
    #[serde(default)]
    pub drop: Option<Vec<String>>,
}

/// Where word timings come from: a `words` table input, or a directory of
/// TextGrids, Gentle CSVs or TSVs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WordSource {
    #[default]
    Table,
    TextGrid,
    Gentle,
    Tsv,
}

impl WordSource {
    fn name(self) -> &'static str {
        match self {
            WordSource::Table => "table",
            WordSource::TextGrid => "textgrid",
            WordSource::Gentle => "gentle",
            WordSource::Tsv => "tsv",
        }
    }
}
fn default_tier() -> String {
    "word".into()
}

pub struct AlignWords;

impl Kind for AlignWords {
    type Params = AlignWordsParams;
    const NAME: &'static str = "align.words";
    // 2: provenance (stage, key, params) in the Parquet tables' metadata.
    const VERSION: u32 = 2;
    const SUMMARY: &'static str = "word timings from TextGrids, Gentle CSVs, TSVs or a table; silence markers dropped";
    const OUTPUTS: &'static [&'static str] = &["words"];

    fn required_inputs(&self, params: &AlignWordsParams) -> Vec<&'static str> {
        // source: table reads the `words` input; the others read files.
        match params.source {
            WordSource::Table => vec!["words"],
            WordSource::TextGrid | WordSource::Gentle | WordSource::Tsv => Vec::new(),
        }
    }
    fn validate(&self, p: &AlignWordsParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if p.source != WordSource::Table && p.dir.is_none() {
            errors.push(ParamError::new(
                "dir",
                format!("source `{}` needs `dir`: a directory with one file per story", p.source.name()),
            ));
        }
        errors
    }
    fn file_params(&self, params: &AlignWordsParams) -> Vec<(String, String)> {
        params.dir.iter().map(|d| ("dir".to_string(), d.clone())).collect()
    }
    fn run(&self, params: &AlignWordsParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let drop_owned: Vec<String> =
            params.drop.clone().unwrap_or_else(|| textgrid::LEBEL_DROP_WORDS.iter().map(|s| s.to_string()).collect());
        let drop: Vec<&str> = drop_owned.iter().map(String::as_str).collect();
        let extension = match params.source {
            WordSource::Table => None,
            WordSource::TextGrid => Some("textgrid"),
            WordSource::Gentle => Some("csv"),
            WordSource::Tsv => Some("tsv"),
        };
        // Where each story's words came from, for errors.
        let mut sources: std::collections::BTreeMap<String, String> = Default::default();
        let mut stories: Vec<StoryWords> = if let Some(extension) = extension {
            let dir = ctx.resolve(params.dir.as_deref().unwrap_or("."));
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| StageError::failed(format!("{}: {e}", dir.display())))?
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|e| e.to_string_lossy().to_lowercase() == extension))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(StageError::failed(format!("{} has no .{extension} files", dir.display())));
            }
            let mut out = Vec::new();
            for file in files {
                sources.insert(
                    file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default(),
                    file.display().to_string(),
                );
                let story = file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
                if !params.stories.is_empty() && !params.stories.contains(&story) {
                    continue;
                }
                let words = read_word_file(&file, params.source, &params.tier, &drop)
                    .map_err(|e| StageError::failed(e.to_string()))?;
                out.push(StoryWords { story, words });
            }
            out
        } else {
            tables::words_from_batch(&ctx.input_table("words")?)?
        };
        if !params.stories.is_empty() {
            for wanted in &params.stories {
                if !stories.iter().any(|s| &s.story == wanted) {
                    return Err(StageError::failed(format!(
                        "story `{wanted}` (in `stories`) has no words in the source"
                    )));
                }
            }
            stories.retain(|s| params.stories.contains(&s.story));
        }
        let mut dropped = 0usize;
        for story in &mut stories {
            let before = story.words.len();
            story.words.retain(|w| !w.word.trim().is_empty() && !textgrid::is_dropped(&w.word, &drop));
            dropped += before - story.words.len();
            for (i, w) in story.words.iter().enumerate() {
                if !(w.onset.is_finite() && w.offset.is_finite()) || w.offset < w.onset {
                    let source = sources.get(&story.story).map_or("the `words` input".to_string(), Clone::clone);
                    return Err(StageError::failed(format!(
                        "story `{}` ({source}), word {} (`{}`, counting from 1 after dropping markers): onset {} and \
                         offset {} are not a valid interval",
                        story.story,
                        i + 1,
                        w.word,
                        w.onset,
                        w.offset
                    )));
                }
            }
            story.words.sort_by(|a, b| a.onset.total_cmp(&b.onset));
            if story.words.is_empty() {
                return Err(StageError::failed(format!(
                    "story `{}` has no words left after dropping markers",
                    story.story
                )));
            }
        }
        if dropped > 0 {
            tracing::info!(stage = ctx.name, "dropped {dropped} silence/noise markers");
        }
        ctx.write_table("words", &tables::words_to_batch(&stories))
    }
}

/// The words of one file of a directory source (never `table`).
fn read_word_file(
    path: &Path,
    source: WordSource,
    tier: &str,
    drop: &[&str],
) -> Result<Vec<formats::words::Word>, formats::FormatError> {
    match source {
        WordSource::TextGrid => textgrid::words_from_textgrid(path, tier, drop),
        WordSource::Gentle => formats::words::words_from_gentle_csv(path),
        WordSource::Tsv | WordSource::Table => formats::words::words_from_tsv(path),
    }
}
