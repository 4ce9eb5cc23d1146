//! Alignment: where the words (`align.words`, words.rs) and the TRs
//! (`align.trs`, trs.rs) come from.

mod trs;
mod words;

pub use trs::{AlignTrs, AlignTrsParams};
pub use words::{AlignWords, AlignWordsParams};
