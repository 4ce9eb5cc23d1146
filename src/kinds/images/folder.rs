//! `images.folder`: a user's own images, one subfolder of PNGs per class:
//! `dir/<class>/*.png`. The directory is hashed by content (every file in it
//! enters the key), so adding, removing or editing an image reruns the stage.
//!
//! - Classes are the subfolders' names, sorted by name (byte order); a
//!   class's label is its position in that order. Rows go class by class,
//!   each class's files sorted by name, so row i of `images` is the i-th
//!   file in that order.
//! - Files are decoded with the `image` crate (PNG only: 1, 2, 4, 8 and 16
//!   bits, grey, grey + alpha, RGB, RGBA and palette). A file whose name
//!   ends in `.png` (any case) that does not decode is an error naming it;
//!   every other entry (other files, hidden files, files directly in `dir`,
//!   folders inside a class folder) is skipped and counted in a warning.
//! - Grey: a colour pixel becomes its luma Y = 0.2126 R + 0.7152 G +
//!   0.0722 B (the ITU-R BT.709 coefficients, which the `image` crate's own
//!   grey conversion uses), computed on the stored (gamma-encoded) values
//!   scaled to [0, 1] (v / 255, or v / 65535 for 16 bits); a grey pixel
//!   stays as it is. With an alpha channel the pixel is composited over
//!   black: Y * alpha.
//! - Resize: area averaging to `size` x `size`, the aspect ratio not kept
//!   (a non-square image is stretched). Each output pixel is the mean of the
//!   source area it covers, source pixels weighted by the fraction of them
//!   inside it: an exact whole-factor downsample is the mean of each
//!   factor x factor block, a whole-factor upsample repeats pixels (as
//!   images.digits does), and an image of `size` x `size` is unchanged.
//! - Pixels map to [-1, 1] as 2 Y - 1: black (the background of the other
//!   images kinds) is -1, white 1.
//!
//! Outputs as every images kind ([`super::ImageSet`]), with the same
//! stratified seeded train/test split. Tests: tests/images_folder.rs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{check_test_fraction, ImageSet};
use crate::stage::{Kind, ParamError, StageContext, StageError};

/// The ITU-R BT.709 luma coefficients for R, G and B.
pub const LUMA: [f64; 3] = [0.2126, 0.7152, 0.0722];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderParams {
    /// The directory of class subfolders, relative to the pipeline file.
    pub dir: String,
    /// Side of the output images: a multiple of 4, at least 8.
    #[serde(default = "default_size")]
    pub size: usize,
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Seeds the train/test split.
    #[serde(default)]
    pub seed: u64,
}

fn default_size() -> usize {
    16
}
fn default_test_fraction() -> f64 {
    0.2
}

const LAYOUT_HINT: &str = "images.folder reads one subfolder per class, each holding that class's PNG files: \
     `dir/<class>/<image>.png`, at least two classes; `dir` is relative to the pipeline file";

pub struct ImagesFolder;

impl Kind for ImagesFolder {
    type Params = FolderParams;
    const NAME: &'static str = "images.folder";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str =
        "your own PNGs, one subfolder per class, in grey and resized to size x size, with a seeded train/test split";
    const OUTPUTS: &'static [&'static str] = &["images", "labels"];

    fn file_params(&self, params: &FolderParams) -> Vec<(String, String)> {
        vec![("dir".to_string(), params.dir.clone())]
    }

    fn missing_file_hint(&self, _param: &str) -> Option<&'static str> {
        Some(LAYOUT_HINT)
    }

    fn validate(&self, p: &FolderParams) -> Vec<ParamError> {
        let mut errors = Vec::new();
        if p.dir.trim().is_empty() {
            errors.push(ParamError::new("dir", "dir is empty").hint(LAYOUT_HINT));
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

    fn run(&self, p: &FolderParams, ctx: &mut StageContext) -> Result<(), StageError> {
        let dir = ctx.resolve(&p.dir);
        let listing = list_classes(&dir, &p.dir)?;
        let total: usize = listing.classes.iter().map(|(_, files)| files.len()).sum();
        let mut pixels = Vec::with_capacity(total * p.size * p.size);
        let mut labels = Vec::with_capacity(total);
        ctx.progress_unit("images");
        for (label, (_, files)) in listing.classes.iter().enumerate() {
            for path in files {
                ctx.check_cancelled()?;
                pixels.extend(load_png(path, p.size)?);
                labels.push(label as u32);
                ctx.progress(labels.len() as u64, total as u64);
            }
        }
        if let Some(first) = listing.skipped.first() {
            ctx.warn(format!(
                "param `dir`: skipped {} entr{} that {} not a .png file in a class folder (first: {})",
                listing.skipped.len(),
                if listing.skipped.len() == 1 { "y" } else { "ies" },
                if listing.skipped.len() == 1 { "is" } else { "are" },
                first.display()
            ));
        }
        let class_names = listing.classes.into_iter().map(|(name, _)| name).collect();
        let mut set = ImageSet { size: p.size, class_names, pixels, labels, test: Vec::new() };
        set.split(p.test_fraction, p.seed);
        set.write(ctx)
    }
}

/// The classes of a folder (sorted by name) with their PNG files (sorted by
/// name), and the entries skipped.
#[derive(Debug, Default)]
pub struct Listing {
    pub classes: Vec<(String, Vec<PathBuf>)>,
    pub skipped: Vec<PathBuf>,
}

fn is_png(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("png"))
}

