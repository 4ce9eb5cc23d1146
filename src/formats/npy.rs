//! NumPy `.npy` files (format version 1.0/2.0/3.0): read 1-D/2-D arrays of
//! float32, float64, int32, int64 (little- or big-endian, C or Fortran order)
//! into a [`Matrix`], and write a [`Matrix`] as little-endian float32.
//! Users bring responses and features as `.npy`; tests use it to hand data
//! to the Python reference implementations.

use std::io::Write;
use std::path::Path;

use crate::numeric::Matrix;

#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a .npy file: {reason}")]
    Format { path: String, reason: String },
}

/// Reads a 1-D (as one column) or 2-D array.
pub fn read_npy(path: &Path) -> Result<Matrix, NpyError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io { path: shown.clone(), source })?;
    parse_npy(&bytes).map_err(|reason| NpyError::Format { path: shown, reason })
}

/// Writes a 2-D little-endian float32 array, C order, atomically enough for
/// tests (plain write).
pub fn write_npy(path: &Path, matrix: &Matrix) -> Result<(), NpyError> {
    let shown = path.display().to_string();
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", matrix.rows, matrix.cols);
    // magic (6) + version (2) + header length (2) + header + '\n', padded to 64.
    let unpadded = 10 + header.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    header.push_str(&" ".repeat(padding));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + matrix.data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for value in &matrix.data {
        out.extend_from_slice(&value.to_le_bytes());
    }
    std::fs::File::create(path)
        .and_then(|mut file| file.write_all(&out))
        .map_err(|source| NpyError::Io { path: shown, source })
}

fn parse_npy(bytes: &[u8]) -> Result<Matrix, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("missing the \\x93NUMPY magic string".into());
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated header".into());
            }
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        other => return Err(format!("unsupported format version {other}")),
    };
    let header_end = header_start + header_len;
    let header = std::str::from_utf8(bytes.get(header_start..header_end).ok_or("truncated header")?)
        .map_err(|_| "header is not text")?;
    let descr = dict_value(header, "descr").ok_or("header has no 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(header, "fortran_order").ok_or("header has no 'fortran_order'")? == "True";
    let shape_text = dict_value(header, "shape").ok_or("header has no 'shape'")?;
    let shape: Vec<usize> = shape_text
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape {shape_text}")))
        .collect::<Result<_, _>>()?;
    let (rows, cols) = match shape.as_slice() {
        [n] => (*n, 1),
        [r, c] => (*r, *c),
        other => return Err(format!("expected a 1-D or 2-D array, found shape {other:?}")),
    };
    let (big_endian, kind) = descr.split_at(1);
    let big_endian = match big_endian {
        "<" | "|" | "=" => false,
        ">" => true,
        _ => return Err(format!("unsupported dtype {descr}")),
    };
    let width = match kind {
        "f4" | "i4" => 4,
        "f8" | "i8" => 8,
        _ => return Err(format!("unsupported dtype {descr}: use float32, float64, int32 or int64")),
    };
    let body = &bytes[header_end..];
    let count = rows * cols;
    if body.len() < count * width {
        return Err(format!("data is truncated: {} bytes for shape {shape:?} of {descr}", body.len()));
    }
    let mut values = Vec::with_capacity(count);
    for chunk in body[..count * width].chunks_exact(width) {
        let mut raw = [0u8; 8];
        raw[..width].copy_from_slice(chunk);
        if big_endian {
            raw[..width].reverse();
        }
        let value = match kind {
            "f4" => f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]),
            "i4" => i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as f32,
            "f8" => f64::from_le_bytes(raw) as f32,
            _ => i64::from_le_bytes(raw) as f32,
        };
        values.push(value);
    }
    if fortran && rows > 1 && cols > 1 {
        let mut c_order = vec![0.0f32; count];
        for j in 0..cols {
            for i in 0..rows {
                c_order[i * cols + j] = values[j * rows + i];
            }
        }
        values = c_order;
    }
    Ok(Matrix::from_vec(rows, cols, values))
}

fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') { rest.find(')')? + 1 } else { rest.find([',', '}'])? };
    Some(rest[..end].trim())
}
