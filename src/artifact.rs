//! Artifact files: what a stage writes and what the next one reads.
//!
//! - Dense matrices ([`MatrixArtifact`]) are Arrow IPC files (`.arrow`, the
//!   Feather v2 format): one row per matrix row with a `data` column of
//!   fixed-size `float32` lists, optional `story`/`row` columns that say which
//!   story and which row within it, optional numeric row-label columns
//!   (`cv_scores`' `alpha`), and the shape in the schema metadata
//!   (`voxflow.shape`), in record batches of about 64 MiB. Labels are
//!   columns, not only metadata: polars and pandas drop schema metadata.
//!   `pyarrow.feather.read_table(path)` or `polars.read_ipc(path)` opens one
//!   in one call.
//! - Tables are Parquet files: `pyarrow.parquet.read_table(path)`. A stage's
//!   tables carry its provenance (`voxflow.stage`, `voxflow.params`) as
//!   Parquet key-value metadata and in
//!   the Arrow schema ([`write_table_with_metadata`]).
//!
//! arrow-rs owns the format; other code converts at this edge.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Float64Array, Int32Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Schema};

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
    /// Numeric labels of the rows, each written as its own float64 column
    /// before `data` (name, one value per row).
    pub row_labels: Vec<(String, Vec<f64>)>,
}

impl MatrixArtifact {
    pub fn new(matrix: Matrix) -> MatrixArtifact {
        MatrixArtifact { matrix, segments: Vec::new(), metadata: BTreeMap::new(), row_labels: Vec::new() }
    }