/// Lists `dir` (`param` is the param as written, for messages).
pub fn list_classes(dir: &Path, param: &str) -> Result<Listing, StageError> {
    let read_dir = |path: &Path| -> Result<Vec<(String, PathBuf, bool)>, StageError> {
        let entries = std::fs::read_dir(path).map_err(|e| {
            StageError::failed(format!("param `dir`: cannot list {}: {e}", path.display())).with_hint(LAYOUT_HINT)
        })?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| {
                StageError::failed(format!("param `dir`: cannot list {}: {e}", path.display())).with_hint(LAYOUT_HINT)
            })?;
            let path = entry.path();
            // Follows symbolic links: a class folder or an image may be a link.
            let is_dir = path.is_dir();
            let name = entry.file_name().to_string_lossy().into_owned();
            out.push((name, path, is_dir));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    };
    if !dir.is_dir() {
        return Err(StageError::failed(format!("param `dir`: {} ({param}) is not a directory", dir.display()))
            .with_hint(LAYOUT_HINT));
    }
    let mut listing = Listing::default();
    for (name, path, is_dir) in read_dir(dir)? {
        if !is_dir {
            listing.skipped.push(path);
            continue;
        }
        if name.starts_with('.') {
            listing.skipped.push(path);
            continue;
        }
        if path.file_name().and_then(|n| n.to_str()).is_none() || name.contains(',') {
            return Err(StageError::failed(format!(
                "param `dir`: the class folder {} has a name that is not UTF-8 or holds a comma",
                path.display()
            ))
            .with_hint("rename the folder: class names are stored comma-separated in the images' metadata"));
        }
        let mut files = Vec::new();
        for (file_name, file, file_is_dir) in read_dir(&path)? {
            if !file_is_dir && !file_name.starts_with('.') && is_png(&file) {
                files.push(file);
            } else {
                listing.skipped.push(file);
            }
        }
        if files.is_empty() {
            return Err(StageError::failed(format!(
                "param `dir`: the class folder {} holds no .png file",
                path.display()
            ))
            .with_hint("put the class's PNG images in it, or move the folder out of `dir`"));
        }
        listing.classes.push((name, files));
    }
    if listing.classes.len() < 2 {
        return Err(StageError::failed(format!(
            "param `dir`: {} ({param}) has {} class folder(s){}, images.folder needs at least 2",
            dir.display(),
            listing.classes.len(),
            match listing.classes.first() {
                Some((name, _)) => format!(" (`{name}`)"),
                None => String::new(),
            }
        ))
        .with_hint(LAYOUT_HINT));
    }
    Ok(listing)
}

/// Decodes one PNG and returns its `size` x `size` grey pixels in [-1, 1].
pub fn load_png(path: &Path, size: usize) -> Result<Vec<f32>, StageError> {
    let bytes = std::fs::read(path)
        .map_err(|e| StageError::failed(format!("param `dir`: cannot read {}: {e}", path.display())))?;
    let image = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).map_err(|e| {
        StageError::failed(format!("param `dir`: {} does not decode as a PNG image: {e}", path.display()))
            .with_hint("re-save the file as PNG, or move it out of `dir`")
    })?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let colour = image.color().has_color();
    let rgba = image.into_rgba32f();
    let grey: Vec<f64> = rgba
        .pixels()
        .map(|pixel| {
            let [r, g, b, a] = pixel.0.map(f64::from);
            let y = if colour { LUMA[0] * r + LUMA[1] * g + LUMA[2] * b } else { r };
            y * a
        })
        .collect();
    Ok(resize_area(&grey, width, height, size).into_iter().map(|y| (2.0 * y - 1.0) as f32).collect())
}

/// The weights of area averaging from `from` pixels to `to`: row i holds,
/// for each source pixel j, the length of [j, j + 1) inside output pixel
/// i's span [i from / to, (i + 1) from / to), over that span's length.
pub fn area_weights(from: usize, to: usize) -> Vec<Vec<(usize, f64)>> {
    let scale = from as f64 / to as f64;
    (0..to)
        .map(|i| {
            // Exact rational bounds: i * from / to.
            let (lo, hi) = ((i * from) as f64 / to as f64, ((i + 1) * from) as f64 / to as f64);
            let first = (i * from) / to;
            let last = ((i + 1) * from).div_ceil(to).min(from);
            (first..last)
                .filter_map(|j| {
                    let overlap = (hi.min(j as f64 + 1.0) - lo.max(j as f64)).max(0.0);
                    (overlap > 0.0).then_some((j, overlap / scale))
                })
                .collect()
        })
        .collect()
}

/// Area-averages a `width` x `height` grey image (row-major) to `size` x
/// `size`: columns first, then rows.
pub fn resize_area(pixels: &[f64], width: usize, height: usize, size: usize) -> Vec<f64> {
    let columns = area_weights(width, size);
    let rows = area_weights(height, size);
    let mut narrow = vec![0.0; height * size];
    for y in 0..height {
        let row = &pixels[y * width..(y + 1) * width];
        for (x, weights) in columns.iter().enumerate() {
            narrow[y * size + x] = weights.iter().map(|&(j, w)| w * row[j]).sum();
        }
    }
    let mut out = vec![0.0; size * size];
    for (y, weights) in rows.iter().enumerate() {
        for x in 0..size {
            out[y * size + x] = weights.iter().map(|&(j, w)| w * narrow[j * size + x]).sum();
        }
    }
    out
}
