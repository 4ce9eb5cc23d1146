//! LeBel 2023 response files (`derivative/preprocessed_data/<subject>/<story>.hf5`):
//! HDF5 files whose dataset `data` is a 2-D array TRs x voxels (float32 or
//! float64; integers are accepted too), read into a [`Matrix`] of `f32`.
//! Values are taken as stored: LeBel responses can hold NaN (Huth-lab code
//! applies `nan_to_num` after reading). A 1-D dataset reads as one column.
//!
//! The writer stores a [`Matrix`] as a float32 dataset `data` in a new file,
//! the layout of the real files, so the synthetic dataset can write itself
//! out like LeBel's.
//!
//! Build: the `hdf5-metno` crate links the system HDF5 library. On Debian 12
//! `apt-get install -y libhdf5-dev pkg-config` is all it needs: its build
//! script finds `/usr/include/hdf5/serial` and
//! `/usr/lib/x86_64-linux-gnu/hdf5/serial` through pkg-config (`hdf5.pc`), no
//! `HDF5_DIR` needed. (Where pkg-config is missing, set
//! `HDF5_DIR=/usr/lib/x86_64-linux-gnu/hdf5/serial`.)

use std::path::Path;

use hdf5::types::TypeDescriptor;

use crate::formats::error::FormatError;
use crate::numeric::Matrix;

/// The dataset name of LeBel response files.
pub const RESPONSE_DATASET: &str = "data";

fn check_readable(path: &Path) -> Result<(), FormatError> {
    std::fs::File::open(path).map(|_| ()).map_err(|e| FormatError::read(path, e))
}

fn open(path: &Path) -> Result<hdf5::File, FormatError> {
    check_readable(path)?;
    hdf5::File::open(path).map_err(|e| {
        FormatError::invalid(
            path,
            format!("not a readable HDF5 file ({e})"),
            "the file is truncated or not HDF5; download or write it again",
        )
    })
}

/// The names of the datasets at the root of an HDF5 file.
pub fn hf5_datasets(path: &Path) -> Result<Vec<String>, FormatError> {
    let file = open(path)?;
    let names = file.member_names().map_err(|e| {
        FormatError::invalid(
            path,
            format!("cannot list the file's contents ({e})"),
            "the file is damaged; download or write it again",
        )
    })?;
    Ok(names.into_iter().filter(|n| file.dataset(n).is_ok()).collect())
}

/// Reads the response matrix (dataset `data`, TRs x voxels).
pub fn read_hf5(path: &Path) -> Result<Matrix, FormatError> {
    read_hf5_dataset(path, RESPONSE_DATASET)
}

/// Reads a 2-D (or 1-D, as one column) numeric dataset by name.
pub fn read_hf5_dataset(path: &Path, name: &str) -> Result<Matrix, FormatError> {
    let file = open(path)?;
    let dataset = match file.dataset(name) {
        Ok(ds) => ds,
        Err(_) => {
            let present =
                file.member_names().unwrap_or_default().into_iter().map(|n| format!("{n:?}")).collect::<Vec<_>>();
            let present = if present.is_empty() { "none".to_string() } else { present.join(", ") };
            return Err(FormatError::invalid(
                path,
                format!("no dataset named {name:?} (members present: {present})"),
                "LeBel response files keep TRs x voxels in a dataset named \"data\"; \
                 write the responses there or name the dataset that holds them",
            ));
        }
    };
    let descriptor = dataset.dtype().and_then(|t| t.to_descriptor()).map_err(|e| {
        FormatError::invalid(
            path,
            format!("cannot read the type of dataset {name:?} ({e})"),
            "store the responses as float32 or float64",
        )
    })?;
    match descriptor {
        TypeDescriptor::Float(_) | TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {}
        other => {
            return Err(FormatError::invalid(
                path,
                format!("dataset {name:?} holds {other:?}, not numbers"),
                "store the responses as float32 or float64",
            ))
        }
    }
    let shape = dataset.shape();
    let (rows, cols) = match shape.as_slice() {
        [r, c] => (*r, *c),
        [r] => (*r, 1),
        _ => {
            return Err(FormatError::invalid(
                path,
                format!("dataset {name:?} has shape {shape:?}, not 2-D"),
                "store the responses as a 2-D array TRs x voxels",
            ))
        }
    };
    let data: Vec<f32> = dataset.read_raw::<f32>().map_err(|e| {
        FormatError::invalid(
            path,
            format!("cannot read dataset {name:?} ({e})"),
            "the file is truncated or damaged; download or write it again",
        )
    })?;
    if data.len() != rows * cols {
        return Err(FormatError::invalid(
            path,
            format!("dataset {name:?} gave {} values for shape {rows}x{cols}", data.len()),
            "the file is damaged; download or write it again",
        ));
    }
    Ok(Matrix { rows, cols, data })
}

/// Writes `matrix` as a float32 dataset `data` (rows x cols) in a new file,
/// replacing any file at `path`.
pub fn write_hf5(path: &Path, matrix: &Matrix) -> Result<(), FormatError> {
    write_hf5_dataset(path, RESPONSE_DATASET, matrix)
}

/// Writes `matrix` as a float32 dataset `name` in a new file.
pub fn write_hf5_dataset(path: &Path, name: &str, matrix: &Matrix) -> Result<(), FormatError> {
    let fail = |what: &str, e: hdf5::Error| FormatError::write(path, std::io::Error::other(format!("{what}: {e}")));
    if matrix.data.len() != matrix.rows * matrix.cols {
        return Err(FormatError::invalid(
            path,
            format!("the matrix to write has {} values for shape {}x{}", matrix.data.len(), matrix.rows, matrix.cols),
            "build the matrix with Matrix::from_vec",
        ));
    }
    let file = hdf5::File::create(path).map_err(|e| fail("cannot create HDF5 file", e))?;
    let dataset = file
        .new_dataset::<f32>()
        .shape((matrix.rows, matrix.cols))
        .create(name)
        .map_err(|e| fail("cannot create dataset", e))?;
    dataset.write_raw(matrix.data.as_slice()).map_err(|e| fail("cannot write dataset", e))?;
    file.close().map_err(|e| fail("cannot close HDF5 file", e))
}
