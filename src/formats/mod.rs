//! Readers and writers of the file formats researchers already have: NumPy
//! arrays, Praat TextGrids, Gentle and TSV word alignments, BIDS sidecars and
//! events, LeBel's respdict.json and HDF5 response files, NIfTI images. Each
//! error names the file (and line, for text) and how to fix it.

pub mod bids;
pub mod error;
pub mod hdf5;
pub mod nifti;
pub mod npy;
pub mod png;
pub mod respdict;
pub mod textgrid;
mod tsv;
pub mod words;

pub use error::FormatError;
