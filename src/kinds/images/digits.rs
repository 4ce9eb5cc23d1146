//! `images.digits`: the 1797 8x8 handwritten digits (10 classes) that
//! scikit-learn's wheel ships as `sklearn/datasets/data/digits.csv.gz`
//! (`sklearn.datasets.load_digits`), read directly from that file: gzip, one
//! image a line, 64 pixel values 0..16 then the label. The default `path`
//! is `data/digits.csv.gz` relative to the pipeline file, where
//! scripts/setup-python.sh links the wheel's copy; the file is hashed by
//! content.
//!
//! Pixels map to [-1, 1] as v / 8 - 1 and are upsampled by pixel repetition
//! (nearest neighbour) to `size` x `size`, `size` a multiple of 8 (default
//! 16: the U-Net of train.ddpm halves the side twice). Outputs as every
//! images kind ([`super::ImageSet`]); classes are named `0`..`9`.

use std::io::Read;

use serde::{Deserialize, Serialize};

use super::{check_test_fraction, ImageSet};
use crate::stage::{Kind, ParamError, StageContext, StageError};

/// Where scripts/setup-python.sh links the digits (relative to the pipeline file).
pub const DEFAULT_PATH: &str = "data/digits.csv.gz";
/// The side of the digits as shipped.
pub const SIDE: usize = 8;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigitsParams {
    #[serde(default = "default_path")]
    pub path: String,
    /// Side of the output images: a multiple of 8.
    #[serde(default = "default_size")]
    pub size: usize,
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Seeds the train/test split.
    #[serde(default)]
    pub seed: u64,
}

fn default_path() -> String {
    DEFAULT_PATH.to_string()
}
fn default_size() -> usize {
    16
}
fn default_test_fraction() -> f64 {
    0.2
}

const SETUP_HINT: &str = "run scripts/setup-python.sh, which links scikit-learn's digits.csv.gz as data/digits.csv.gz \
     in the repository (from a pipeline under pipelines/: `path: ../data/digits.csv.gz`), or point `path` at \
     sklearn/datasets/data/digits.csv.gz of a scikit-learn install";

pub struct ImagesDigits;

impl Kind for ImagesDigits {
    type Params = DigitsParams;
    const NAME: &'static str = "images.digits";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), upsampled, with a seeded train/test split";
    const OUTPUTS: &'static [&'static str] = &["images", "labels"];

    fn file_params(&self, params: &DigitsParams) -> Vec<(String, String)> {
        vec![("path".to_string(), params.path.clone())]
    }

    fn missing_file_hint(&self, _param: &str) -> Option<&'static str> {
        Some(SETUP_HINT)
    }

    fn validate(&self, params: &DigitsParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if params.size == 0 || params.size % SIDE != 0 {
            errors.push(
                ParamError::new("size", format!("size is {}, not a multiple of 8", params.size))
                    .hint("the 8x8 digits are upsampled by a whole factor: use 8, 16, 24 or 32"),
            );
        }
        errors.extend(check_test_fraction(params.test_fraction));
        errors
    }

    fn run(&self, params: &DigitsParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let path = ctx.resolve(&params.path);
        let bytes = std::fs::read(&path).map_err(|e| {
            StageError::failed(format!("param `path`: cannot read {}: {e}", path.display())).with_hint(SETUP_HINT)
        })?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut text).map_err(|e| {
            StageError::failed(format!("param `path`: {} is not gzip-compressed text: {e}", path.display()))
                .with_hint(SETUP_HINT)
        })?;
        let (raw, labels) = parse_digits(&text).map_err(|(line, message)| {
            StageError::failed(format!("{}:{line}: {message}", path.display()))
                .with_hint("a line of digits.csv is 64 pixel values (0 to 16) and a label (0 to 9), comma-separated")
        })?;
        let mut set = ImageSet {
            size: params.size,
            class_names: (0..10).map(|d| d.to_string()).collect(),
            pixels: upsample(&raw, SIDE, params.size),
            labels,
            test: Vec::new(),
        };
        set.split(params.test_fraction, params.seed);
        set.write(ctx)
    }
}

/// The pixels (0..16, 64 per image) and labels of digits.csv; an error is
/// (line, message).
pub fn parse_digits(text: &str) -> Result<(Vec<f32>, Vec<u32>), (usize, String)> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != SIDE * SIDE + 1 {
            return Err((i + 1, format!("{} fields, expected {}", fields.len(), SIDE * SIDE + 1)));
        }
        for field in &fields[..SIDE * SIDE] {
            let value: f64 = field.trim().parse().map_err(|_| (i + 1, format!("`{field}` is not a number")))?;
            if !(0.0..=16.0).contains(&value) {
                return Err((i + 1, format!("pixel value {value} is outside 0..16")));
            }
            pixels.push(value as f32);
        }
        let label: f64 =
            fields[SIDE * SIDE].trim().parse().map_err(|_| (i + 1, "the label is not a number".to_string()))?;
        if !(0.0..=9.0).contains(&label) || label.fract() != 0.0 {
            return Err((i + 1, format!("label {label} is not a digit 0..9")));
        }
        labels.push(label as u32);
    }
    if labels.is_empty() {
        return Err((1, "no images".into()));
    }
    Ok((pixels, labels))
}

/// Maps 0..16 pixels of `side` x `side` images to [-1, 1] (v / 8 - 1) and
/// repeats each pixel size / side times along both axes.
pub fn upsample(raw: &[f32], side: usize, size: usize) -> Vec<f32> {
    let factor = size / side;
    let n = raw.len() / (side * side);
    let mut out = Vec::with_capacity(n * size * size);
    for image in raw.chunks(side * side) {
        for y in 0..size {
            for x in 0..size {
                out.push(image[(y / factor) * side + x / factor] / 8.0 - 1.0);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_repeats_pixels_and_maps_to_minus_one_one() {
        let raw: Vec<f32> = (0..64).map(|i| (i % 17) as f32).collect();
        let up = upsample(&raw, 8, 16);
        assert_eq!(up.len(), 256);
        for y in 0..16 {
            for x in 0..16 {
                assert_eq!(up[y * 16 + x], raw[(y / 2) * 8 + x / 2] / 8.0 - 1.0);
            }
        }
        assert_eq!(upsample(&raw, 8, 8)[16], 1.0);
    }

    #[test]
    fn bad_lines_name_the_line() {
        let good = format!("{}0\n", "1,".repeat(64));
        assert_eq!(parse_digits(&good).unwrap().1, vec![0]);
        let short = format!("{good}{}3\n", "1,".repeat(63));
        assert_eq!(parse_digits(&short).unwrap_err(), (2, "64 fields, expected 65".to_string()));
        let bad = good.replacen('1', "17", 1);
        assert!(parse_digits(&bad).unwrap_err().1.contains("outside 0..16"));
    }
}
