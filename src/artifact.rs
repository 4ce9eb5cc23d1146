//! Artifact files: what a stage writes and what the next one reads.
//!
//! - Dense matrices ([`MatrixArtifact`]) are Arrow IPC files (`.arrow`, the
//!   Feather v2 format): one row per matrix row with a `data` column of
//!   fixed-size `float32` lists, optional `story`/`row` columns that say which
//!   story and which row within it, and the shape in the schema metadata
//!   (`voxflow.shape`). `pyarrow.feather.read_table(path)` or
//!   `polars.read_ipc(path)` opens one in one call.
//! - Tables are Parquet files: `pyarrow.parquet.read_table(path)`.
//!
//! arrow-rs owns the format; other code converts at this edge.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float32Type, Schema};

use crate::numeric::Matrix;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
}

/// A contiguous run of rows that belong to one story (or run, or session).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    pub name: String,
    pub rows: usize,
}

/// A dense matrix with optional story segments and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixArtifact {
    pub matrix: Matrix,
    /// Empty for matrices without a time axis (weights, per-voxel values).
    pub segments: Vec<Segment>,
    /// Free-form string metadata written into the schema (`voxflow.` prefix added).
    pub metadata: BTreeMap<String, String>,
}

impl MatrixArtifact {
    pub fn new(matrix: Matrix) -> MatrixArtifact {
        MatrixArtifact { matrix, segments: Vec::new(), metadata: BTreeMap::new() }
    }

    pub fn with_segments(matrix: Matrix, segments: Vec<Segment>) -> MatrixArtifact {
        debug_assert_eq!(segments.iter().map(|s| s.rows).sum::<usize>(), matrix.rows);
        MatrixArtifact { matrix, segments, metadata: BTreeMap::new() }
    }

    /// The row range of each segment, in order.
    pub fn segment_ranges(&self) -> Vec<(String, std::ops::Range<usize>)> {
        let mut start = 0;
        self.segments
            .iter()
            .map(|segment| {
                let range = start..start + segment.rows;
                start += segment.rows;
                (segment.name.clone(), range)
            })
            .collect()
    }

    pub fn segment_lengths(&self) -> Vec<usize> {
        self.segments.iter().map(|s| s.rows).collect()
    }

    pub fn to_record_batch(&self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let m = &self.matrix;
        let mut metadata: HashMap<String, String> =
            self.metadata.iter().map(|(k, v)| (format!("voxflow.{k}"), v.clone())).collect();
        metadata.insert("voxflow.type".into(), "matrix".into());
        metadata.insert("voxflow.shape".into(), format!("[{}, {}]", m.rows, m.cols));
        metadata.insert("voxflow.dtype".into(), "float32".into());
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let values = Arc::new(Float32Array::from(m.data.clone()));
        let data = FixedSizeListArray::try_new(item.clone(), m.cols as i32, values, None)?;
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        if !self.segments.is_empty() {
            let mut stories = Vec::with_capacity(m.rows);
            let mut rows = Vec::with_capacity(m.rows);
            for segment in &self.segments {
                for i in 0..segment.rows {
                    stories.push(segment.name.as_str());
                    rows.push(i as i32);
                }
            }
            fields.push(Field::new("story", DataType::Utf8, false));
            columns.push(Arc::new(StringArray::from(stories)));
            fields.push(Field::new("row", DataType::Int32, false));
            columns.push(Arc::new(Int32Array::from(rows)));
        }
        fields.push(Field::new("data", DataType::FixedSizeList(item, m.cols as i32), false));
        columns.push(Arc::new(data));
        RecordBatch::try_new(Arc::new(Schema::new_with_metadata(fields, metadata)), columns)
    }

