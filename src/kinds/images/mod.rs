//! Image sets for the diffusion kinds: `images.digits` (digits.rs, the 8x8
//! handwritten digits scikit-learn ships), `images.shapes` (shapes.rs,
//! procedural shapes from a seed) and `images.folder` (folder.rs, a
//! directory of class subfolders of PNGs). All write the same two outputs, which
//! `train.prototypes`, `train.classifier`, `train.ddpm` and `eval.samples`
//! read through [`ImageSet::read`]:
//!
//! - `images` (images.arrow): an n x (size * size) float32 matrix, one image
//!   per row, row-major pixels in [-1, 1] (-1 is background), with a float64
//!   row-label column `label` and schema metadata `voxflow.height`,
//!   `voxflow.width`, `voxflow.classes` and `voxflow.class_names`
//!   (comma-separated).
//! - `labels` (labels.parquet): `index` (uint32, the image's row), `label`
//!   (uint32, 0..classes), `class` (utf8, the class name) and `split`
//!   (utf8, `train` or `test`).
//!
//! The split is stratified and seeded: within each class, a seeded shuffle
//! puts round(test_fraction * n_class) images in `test`.

pub mod digits;
pub mod folder;
pub mod shapes;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, UInt32Type};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::artifact::{self, MatrixArtifact};
use crate::numeric::Matrix;
use crate::stage::{InputArtifact, StageContext, StageError};

/// A labelled set of square grey-scale images.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// Side of the square images, in pixels.
    pub size: usize,
    /// Class names; labels index them.
    pub class_names: Vec<String>,
    /// n x size * size pixels in [-1, 1], row-major per image.
    pub pixels: Vec<f32>,
    pub labels: Vec<u32>,
    /// Whether each image is in the test split.
    pub test: Vec<bool>,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }
    pub fn pixels_per_image(&self) -> usize {
        self.size * self.size
    }

    /// The rows of one split (`test` true: the test split).
    pub fn split_indices(&self, test: bool) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.test[i] == test).collect()
    }

    /// Marks round(test_fraction * n_class) images of each class as test,
    /// chosen by a seeded shuffle of the class's rows.
    pub fn split(&mut self, test_fraction: f64, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        self.test = vec![false; self.len()];
        for class in 0..self.classes() as u32 {
            let mut rows: Vec<usize> = (0..self.len()).filter(|&i| self.labels[i] == class).collect();
            rows.shuffle(&mut rng);
            let n_test = (test_fraction * rows.len() as f64).round() as usize;
            for &row in &rows[..n_test] {
                self.test[row] = true;
            }
        }
    }

    /// Writes the `images` matrix and the `labels` table.
    pub fn write(&self, ctx: &mut StageContext) -> Result<(), StageError> {
        let mut images =
            MatrixArtifact::new(Matrix::from_vec(self.len(), self.pixels_per_image(), self.pixels.clone()));
        images.metadata = BTreeMap::from([
            ("height".to_string(), self.size.to_string()),
            ("width".to_string(), self.size.to_string()),
            ("classes".to_string(), self.classes().to_string()),
            ("class_names".to_string(), self.class_names.join(",")),
        ]);
        images.row_labels = vec![("label".to_string(), self.labels.iter().map(|&l| l as f64).collect())];
        ctx.write_matrix("images", &images)?;
        let names: Vec<&str> = self.labels.iter().map(|&l| self.class_names[l as usize].as_str()).collect();
        let splits: Vec<&str> = self.test.iter().map(|&t| if t { "test" } else { "train" }).collect();
        let schema = Schema::new(vec![
            Field::new("index", DataType::UInt32, false),
            Field::new("label", DataType::UInt32, false),
            Field::new("class", DataType::Utf8, false),
            Field::new("split", DataType::Utf8, false),
        ]);
        let table = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(UInt32Array::from_iter_values(0..self.len() as u32)),
                Arc::new(UInt32Array::from(self.labels.clone())),
                Arc::new(StringArray::from(names)),
                Arc::new(StringArray::from(splits)),
            ],
        )
        .expect("labels schema");
        ctx.write_table("labels", &table)
    }

    /// The image set of an `images.*` stage given as a whole input (`role`).
    pub fn read(input: &InputArtifact, role: &str) -> Result<ImageSet, StageError> {
        let wrong = |what: &str| {
            StageError::failed(format!(
                "the `{role}` input (stage `{}`) has no output `{what}`: give an images.digits, images.shapes or images.folder stage",
                input.stage
            ))
            .with_hint(format!("write `inputs: {{{role}: <images stage>}}` without an output name"))
        };
        let images_path = input.output_path("images").map_err(|_| wrong("images"))?;
        let labels_path = input.output_path("labels").map_err(|_| wrong("labels"))?;
        ImageSet::read_files(&images_path, &labels_path)
    }

    /// The image set from its two files.
    pub fn read_files(images_path: &Path, labels_path: &Path) -> Result<ImageSet, StageError> {
        let images = artifact::read_matrix(images_path)?;
        let meta = |key: &str| {
            images.metadata.get(key).cloned().ok_or_else(|| {
                StageError::failed(format!("{}: no metadata `voxflow.{key}`", images_path.display()))
                    .with_hint("the images matrix is written by an images.* stage")
            })
        };
        let size: usize = meta("height")?.parse().map_err(|_| StageError::failed("bad height metadata"))?;
        let class_names: Vec<String> = meta("class_names")?.split(',').map(str::to_string).collect();
        if images.matrix.cols != size * size {
            return Err(StageError::failed(format!(
                "{}: {} columns, expected {size} x {size}",
                images_path.display(),
                images.matrix.cols
            )));
        }
        let table = artifact::read_batch(labels_path)?;
        let column = |name: &str| {
            table
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| StageError::failed(format!("{}: no column `{name}`", labels_path.display())))
        };
        let labels_column = column("label")?;
        if labels_column.data_type() != &DataType::UInt32 {
            return Err(StageError::failed(format!("{}: `label` is not uint32", labels_path.display())));
        }
        let labels = labels_column.as_primitive::<UInt32Type>().values().to_vec();
        let split_column = column("split")?;
        let split = split_column
            .as_string_opt::<i32>()
            .ok_or_else(|| StageError::failed(format!("{}: `split` is not utf8", labels_path.display())))?;
        let test = (0..split.len()).map(|i| split.value(i) == "test").collect();
        if labels.len() != images.matrix.rows || labels.iter().any(|&l| l as usize >= class_names.len()) {
            return Err(StageError::failed(format!(
                "{} and {} do not match ({} labels, {} images, {} classes)",
                images_path.display(),
                labels_path.display(),
                labels.len(),
                images.matrix.rows,
                class_names.len()
            )));
        }
        Ok(ImageSet { size, class_names, pixels: images.matrix.data, labels, test })
    }
}

/// Checks a `test_fraction` param.
fn check_test_fraction(value: f64) -> Option<crate::stage::ParamError> {
    (!(value > 0.0 && value < 1.0)).then(|| {
        crate::stage::ParamError::new("test_fraction", format!("test_fraction is {value}"))
            .hint("use a fraction strictly between 0 and 1, e.g. 0.2")
    })
}