    pub fn with_segments(matrix: Matrix, segments: Vec<Segment>) -> MatrixArtifact {
        debug_assert_eq!(segments.iter().map(|s| s.rows).sum::<usize>(), matrix.rows);
        MatrixArtifact { matrix, segments, metadata: BTreeMap::new(), row_labels: Vec::new() }
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

    /// The schema [`write_matrix`] writes.
    fn schema(&self) -> Arc<Schema> {
        let m = &self.matrix;
        let labels: Vec<&str> = self.row_labels.iter().map(|(name, _)| name.as_str()).collect();
        matrix_schema(m.rows, m.cols, &self.metadata, &self.segments, &labels)
    }

    /// Rows `rows` of the matrix as one record batch of `schema`.
    fn batch_of_rows(
        &self,
        schema: &Arc<Schema>,
        rows: std::ops::Range<usize>,
    ) -> Result<RecordBatch, arrow::error::ArrowError> {
        let m = &self.matrix;
        let data = data_column(m.cols, m.data[rows.start * m.cols..rows.end * m.cols].to_vec())?;
        let mut columns: Vec<ArrayRef> = Vec::new();
        if !self.segments.is_empty() {
            let mut stories = Vec::with_capacity(rows.len());
            let mut within = Vec::with_capacity(rows.len());
            for (name, range) in self.segment_ranges() {
                for i in range.start.max(rows.start)..range.end.min(rows.end) {
                    stories.push(name.clone());
                    within.push((i - range.start) as i32);
                }
            }
            columns.push(Arc::new(StringArray::from(stories)));
            columns.push(Arc::new(Int32Array::from(within)));
        }
        for (_, values) in &self.row_labels {
            columns.push(Arc::new(Float64Array::from(values[rows.clone()].to_vec())));
        }
        columns.push(Arc::new(data));
        RecordBatch::try_new(schema.clone(), columns)
    }
}

/// A matrix file's schema: `story`/`row` columns when it has segments, the
/// `data` column of `cols`-long float32 lists, and the metadata (keys without
/// the `voxflow.` prefix) with the type, shape and dtype added, and the
/// segments (`[{"name", "rows"}, ...]`) so that [`read_matrix_segments`]
/// needs only the schema.
fn matrix_schema(
    rows: usize,
    cols: usize,
    metadata: &BTreeMap<String, String>,
    segments: &[Segment],
    row_labels: &[&str],
) -> Arc<Schema> {
    let mut meta: HashMap<String, String> = metadata.iter().map(|(k, v)| (format!("voxflow.{k}"), v.clone())).collect();
    meta.insert("voxflow.type".into(), "matrix".into());
    meta.insert("voxflow.shape".into(), format!("[{rows}, {cols}]"));
    meta.insert("voxflow.dtype".into(), "float32".into());
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let mut fields = Vec::new();
    if !segments.is_empty() {
        meta.insert("voxflow.segments".into(), serde_json::to_string(segments).expect("segments"));
        fields.push(Field::new("story", DataType::Utf8, false));
        fields.push(Field::new("row", DataType::Int32, false));
    }
    for name in row_labels {
        fields.push(Field::new(*name, DataType::Float64, false));
    }
    fields.push(Field::new("data", DataType::FixedSizeList(item, cols as i32), false));
    Arc::new(Schema::new_with_metadata(fields, meta))
}

/// Row-major values as the `data` column (the vector becomes the array's
/// buffer without a copy).
fn data_column(cols: usize, values: Vec<f32>) -> Result<FixedSizeListArray, arrow::error::ArrowError> {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    FixedSizeListArray::try_new(item, cols as i32, Arc::new(Float32Array::from(values)), None)
}

/// Bytes of matrix data per record batch that [`write_matrix`] writes: a
/// reader (voxflow's own, pyarrow's, polars') then holds the file's batches
/// one at a time, so reading a matrix costs its own size plus one batch.
const BATCH_BYTES: usize = 64 << 20;

/// Writes a matrix artifact as an Arrow IPC file, in record batches of about
/// 64 MiB (at least one row each; one empty batch for a matrix without rows).
pub fn write_matrix(path: &Path, artifact: &MatrixArtifact) -> Result<(), ArtifactError> {
    write_matrix_in_batches(path, artifact, BATCH_BYTES)
}

fn write_matrix_in_batches(path: &Path, artifact: &MatrixArtifact, batch_bytes: usize) -> Result<(), ArtifactError> {
    let fail = |message: String| ArtifactError::Write { path: path.display().to_string(), message };
    let schema = artifact.schema();
    let file = File::create(path).map_err(|e| fail(e.to_string()))?;
    let mut writer = arrow::ipc::writer::FileWriter::try_new(std::io::BufWriter::new(file), &schema)
        .map_err(|e| fail(e.to_string()))?;
    let rows = artifact.matrix.rows;
    let step = (batch_bytes / (4 * artifact.matrix.cols.max(1))).max(1);
    let mut start = 0;
    loop {
        let end = (start + step).min(rows);
        let batch = artifact.batch_of_rows(&schema, start..end).map_err(|e| fail(e.to_string()))?;
        writer.write(&batch).map_err(|e| fail(e.to_string()))?;
        start = end;
        if start >= rows {
            break;
        }
    }
    writer.finish().map_err(|e| fail(e.to_string()))
}

/// Reads a matrix artifact from Arrow IPC or Parquet (by extension), one
/// record batch at a time into the matrix: beyond the matrix itself, the
/// read holds one batch.
pub fn read_matrix(path: &Path) -> Result<MatrixArtifact, ArtifactError> {
    let (schema, batches) = open_batches(path)?;
    assemble_matrix(&schema, batches)
        .map_err(|message| ArtifactError::Read { path: path.display().to_string(), message })
}

/// The record batches of a Parquet or Arrow IPC file (by its extension),
/// read one at a time, and its schema; opening reads only the footer.
type Batches = Box<dyn Iterator<Item = Result<RecordBatch, String>>>;
fn open_batches(path: &Path) -> Result<(Arc<Schema>, Batches), ArtifactError> {
    let fail = |message: String| ArtifactError::Read { path: path.display().to_string(), message };
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "parquet" | "pq" => {
            let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| fail(e.to_string()))?;
            let schema = builder.schema().clone();
            let reader = builder.build().map_err(|e| fail(e.to_string()))?;
            Ok((schema, Box::new(reader.map(|b| b.map_err(|e| e.to_string())))))
        }
        "arrow" | "feather" | "ipc" => {
            let reader = arrow::ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None)
                .map_err(|e| fail(e.to_string()))?;
            let schema = reader.schema();
            Ok((schema, Box::new(reader.map(|b| b.map_err(|e| e.to_string())))))
        }
        other => Err(fail(format!("unknown artifact extension `.{other}`: expected .parquet or .arrow"))),
    }
}