    pub fn from_record_batch(batch: &RecordBatch) -> Result<MatrixArtifact, String> {
        let schema = batch.schema();
        let data = batch.column_by_name("data").ok_or("no `data` column: not a voxflow matrix")?;
        let list = data.as_fixed_size_list_opt().ok_or("`data` is not a fixed-size list column")?;
        let cols = list.value_length() as usize;
        let values = list.values().as_primitive_opt::<Float32Type>().ok_or("`data` items are not float32")?;
        let start = list.offset() * cols;
        let data: Vec<f32> = values.values()[start..start + list.len() * cols].to_vec();
        let matrix = Matrix::from_vec(batch.num_rows(), cols, data);
        let mut segments: Vec<Segment> = Vec::new();
        if let Some(stories) = batch.column_by_name("story") {
            let stories = stories.as_string_opt::<i32>().ok_or("`story` is not a string column")?;
            for i in 0..stories.len() {
                let name = stories.value(i);
                match segments.last_mut() {
                    Some(last) if last.name == name => last.rows += 1,
                    _ => segments.push(Segment { name: name.to_string(), rows: 1 }),
                }
            }
        }
        let metadata = schema
            .metadata()
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("voxflow.").map(|k| (k.to_string(), v.clone())))
            .filter(|(k, _)| !matches!(k.as_str(), "type" | "shape" | "dtype"))
            .collect();
        Ok(MatrixArtifact { matrix, segments, metadata })
    }
}

