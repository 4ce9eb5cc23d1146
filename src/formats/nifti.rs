//! NIfTI-1 images (`.nii`, `.nii.gz`): a 4-D BOLD image and a 3-D mask
//! become a [`Matrix`] time x voxels-inside-the-mask.
//!
//! Voxel (column) order: C order over `(x, y, z)` of the mask, i.e. `x`
//! slowest and `z` fastest; column `k` is the `k`-th nonzero mask voxel in
//! that order. This is the order of nibabel/nilearn
//! `img.get_fdata()[mask.get_fdata() != 0]` (`NiftiMasker`, `apply_mask`),
//! so matrices and weight maps line up with Python tools. (The file itself
//! stores voxels in Fortran order, `x` fastest; pycortex-style `(z, y, x)`
//! arrays masked in C order use that Fortran order instead.) [`Mask::inside`]
//! is stored in the same C order.
//!
//! A mask voxel is inside when its value is nonzero and not NaN; any
//! datatype works. A 4-D mask whose 4th dimension is 1 is taken as 3-D. A
//! 3-D image is read as a single time point. `scl_slope`/`scl_inter` are
//! applied.
//!
//! Reading uses the `nifti` crate (0.18): it parses the header (either byte
//! order), handles gzip and the datatypes, and streams the image one
//! volume at a time, so memory holds one volume plus the output. Writing
//! is done here (a 352-byte NIfTI-1 single-file header plus little-endian
//! data, gzip by `flate2` for `.gz`), because the crate's writer takes
//! `ndarray` arrays and would make `ndarray` a direct dependency; the tests
//! read these files back with the crate, which checks the writer against an
//! independent reader.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

use nifti::{IntoNdArray, NiftiObject, ReaderOptions, ReaderStreamedOptions};

use crate::formats::error::FormatError;
use crate::numeric::Matrix;

/// A 3-D brain mask.
#[derive(Clone, Debug, PartialEq)]
pub struct Mask {
    /// `[nx, ny, nz]`.
    pub shape: [usize; 3],
    /// One flag per voxel, C order: index `(x * ny + y) * nz + z`.
    pub inside: Vec<bool>,
}

impl Mask {
    /// Panics when `inside.len()` is not the product of `shape`.
    pub fn new(shape: [usize; 3], inside: Vec<bool>) -> Mask {
        assert_eq!(inside.len(), shape[0] * shape[1] * shape[2], "mask length does not match shape");
        Mask { shape, inside }
    }

    /// The number of voxels inside the mask (the matrix width).
    pub fn count(&self) -> usize {
        self.inside.iter().filter(|&&b| b).count()
    }

    /// Whether voxel `(x, y, z)` is inside.
    pub fn contains(&self, x: usize, y: usize, z: usize) -> bool {
        self.inside[(x * self.shape[1] + y) * self.shape[2] + z]
    }

    /// For each inside voxel in column order, its offset in the file's
    /// Fortran-ordered volume (`x + nx * (y + ny * z)`).
    fn fortran_offsets(&self) -> Vec<usize> {
        let [nx, ny, nz] = self.shape;
        let mut out = Vec::with_capacity(self.count());
        for x in 0..nx {
            for y in 0..ny {
                for z in 0..nz {
                    if self.inside[(x * ny + y) * nz + z] {
                        out.push(x + nx * (y + ny * z));
                    }
                }
            }
        }
        out
    }
}

/// Shape and timing from a NIfTI header.
#[derive(Clone, Debug, PartialEq)]
pub struct NiftiInfo {
    /// `dim[1..=dim[0]]`.
    pub dims: Vec<usize>,
    /// `pixdim[4]` in seconds when the image is 4-D and the time unit is
    /// seconds, milliseconds or microseconds (or unset, taken as seconds).
    pub tr_seconds: Option<f64>,
}

fn check_readable(path: &Path) -> Result<(), FormatError> {
    std::fs::File::open(path).map(|_| ()).map_err(|e| FormatError::read(path, e))
}

fn nifti_error(path: &Path, e: nifti::NiftiError) -> FormatError {
    let (message, hint) = match &e {
        nifti::NiftiError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            (format!("the file ends early ({io})"), "the file is truncated; download or write it again")
        }
        nifti::NiftiError::IncompatibleLength(got, want) => (
            format!("the image data is {got} bytes, the header promises {want}"),
            "the file is truncated; download or write it again",
        ),
        nifti::NiftiError::InvalidFormat => (
            "not a NIfTI-1 file (bad header size or magic)".to_string(),
            "pass a NIfTI-1 .nii or .nii.gz file (NIfTI-2 and ANALYZE are not read)",
        ),
        nifti::NiftiError::UnsupportedDataType(t) => (
            format!("unsupported voxel type {t:?}"),
            "convert the image to float32 (e.g. with nibabel or fslmaths -odt float)",
        ),
        _ => (format!("cannot read the NIfTI file ({e})"), "check that it is a valid NIfTI-1 image"),
    };
    FormatError::invalid(path, message, hint)
}

