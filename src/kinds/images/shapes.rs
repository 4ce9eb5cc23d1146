//! `images.shapes`: procedurally drawn grey-scale shapes, deterministic from
//! `seed`: `classes` of circle, square, triangle, cross, ring, diamond,
//! hbar, vbar (in that order), `per_class` images each. Each image draws its
//! shape at a random centre (jittered by up to a tenth of the side), scale
//! (0.55 to 0.85 of the side) and brightness (0.6 to 1.0), anti-aliased by
//! 4x4 supersampling, on a background of -1. Outputs as every images kind
//! ([`super::ImageSet`]).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{check_test_fraction, ImageSet};
use crate::stage::{Kind, ParamError, StageContext, StageError};

/// The shapes, in label order.
pub const SHAPES: [&str; 8] = ["circle", "square", "triangle", "cross", "ring", "diamond", "hbar", "vbar"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapesParams {
    /// How many of the shapes (2 to 8), taken in order.
    #[serde(default = "default_classes")]
    pub classes: usize,
    #[serde(default = "default_per_class")]
    pub per_class: usize,
    /// Side of the images: a multiple of 4, at least 8.
    #[serde(default = "default_size")]
    pub size: usize,
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    #[serde(default)]
    pub seed: u64,
}

fn default_classes() -> usize {
    4
}
fn default_per_class() -> usize {
    200
}
fn default_size() -> usize {
    16
}
fn default_test_fraction() -> f64 {
    0.2
}

pub struct ImagesShapes;

impl Kind for ImagesShapes {
    type Params = ShapesParams;
    const NAME: &'static str = "images.shapes";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str = "procedural grey-scale shapes (2 to 8 classes) from a seed, with a train/test split";
    const OUTPUTS: &'static [&'static str] = &["images", "labels"];

    fn validate(&self, p: &ShapesParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if !(2..=SHAPES.len()).contains(&p.classes) {
            errors.push(
                ParamError::new("classes", format!("classes is {}", p.classes))
                    .hint(format!("choose 2 to 8 of {}", SHAPES.join(", "))),
            );
        }
        if p.per_class < 2 {
            errors.push(ParamError::new("per_class", format!("per_class is {}", p.per_class)).hint("draw at least 2"));
        }
        if p.size < 8 || p.size % 4 != 0 {
            errors.push(
                ParamError::new("size", format!("size is {}", p.size))
                    .hint("use a multiple of 4 from 8 up (train.ddpm's U-Net halves the side twice)"),
            );
        }
        errors.extend(check_test_fraction(p.test_fraction));
        errors
    }

    fn run(&self, p: &ShapesParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let mut set = draw_shapes(p.classes, p.per_class, p.size, p.seed);
        set.split(p.test_fraction, p.seed);
        set.write(ctx)
    }
}

/// `per_class` images of each of the first `classes` shapes, class by class.
pub fn draw_shapes(classes: usize, per_class: usize, size: usize, seed: u64) -> ImageSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pixels = Vec::with_capacity(classes * per_class * size * size);
    let mut labels = Vec::with_capacity(classes * per_class);
    for class in 0..classes {
        for _ in 0..per_class {
            let cx = 0.5 + rng.random_range(-0.1..0.1);
            let cy = 0.5 + rng.random_range(-0.1..0.1);
            let scale = rng.random_range(0.55..0.85) / 2.0;
            let brightness = rng.random_range(0.6..1.0f32);
            const SUB: usize = 4;
            for y in 0..size {
                for x in 0..size {
                    let mut covered = 0;
                    for sy in 0..SUB {
                        for sx in 0..SUB {
                            let u = ((x * SUB + sx) as f64 + 0.5) / (size * SUB) as f64;
                            let v = ((y * SUB + sy) as f64 + 0.5) / (size * SUB) as f64;
                            covered += inside(class, (u - cx) / scale, (v - cy) / scale) as usize;
                        }
                    }
                    let coverage = covered as f32 / (SUB * SUB) as f32;
                    pixels.push(-1.0 + 2.0 * brightness * coverage);
                }
            }
            labels.push(class as u32);
        }
    }
    let class_names = SHAPES[..classes].iter().map(|s| s.to_string()).collect();
    ImageSet { size, class_names, pixels, labels, test: vec![false; classes * per_class] }
}

/// Whether (x, y), in units of the shape's half-size around its centre, is inside shape `class`.
fn inside(class: usize, x: f64, y: f64) -> bool {
    match SHAPES[class] {
        "circle" => x * x + y * y <= 1.0,
        "square" => x.abs() <= 0.8 && y.abs() <= 0.8,
        "triangle" => y <= 0.8 && y >= -0.9 && x.abs() <= (y + 0.9) / 1.7 * 0.95,
        "cross" => (x.abs() <= 0.25 && y.abs() <= 1.0) || (y.abs() <= 0.25 && x.abs() <= 1.0),
        "ring" => (0.55..=1.0).contains(&(x * x + y * y).sqrt()),
        "diamond" => x.abs() + y.abs() <= 1.0,
        "hbar" => x.abs() <= 1.0 && y.abs() <= 0.3,
        "vbar" => x.abs() <= 0.3 && y.abs() <= 1.0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_deterministic_distinct_and_in_range() {
        let a = draw_shapes(8, 3, 16, 5);
        assert_eq!(a, draw_shapes(8, 3, 16, 5));
        assert_ne!(a.pixels, draw_shapes(8, 3, 16, 6).pixels);
        assert!(a.pixels.iter().all(|&v| (-1.0..=1.0).contains(&v)));
        // Mean images of two classes differ.
        let mean = |class: usize| -> Vec<f32> {
            let rows: Vec<&[f32]> = a.pixels.chunks(256).skip(class * 3).take(3).collect();
            (0..256).map(|k| rows.iter().map(|r| r[k]).sum::<f32>() / 3.0).collect()
        };
        for c in 1..8 {
            let d: f32 = mean(0).iter().zip(mean(c)).map(|(x, y)| (x - y).abs()).sum();
            assert!(d > 5.0, "class {c} looks like a circle ({d})");
        }
    }
}
