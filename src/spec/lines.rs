//! `LineIndex`: where each key of a YAML document sits (1-based line), so
//! that every validation error can point at `file:line`. serde_yaml gives the
//! values; this walks the same text once more with yaml-rust2's event parser,
//! which carries a position for each event.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Maps a dotted path (`stages.fit.params.alpha`, `matrix.method.1`) to the
/// line where that key (or sequence item) starts.
#[derive(Debug, Default, Clone)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
    /// Every YAML tag in the document (`!!binary`, `!custom`) with its line:
    /// a pipeline file is plain YAML, so each one is an error.
    pub tags: Vec<(String, usize)>,
}

impl LineIndex {
    /// Builds the index; a document that does not parse gives an empty index
    /// (serde_yaml reports the syntax error with its own position).
    pub fn new(text: &str) -> LineIndex {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return LineIndex::default();
        }
        LineIndex { lines: builder.lines, tags: builder.tags }
    }

    /// The line of `path`, or of its nearest recorded ancestor.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut candidate = path;
        loop {
            if let Some(line) = self.lines.get(candidate) {
                return Some(*line);
            }
            match candidate.rfind('.') {
                Some(dot) => candidate = &candidate[..dot],
                None => return None,
            }
        }
    }
}

enum Frame {
    Mapping { path: String, key: Option<String> },
    Sequence { path: String, index: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
    tags: Vec<(String, usize)>,
}

impl Builder {
    /// The path of the value that the next event starts, and whether that
    /// event is a mapping key rather than a value.
    fn next_slot(&self) -> (Option<String>, bool) {
        match self.stack.last() {
            None => (Some(String::new()), false),
            Some(Frame::Mapping { key: None, .. }) => (None, true),
            Some(Frame::Mapping { path, key: Some(key) }) => (Some(join(path, key)), false),
            Some(Frame::Sequence { path, index }) => (Some(join(path, &index.to_string())), false),
        }
    }

    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Mapping { key, .. }) => *key = None,
            Some(Frame::Sequence { index, .. }) => *index += 1,
            None => {}
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line().max(1);
        if let Event::Scalar(_, _, _, Some(tag))
        | Event::MappingStart(_, Some(tag))
        | Event::SequenceStart(_, Some(tag)) = &event
        {
            let handle = if tag.handle == "tag:yaml.org,2002:" { "!!" } else { tag.handle.as_str() };
            self.tags.push((format!("{handle}{}", tag.suffix), line));
        }
        match event {
            Event::Scalar(text, ..) => {
                let (slot, is_key) = self.next_slot();
                if is_key {
                    if let Some(Frame::Mapping { path, key }) = self.stack.last_mut() {
                        self.lines.entry(join(path, &text)).or_insert(line);
                        *key = Some(text);
                    }
                } else {
                    if let Some(slot) = slot {
                        self.lines.entry(slot).or_insert(line);
                    }
                    self.value_done();
                }
            }
            Event::Alias(_) => {
                let (slot, _) = self.next_slot();
                if let Some(slot) = slot {
                    self.lines.entry(slot).or_insert(line);
                }
                self.value_done();
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let (slot, _) = self.next_slot();
                let path = slot.unwrap_or_default();
                self.lines.entry(path.clone()).or_insert(line);
                let frame = if matches!(event, Event::MappingStart(..)) {
                    Frame::Mapping { path, key: None }
                } else {
                    Frame::Sequence { path, index: 0 }
                };
                self.stack.push(frame);
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_items_get_their_lines() {
        let text = "name: x\nstages:\n  fit:\n    kind: ridge\n    params:\n      alpha: 3\n    inputs: [a, b]\nmatrix:\n  m:\n    - 1\n    - 2\n";
        let index = LineIndex::new(text);
        assert_eq!(index.line_of("name"), Some(1));
        assert_eq!(index.line_of("stages.fit"), Some(3));
        assert_eq!(index.line_of("stages.fit.kind"), Some(4));
        assert_eq!(index.line_of("stages.fit.params.alpha"), Some(6));
        assert_eq!(index.line_of("stages.fit.inputs"), Some(7));
        assert_eq!(index.line_of("matrix.m.1"), Some(11));
        assert_eq!(index.line_of("stages.fit.params.missing"), Some(5));
        assert!(index.tags.is_empty());
    }

    #[test]
    fn tags_are_listed_with_their_lines() {
        let index = LineIndex::new("name: x\nstages:\n  a:\n    run: !!binary aGVsbG8=\n    params: !custom {a: 1}\n");
        assert_eq!(index.tags, [("!!binary".to_string(), 4), ("!custom".to_string(), 5)]);
    }
}