/// Writes a matrix artifact as an Arrow IPC file.
pub fn write_matrix(path: &Path, artifact: &MatrixArtifact) -> Result<(), ArtifactError> {
    let fail = |message: String| ArtifactError::Write { path: path.display().to_string(), message };
    let batch = artifact.to_record_batch().map_err(|e| fail(e.to_string()))?;
    let file = File::create(path).map_err(|e| fail(e.to_string()))?;
    let mut writer = arrow::ipc::writer::FileWriter::try_new(std::io::BufWriter::new(file), &batch.schema())
        .map_err(|e| fail(e.to_string()))?;
    writer.write(&batch).map_err(|e| fail(e.to_string()))?;
    writer.finish().map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// Reads a matrix artifact from Arrow IPC or Parquet (by extension).
pub fn read_matrix(path: &Path) -> Result<MatrixArtifact, ArtifactError> {
    let batch = read_batch(path)?;
    MatrixArtifact::from_record_batch(&batch)
        .map_err(|message| ArtifactError::Read { path: path.display().to_string(), message })
}

/// Writes a matrix artifact row block by row block, so that a stage never
/// holds the whole matrix (the `ridge` stage's per-voxel weights). The file is
/// the same as [`write_matrix`] writes without segments: one record batch per
/// block; readers see one matrix.
pub struct MatrixWriter {
    writer: arrow::ipc::writer::FileWriter<std::io::BufWriter<File>>,
    schema: Arc<Schema>,
    cols: usize,
    rows_expected: usize,
    rows_written: usize,
    path: String,
}

impl MatrixWriter {
    /// A writer of a `rows x cols` matrix with `metadata` (keys without the
    /// `voxflow.` prefix, as in [`MatrixArtifact::metadata`]).
    pub fn create(
        path: &Path,
        rows: usize,
        cols: usize,
        metadata: &BTreeMap<String, String>,
    ) -> Result<MatrixWriter, ArtifactError> {
        let fail = |message: String| ArtifactError::Write { path: path.display().to_string(), message };
        let mut meta: HashMap<String, String> =
            metadata.iter().map(|(k, v)| (format!("voxflow.{k}"), v.clone())).collect();
        meta.insert("voxflow.type".into(), "matrix".into());
        meta.insert("voxflow.shape".into(), format!("[{rows}, {cols}]"));
        meta.insert("voxflow.dtype".into(), "float32".into());
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let schema = Arc::new(Schema::new_with_metadata(
            vec![Field::new("data", DataType::FixedSizeList(item, cols as i32), false)],
            meta,
        ));
        let file = File::create(path).map_err(|e| fail(e.to_string()))?;
        let writer = arrow::ipc::writer::FileWriter::try_new(std::io::BufWriter::new(file), &schema)
            .map_err(|e| fail(e.to_string()))?;
        Ok(MatrixWriter {
            writer,
            schema,
            cols,
            rows_expected: rows,
            rows_written: 0,
            path: path.display().to_string(),
        })
    }

    /// Appends rows (row-major, a multiple of `cols` values).
    pub fn write_rows(&mut self, values: Vec<f32>) -> Result<(), ArtifactError> {
        let fail = |message: String| ArtifactError::Write { path: self.path.clone(), message };
        let rows = values.len() / self.cols.max(1);
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let list = FixedSizeListArray::try_new(item, self.cols as i32, Arc::new(Float32Array::from(values)), None)
            .map_err(|e| fail(e.to_string()))?;
        let batch = RecordBatch::try_new(self.schema.clone(), vec![Arc::new(list) as ArrayRef])
            .map_err(|e| fail(e.to_string()))?;
        self.writer.write(&batch).map_err(|e| fail(e.to_string()))?;
        self.rows_written += rows;
        Ok(())
    }

    /// Closes the file; fails when the rows written differ from the shape declared.
    pub fn finish(mut self) -> Result<(), ArtifactError> {
        let fail = |message: String| ArtifactError::Write { path: self.path.clone(), message };
        if self.rows_written != self.rows_expected {
            return Err(fail(format!("{} rows written, {} declared", self.rows_written, self.rows_expected)));
        }
        self.writer.finish().map_err(|e| fail(e.to_string()))
    }
}

/// Writes a table as Parquet (snappy).
pub fn write_table(path: &Path, batch: &RecordBatch) -> Result<(), ArtifactError> {
    let fail = |message: String| ArtifactError::Write { path: path.display().to_string(), message };
    let file = File::create(path).map_err(|e| fail(e.to_string()))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| fail(e.to_string()))?;
    writer.write(batch).map_err(|e| fail(e.to_string()))?;
    writer.close().map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// Reads a whole Parquet or Arrow IPC file into one batch.
pub fn read_batch(path: &Path) -> Result<RecordBatch, ArtifactError> {
    let fail = |message: String| ArtifactError::Read { path: path.display().to_string(), message };
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let (schema, batches): (Arc<Schema>, Vec<RecordBatch>) = match extension {
        "parquet" | "pq" => {
            let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| fail(e.to_string()))?;
            let schema = builder.schema().clone();
            let reader = builder.build().map_err(|e| fail(e.to_string()))?;
            let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| fail(e.to_string()))?;
            (schema, batches)
        }
        "arrow" | "feather" | "ipc" => {
            let reader = arrow::ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None)
                .map_err(|e| fail(e.to_string()))?;
            let schema = reader.schema();
            let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| fail(e.to_string()))?;
            (schema, batches)
        }
        other => return Err(fail(format!("unknown artifact extension `.{other}`: expected .parquet or .arrow"))),
    };
    arrow::compute::concat_batches(&schema, &batches).map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_round_trips_through_ipc_with_segments() {
        let dir = std::env::temp_dir().join(format!("voxflow-artifact-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data: Vec<f32> = (0..35).map(|i| (i as f32).sin()).collect();
        let mut artifact = MatrixArtifact::with_segments(
            Matrix::from_vec(7, 5, data),
            vec![Segment { name: "a".into(), rows: 3 }, Segment { name: "b".into(), rows: 4 }],
        );
        artifact.metadata.insert("columns".into(), "x".into());
        let path = dir.join("m.arrow");
        write_matrix(&path, &artifact).unwrap();
        assert_eq!(read_matrix(&path).unwrap(), artifact);

        // Written in blocks, read back as one matrix.
        let whole = Matrix::from_vec(7, 5, (0..35).map(|i| i as f32 * 0.5).collect());
        let streamed = dir.join("s.arrow");
        let mut writer = MatrixWriter::create(&streamed, 7, 5, &BTreeMap::new()).unwrap();
        writer.write_rows(whole.data[..15].to_vec()).unwrap();
        writer.write_rows(whole.data[15..].to_vec()).unwrap();
        writer.finish().unwrap();
        assert_eq!(read_matrix(&streamed).unwrap().matrix, whole);
        let mut short = MatrixWriter::create(&dir.join("t.arrow"), 7, 5, &BTreeMap::new()).unwrap();
        short.write_rows(whole.data[..10].to_vec()).unwrap();
        assert!(short.finish().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