/// Copies a matrix artifact's record batches, in order, into one matrix.
fn assemble_matrix(
    schema: &Schema,
    batches: impl Iterator<Item = Result<RecordBatch, String>>,
) -> Result<MatrixArtifact, String> {
    let cols = match schema.field_with_name("data").map(|f| f.data_type()) {
        Ok(DataType::FixedSizeList(item, n)) if item.data_type() == &DataType::Float32 => *n as usize,
        Ok(DataType::FixedSizeList(..)) => return Err("`data` items are not float32".into()),
        Ok(_) => return Err("`data` is not a fixed-size list column".into()),
        Err(_) => return Err("no `data` column: not a voxflow matrix".into()),
    };
    // The declared shape, when present, sizes the buffer once.
    let declared_rows = schema
        .metadata()
        .get("voxflow.shape")
        .and_then(|shape| serde_json::from_str::<Vec<usize>>(shape).ok())
        .and_then(|shape| shape.first().copied());
    let mut data: Vec<f32> = Vec::with_capacity(declared_rows.unwrap_or(0).saturating_mul(cols));
    let mut rows = 0;
    let mut segments: Vec<Segment> = Vec::new();
    let mut row_labels: Vec<(String, Vec<f64>)> = schema
        .fields()
        .iter()
        .filter(|f| f.data_type() == &DataType::Float64)
        .map(|f| (f.name().clone(), Vec::new()))
        .collect();
    for batch in batches {
        let batch = batch?;
        for (name, values) in &mut row_labels {
            let column = batch.column_by_name(name).and_then(|c| c.as_primitive_opt::<Float64Type>());
            values.extend(column.ok_or_else(|| format!("`{name}` is not a float64 column"))?.values().iter());
        }
        let list = batch.column_by_name("data").and_then(|c| c.as_fixed_size_list_opt()).ok_or("no `data` column")?;
        let values = list.values().as_primitive_opt::<Float32Type>().ok_or("`data` items are not float32")?;
        let start = list.offset() * cols;
        data.extend_from_slice(&values.values()[start..start + list.len() * cols]);
        rows += batch.num_rows();
        extend_segments(&mut segments, &batch)?;
    }
    let metadata = schema
        .metadata()
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("voxflow.").map(|k| (k.to_string(), v.clone())))
        .filter(|(k, _)| !matches!(k.as_str(), "type" | "shape" | "dtype" | "segments"))
        .collect();
    Ok(MatrixArtifact { matrix: Matrix::from_vec(rows, cols, data), segments, metadata, row_labels })
}

/// Adds the rows of a batch's `story` column (if any) to `segments`.
fn extend_segments(segments: &mut Vec<Segment>, batch: &RecordBatch) -> Result<(), String> {
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
    Ok(())
}

/// The story segments of a matrix file without its data: from the schema
/// (`voxflow.segments`, which [`write_matrix`] writes) when it has them, else
/// from the `story` column alone (an Arrow file written otherwise, one batch
/// at a time), else from the whole matrix (Parquet).
pub fn read_matrix_segments(path: &Path) -> Result<Vec<Segment>, ArtifactError> {
    let fail = |message: String| ArtifactError::Read { path: path.display().to_string(), message };
    let open = || File::open(path).map(std::io::BufReader::new).map_err(|e| fail(e.to_string()));
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "arrow" | "feather" | "ipc" => {
            let reader = arrow::ipc::reader::FileReader::try_new(open()?, None).map_err(|e| fail(e.to_string()))?;
            let schema = reader.schema();
            if let Some(json) = schema.metadata().get("voxflow.segments") {
                return serde_json::from_str(json).map_err(|e| fail(format!("voxflow.segments: {e}")));
            }
            let Ok(story) = schema.index_of("story") else {
                return Ok(Vec::new());
            };
            let reader =
                arrow::ipc::reader::FileReader::try_new(open()?, Some(vec![story])).map_err(|e| fail(e.to_string()))?;
            let mut segments = Vec::new();
            for batch in reader {
                extend_segments(&mut segments, &batch.map_err(|e| fail(e.to_string()))?).map_err(fail)?;
            }
            Ok(segments)
        }
        _ => read_matrix(path).map(|artifact| artifact.segments),
    }
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
        let schema = matrix_schema(rows, cols, metadata, &[], &[]);
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
        let list = data_column(self.cols, values).map_err(|e| fail(e.to_string()))?;
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
    write_table_with_metadata(path, batch, &BTreeMap::new())
}

