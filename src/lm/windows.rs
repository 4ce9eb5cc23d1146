//! Which tokens each word's features see, and how the forward passes that
//! compute them are shared.
//!
//! # The definition (one pass per word)
//! A story is the concatenation of its words' tokens; word `i` owns tokens
//! `[b_i, e_i)`. Its features are the hidden states of one forward pass over
//! the window `[s_i, e_i)` (BERT-family models wrap it in `[CLS] ... [SEP]`),
//! where the context start `s_i` depends on the context mode, with `L` the
//! lookback in tokens:
//! - `fullcontext`: `s_i = max(0, e_i - L)`: the preceding text up to `L`
//!   tokens, the word included.
//! - `nocontext`: `s_i = b_i`: the word alone.
//! - `halfcontext`: the context restarts every `h = L / 2` tokens:
//!   `s_i = h * max(0, ceil((e_i - L) / h))`, so each word sees between
//!   `h + 1` and `L` tokens once the story is longer than `L`.
//!
//! # Sharing passes
//! For a causal model the states of a window's tokens do not depend on later
//! tokens, so one pass over `[s, t)` gives every word with `s_i = s` and
//! `e_i <= t` exactly what its own pass would: words are grouped by `s_i`
//! ([`plan_windows`]). With `fullcontext` every word of a story shorter than
//! `L` shares one pass; with `halfcontext` a pass serves `h` tokens' worth of
//! words. A bidirectional model (BERT) sees the tokens after a word, so each
//! word keeps its own window; those windows are batched.

use std::ops::Range;

/// How much preceding text a word's features see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextMode {
    Full,
    None,
    Half,
}

impl ContextMode {
    pub fn parse(text: &str) -> Option<ContextMode> {
        match text {
            "fullcontext" => Some(ContextMode::Full),
            "nocontext" => Some(ContextMode::None),
            "halfcontext" => Some(ContextMode::Half),
            _ => None,
        }
    }
}

/// The context start of a word owning tokens `span` (see the module docs).
pub fn context_start(span: &Range<usize>, mode: ContextMode, lookback: usize) -> usize {
    let end = span.end;
    match mode {
        ContextMode::None => span.start,
        ContextMode::Full => end.saturating_sub(lookback),
        ContextMode::Half => {
            let h = (lookback / 2).max(1);
            if end <= lookback {
                0
            } else {
                (end - lookback).div_ceil(h) * h
            }
        }
    }
}

/// One forward pass: the story tokens `tokens` and the words whose features
/// it gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub tokens: Range<usize>,
    pub words: Vec<usize>,
}

/// The passes that give every word its features. `spans[i]` are the tokens
/// of word `i` (in story order, contiguous, possibly empty for a word the
/// tokenizer drops). `causal` allows sharing a pass between words with the
/// same context start. Words with no tokens get no window.
pub fn plan_windows(spans: &[Range<usize>], mode: ContextMode, lookback: usize, causal: bool) -> Vec<Window> {
    let mut windows: Vec<Window> = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        if span.is_empty() {
            continue;
        }
        let start = context_start(span, mode, lookback);
        match windows.last_mut() {
            // Context starts never decrease along a story, so equal starts are adjacent.
            Some(last) if causal && last.tokens.start == start => {
                last.tokens.end = last.tokens.end.max(span.end);
                last.words.push(i);
            }
            _ => windows.push(Window { tokens: start..span.end, words: vec![i] }),
        }
    }
    windows
}

/// The tokens a word's features are pooled over inside its window: its own
/// tokens, cut at the window start when the word is longer than the lookback.
pub fn pooled_tokens(span: &Range<usize>, window: &Range<usize>) -> Range<usize> {
    span.start.max(window.start)..span.end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(lengths: &[usize]) -> Vec<Range<usize>> {
        let mut at = 0;
        lengths
            .iter()
            .map(|&n| {
                at += n;
                at - n..at
            })
            .collect()
    }

    #[test]
    fn context_starts_follow_the_definition() {
        let s = spans(&[1; 20]);
        // fullcontext: up to 8 tokens back, the word included.
        let starts: Vec<usize> = s.iter().map(|w| context_start(w, ContextMode::Full, 8)).collect();
        assert_eq!(&starts[..10], &[0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        for (w, &st) in s.iter().zip(&starts) {
            assert!(w.end - st <= 8);
        }
        // halfcontext: between h + 1 and L tokens once past L.
        for w in &s {
            let st = context_start(w, ContextMode::Half, 8);
            assert_eq!(st % 4, 0);
            let seen = w.end - st;
            assert!(seen <= 8 && (w.end <= 8 || seen > 4), "end {} start {st}", w.end);
        }
        assert_eq!(context_start(&(5..7), ContextMode::None, 8), 5);
    }

    #[test]
    fn causal_windows_share_passes_and_cover_every_word_once() {
        let s = spans(&[1, 2, 0, 1, 3, 1, 1, 2, 1, 1, 1, 2, 1]);
        for mode in [ContextMode::Full, ContextMode::Half, ContextMode::None] {
            for causal in [true, false] {
                let windows = plan_windows(&s, mode, 6, causal);
                let mut seen: Vec<usize> = windows.iter().flat_map(|w| w.words.clone()).collect();
                seen.sort();
                let expected: Vec<usize> = (0..s.len()).filter(|&i| !s[i].is_empty()).collect();
                assert_eq!(seen, expected);
                for w in &windows {
                    for &i in &w.words {
                        assert_eq!(w.tokens.start, context_start(&s[i], mode, 6));
                        assert!(s[i].end <= w.tokens.end);
                    }
                }
                if !causal {
                    assert!(windows.iter().all(|w| w.words.len() == 1));
                }
            }
        }
        // A story shorter than the lookback is one pass for a causal model.
        assert_eq!(plan_windows(&s, ContextMode::Full, 64, true).len(), 1);
    }
}