/// Reads the header's dimensions and TR.
pub fn read_nifti_info(path: &Path) -> Result<NiftiInfo, FormatError> {
    check_readable(path)?;
    let obj = ReaderStreamedOptions::new().read_file(path).map_err(|e| nifti_error(path, e))?;
    let header = obj.header();
    let dims: Vec<usize> = header.dim().map_err(|e| nifti_error(path, e))?.iter().map(|&d| d as usize).collect();
    let scale = match header.xyzt_units & 0x38 {
        0 | 8 => Some(1.0),
        16 => Some(1e-3),
        24 => Some(1e-6),
        _ => None,
    };
    let tr_seconds =
        if dims.len() >= 4 && header.pixdim[4] > 0.0 { scale.map(|s| f64::from(header.pixdim[4]) * s) } else { None };
    Ok(NiftiInfo { dims, tr_seconds })
}

/// A volume's voxels as `f32` in the file's Fortran order.
fn fortran_values(path: &Path, volume: nifti::InMemNiftiVolume) -> Result<Vec<f32>, FormatError> {
    let array = volume.into_ndarray::<f32>().map_err(|e| nifti_error(path, e))?;
    let transposed = array.t();
    let values = match transposed.as_slice() {
        Some(slice) => Cow::Borrowed(slice),
        None => Cow::Owned(transposed.iter().copied().collect()),
    };
    Ok(values.into_owned())
}

/// Reads a 3-D mask (nonzero and not NaN = inside).
pub fn read_mask(path: &Path) -> Result<Mask, FormatError> {
    check_readable(path)?;
    let obj = ReaderOptions::new().read_file(path).map_err(|e| nifti_error(path, e))?;
    let dims: Vec<usize> = obj.header().dim().map_err(|e| nifti_error(path, e))?.iter().map(|&d| d as usize).collect();
    let shape = match dims.as_slice() {
        [nx, ny, nz] | [nx, ny, nz, 1] => [*nx, *ny, *nz],
        _ => {
            return Err(FormatError::invalid(
                path,
                format!("the mask has shape {dims:?}, not 3-D"),
                "pass a 3-D mask image with the spatial shape of the BOLD image",
            ))
        }
    };
    let values = fortran_values(path, obj.into_volume())?;
    let [nx, ny, nz] = shape;
    let mut inside = Vec::with_capacity(nx * ny * nz);
    for x in 0..nx {
        for y in 0..ny {
            for z in 0..nz {
                let v = values[x + nx * (y + ny * z)];
                inside.push(v != 0.0 && !v.is_nan());
            }
        }
    }
    let mask = Mask { shape, inside };
    if mask.count() == 0 {
        return Err(FormatError::invalid(
            path,
            "the mask has no voxel inside (all zero)",
            "pass a mask with nonzero voxels where the brain is",
        ));
    }
    Ok(mask)
}

/// Reads a 4-D (or 3-D) image and keeps the voxels inside the mask file:
/// a matrix time x mask voxels, columns in the mask's C order.
pub fn read_masked(image: &Path, mask: &Path) -> Result<Matrix, FormatError> {
    let m = read_mask(mask)?;
    read_masked_with(image, &m, mask)
}

/// Like [`read_masked`] with a mask already in memory; `mask_path` is only
/// named in the error when the shapes differ.
pub fn read_masked_with(image: &Path, mask: &Mask, mask_path: &Path) -> Result<Matrix, FormatError> {
    check_readable(image)?;
    let obj = ReaderStreamedOptions::new().read_file(image).map_err(|e| nifti_error(image, e))?;
    let dims: Vec<usize> = obj.header().dim().map_err(|e| nifti_error(image, e))?.iter().map(|&d| d as usize).collect();
    let (shape, n_t) = match dims.as_slice() {
        [nx, ny, nz] => ([*nx, *ny, *nz], 1),
        [nx, ny, nz, nt] => ([*nx, *ny, *nz], *nt),
        _ => {
            return Err(FormatError::invalid(
                image,
                format!("the image has shape {dims:?}, not 4-D (x, y, z, time)"),
                "pass a 4-D BOLD image",
            ))
        }
    };
    if shape != mask.shape {
        return Err(FormatError::invalid(
            image,
            format!(
                "the image's spatial shape {:?} differs from the mask {} shape {:?}",
                shape,
                mask_path.display(),
                mask.shape
            ),
            "use a mask in the image's space (resample it to the BOLD grid)",
        ));
    }
    let offsets = mask.fortran_offsets();
    let cols = offsets.len();
    let mut data = Vec::with_capacity(n_t * cols);
    let mut push_volume = |values: Vec<f32>| {
        data.extend(offsets.iter().map(|&o| values[o]));
    };
    if dims.len() == 3 {
        let obj = ReaderOptions::new().read_file(image).map_err(|e| nifti_error(image, e))?;
        push_volume(fortran_values(image, obj.into_volume())?);
    } else {
        for (t, volume) in obj.into_volume().enumerate() {
            let volume = volume.map_err(|e| {
                let inner = nifti_error(image, e);
                FormatError::invalid(
                    image,
                    format!("volume {} of {n_t}: {}", t + 1, inner_message(&inner)),
                    "the file is truncated or damaged; download or write it again",
                )
            })?;
            push_volume(fortran_values(image, volume)?);
        }
    }
    if data.len() != n_t * cols {
        return Err(FormatError::invalid(
            image,
            format!("read {} volumes, the header promises {n_t}", data.len() / cols.max(1)),
            "the file is truncated; download or write it again",
        ));
    }
    Ok(Matrix { rows: n_t, cols, data })
}