/// Writes a table as Parquet (snappy) with `metadata` (full keys, e.g.
/// `voxflow.params`) both as the file's key-value metadata, which
/// `pyarrow.parquet.read_metadata` and `polars.read_parquet_metadata` show,
/// and in the Arrow schema, which `pyarrow.parquet.read_table` keeps.
pub fn write_table_with_metadata(
    path: &Path,
    batch: &RecordBatch,
    metadata: &BTreeMap<String, String>,
) -> Result<(), ArtifactError> {
    let fail = |message: String| ArtifactError::Write { path: path.display().to_string(), message };
    let file = File::create(path).map_err(|e| fail(e.to_string()))?;
    let key_values: Vec<parquet::file::metadata::KeyValue> = metadata
        .iter()
        .map(|(key, value)| parquet::file::metadata::KeyValue::new(key.clone(), value.clone()))
        .collect();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_key_value_metadata(if key_values.is_empty() { None } else { Some(key_values) })
        .build();
    let batch = if metadata.is_empty() {
        batch.clone()
    } else {
        let mut schema_metadata = batch.schema().metadata().clone();
        schema_metadata.extend(metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        let schema = Arc::new(batch.schema().as_ref().clone().with_metadata(schema_metadata));
        batch.clone().with_schema(schema).map_err(|e| fail(e.to_string()))?
    };
    let batch = &batch;
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| fail(e.to_string()))?;
    writer.write(batch).map_err(|e| fail(e.to_string()))?;
    writer.close().map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// Whether a Parquet or Arrow IPC file is a voxflow matrix (has a `data`
/// column), read from its schema alone.
pub fn is_matrix_file(path: &Path) -> Result<bool, ArtifactError> {
    let (schema, _) = open_batches(path)?;
    Ok(schema.index_of("data").is_ok())
}

/// Reads a whole Parquet or Arrow IPC file into one batch.
pub fn read_batch(path: &Path) -> Result<RecordBatch, ArtifactError> {
    let fail = |message: String| ArtifactError::Read { path: path.display().to_string(), message };
    let (schema, batches) = open_batches(path)?;
    let batches = batches.collect::<Result<Vec<_>, _>>().map_err(fail)?;
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
        artifact.row_labels.push(("alpha".into(), (0..7).map(|i| 10f64.powi(i)).collect()));
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

    /// Matrices are written in record batches that can end inside a story;
    /// the reader puts rows, segments and metadata back together, for any
    /// batch size, and for a matrix without rows.
    #[test]
    fn matrices_split_into_batches_read_back_whole() {
        use rand::Rng;
        let mut rng = crate::testing::fresh_rng("matrices_split_into_batches_read_back_whole");
        let tag: u64 = rng.random();
        let dir = std::env::temp_dir().join(format!("voxflow-batches-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for case in 0..20 {
            let cols = rng.random_range(1..9);
            let lengths: Vec<usize> = (0..rng.random_range(0..5)).map(|_| rng.random_range(1..12)).collect();
            let rows: usize = lengths.iter().sum();
            let data: Vec<f32> = (0..rows * cols).map(|_| rng.random_range(-1.0..1.0)).collect();
            let segments = lengths.iter().enumerate().map(|(i, &n)| Segment { name: format!("story{i}"), rows: n });
            let mut artifact = MatrixArtifact::with_segments(Matrix::from_vec(rows, cols, data), segments.collect());
            if case % 2 == 0 {
                artifact.segments.clear();
            }
            artifact.metadata.insert("case".into(), case.to_string());
            if case % 3 == 0 {
                artifact.row_labels.push(("alpha".into(), (0..rows).map(|_| rng.random_range(0.1..1e4)).collect()));
            }
            let rows_per_batch = rng.random_range(1..rows.max(1) + 2);
            let path = dir.join(format!("{case}.arrow"));
            write_matrix_in_batches(&path, &artifact, rows_per_batch * cols * 4).unwrap();
            let file = File::open(&path).unwrap();
            let batches = arrow::ipc::reader::FileReader::try_new(file, None).unwrap().num_batches();
            assert_eq!(batches, rows.div_ceil(rows_per_batch).max(1), "case {case}");
            assert_eq!(read_matrix(&path).unwrap(), artifact, "case {case}: {rows} rows, {rows_per_batch} per batch");
            assert_eq!(read_matrix_segments(&path).unwrap(), artifact.segments, "case {case}: from the schema");

            // A file with a `story` column but no `voxflow.segments` (written
            // by another tool, or by voxflow before the key existed): the
            // segments come from the column.
            let schema = artifact.schema();
            let mut meta = schema.metadata().clone();
            meta.remove("voxflow.segments");
            let bare = Arc::new(Schema::new_with_metadata(schema.fields().clone(), meta));
            let path = dir.join(format!("{case}-bare.arrow"));
            let mut writer = arrow::ipc::writer::FileWriter::try_new(File::create(&path).unwrap(), &bare).unwrap();
            let mut start = 0;
            while start < rows {
                let end = (start + rows_per_batch).min(rows);
                writer.write(&artifact.batch_of_rows(&bare, start..end).unwrap()).unwrap();
                start = end;
            }
            writer.finish().unwrap();
            assert_eq!(read_matrix_segments(&path).unwrap(), artifact.segments, "case {case}: from the column");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