fn inner_message(e: &FormatError) -> String {
    match e {
        FormatError::Invalid { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

const NIFTI_UINT8: i16 = 2;
const NIFTI_FLOAT32: i16 = 16;

/// A NIfTI-1 single-file header (348 bytes) plus the empty extension flag,
/// little-endian, 1 mm voxels, identity sform.
fn header_bytes(dims: &[usize], datatype: i16, bitpix: i16, tr_seconds: f32) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    let put_i16 = |h: &mut [u8], at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut [u8], at: usize, v: f32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    h[38] = b'r';
    put_i16(&mut h, 40, dims.len() as i16);
    for i in 0..7 {
        put_i16(&mut h, 42 + 2 * i, dims.get(i).map_or(1, |&d| d as i16));
    }
    put_i16(&mut h, 70, datatype);
    put_i16(&mut h, 72, bitpix);
    let pixdim = [1.0f32, 1.0, 1.0, 1.0, tr_seconds, 0.0, 0.0, 0.0];
    for (i, v) in pixdim.iter().enumerate() {
        put_f32(&mut h, 76 + 4 * i, *v);
    }
    put_f32(&mut h, 108, 352.0); // vox_offset
    put_f32(&mut h, 112, 1.0); // scl_slope
    h[123] = 2 | 8; // xyzt_units: mm, s
    put_i16(&mut h, 254, 1); // sform_code: scanner
    for (row, at) in [280usize, 296, 312].iter().enumerate() {
        put_f32(&mut h, at + 4 * row, 1.0);
    }
    h[344..348].copy_from_slice(b"n+1\0");
    h
}

fn check_dims(path: &Path, dims: &[usize]) -> Result<(), FormatError> {
    if let Some(d) = dims.iter().find(|&&d| d == 0 || d > i16::MAX as usize) {
        return Err(FormatError::invalid(
            path,
            format!("dimension {d} in {dims:?} cannot be stored in NIfTI-1 (1..=32767)"),
            "write a smaller image",
        ));
    }
    Ok(())
}

fn write_file(path: &Path, header: &[u8], body: &[u8]) -> Result<(), FormatError> {
    let gz = path.to_string_lossy().ends_with(".gz");
    let file = std::fs::File::create(path).map_err(|e| FormatError::write(path, e))?;
    let result = if gz {
        let mut enc = flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
        enc.write_all(header).and_then(|_| enc.write_all(body)).and_then(|_| enc.finish()).and_then(|mut w| w.flush())
    } else {
        let mut w = std::io::BufWriter::new(file);
        w.write_all(header).and_then(|_| w.write_all(body)).and_then(|_| w.flush())
    };
    result.map_err(|e| FormatError::write(path, e))
}

/// Writes a mask as a 3-D uint8 image (1 inside, 0 outside); `.gz` paths are
/// gzip-compressed.
pub fn write_mask(path: &Path, mask: &Mask) -> Result<(), FormatError> {
    check_dims(path, &mask.shape)?;
    let [nx, ny, nz] = mask.shape;
    let mut body = vec![0u8; nx * ny * nz];
    for x in 0..nx {
        for y in 0..ny {
            for z in 0..nz {
                body[x + nx * (y + ny * z)] = u8::from(mask.contains(x, y, z));
            }
        }
    }
    write_file(path, &header_bytes(&mask.shape, NIFTI_UINT8, 8, 0.0), &body)
}

/// Writes `matrix` (time x mask voxels, columns in the mask's C order) as a
/// 4-D float32 image with zeros outside the mask and `pixdim[4] =
/// tr_seconds`; `.gz` paths are gzip-compressed.
pub fn write_masked(path: &Path, matrix: &Matrix, mask: &Mask, tr_seconds: f64) -> Result<(), FormatError> {
    let offsets = mask.fortran_offsets();
    if matrix.cols != offsets.len() || matrix.data.len() != matrix.rows * matrix.cols {
        return Err(FormatError::invalid(
            path,
            format!("the matrix has {} columns, the mask has {} voxels inside", matrix.cols, offsets.len()),
            "pass a matrix with one column per mask voxel",
        ));
    }
    let [nx, ny, nz] = mask.shape;
    let dims = [nx, ny, nz, matrix.rows];
    check_dims(path, &dims)?;
    let n_vox = nx * ny * nz;
    let mut body = Vec::with_capacity(matrix.rows * n_vox * 4);
    let mut volume = vec![0f32; n_vox];
    for t in 0..matrix.rows {
        for (value, &o) in matrix.row(t).iter().zip(&offsets) {
            volume[o] = *value;
        }
        body.extend(volume.iter().flat_map(|v| v.to_le_bytes()));
    }
    write_file(path, &header_bytes(&dims, NIFTI_FLOAT32, 32, tr_seconds as f32), &body)
}
