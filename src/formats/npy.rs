//! NumPy `.npy` files (format version 1.0/2.0/3.0): read 1-D/2-D arrays of
//! float32, float64, int32, int64 (little- or big-endian, C or Fortran order)
//! into a [`Matrix`], and write a [`Matrix`] as little-endian float32.
//! Users bring responses and features as `.npy`; tests use it to hand data
//! to the Python reference implementations.

use std::io::{Read, Write};
use std::path::Path;

use crate::numeric::Matrix;

#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a .npy file: {reason}")]
    Format { path: String, reason: String },
}

/// Reads a 1-D (as one column) or 2-D array. The body is converted in
/// chunks straight into the matrix, so reading holds the matrix and one
/// chunk, not a second copy of the file.
pub fn read_npy(path: &Path) -> Result<Matrix, NpyError> {
    let shown = path.display().to_string();
    let io = |source| NpyError::Io { path: shown.clone(), source };
    let format = |reason| NpyError::Format { path: shown.clone(), reason };
    let file = std::fs::File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut reader = std::io::BufReader::new(file);
    let header = read_header(&mut reader).map_err(format)?;
    let body_len = file_len.saturating_sub(header.offset as u64);
    if body_len < (header.rows * header.cols * header.width) as u64 {
        return Err(format(format!(
            "data is truncated: {body_len} bytes for shape {:?} of {}",
            header.shape, header.descr
        )));
    }
    read_body(&mut reader, &header).map_err(io)
}

/// What the header says, and where the data starts.
struct Header {
    descr: String,
    shape: Vec<usize>,
    rows: usize,
    cols: usize,
    big_endian: bool,
    width: usize,
    fortran: bool,
    /// Bytes before the data.
    offset: usize,
}

fn read_header(reader: &mut impl Read) -> Result<Header, String> {
    let no_magic = || "missing the \\x93NUMPY magic string".to_string();
    let mut preamble = [0u8; 8];
    reader.read_exact(&mut preamble).map_err(|_| no_magic())?;
    if &preamble[..6] != b"\x93NUMPY" {
        return Err(no_magic());
    }
    let (header_len, header_start) = match preamble[6] {
        1 => {
            let mut len = [0u8; 2];
            reader.read_exact(&mut len).map_err(|_| "truncated header")?;
            (u16::from_le_bytes(len) as usize, 10)
        }
        2 | 3 => {
            let mut len = [0u8; 4];
            reader.read_exact(&mut len).map_err(|_| "truncated header")?;
            (u32::from_le_bytes(len) as usize, 12)
        }
        other => return Err(format!("unsupported format version {other}")),
    };
    let mut header = vec![0u8; header_len];
    reader.read_exact(&mut header).map_err(|_| "truncated header")?;
    let header = String::from_utf8(header).map_err(|_| "header is not text")?;
    let descr = dict_value(&header, "descr").ok_or("header has no 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"').to_string();
    let fortran = dict_value(&header, "fortran_order").ok_or("header has no 'fortran_order'")? == "True";
    let shape_text = dict_value(&header, "shape").ok_or("header has no 'shape'")?;
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
    let big_endian = match descr.get(..1) {
        Some("<" | "|" | "=") => false,
        Some(">") => true,
        _ => return Err(format!("unsupported dtype {descr}")),
    };
    let width = match &descr[1..] {
        "f4" | "i4" => 4,
        "f8" | "i8" => 8,
        _ => return Err(format!("unsupported dtype {descr}: use float32, float64, int32 or int64")),
    };
    Ok(Header { descr, shape, rows, cols, big_endian, width, fortran, offset: header_start + header_len })
}

/// The data, converted to f32 a chunk at a time; Fortran order is scattered
/// into C order as it is read.
fn read_body(reader: &mut impl Read, header: &Header) -> std::io::Result<Matrix> {
    let (rows, cols, width) = (header.rows, header.cols, header.width);
    let count = rows * cols;
    // One conversion per dtype, chosen once (not per element).
    let convert: fn(&[u8], bool) -> f32 = match &header.descr[1..] {
        "f4" => |b, swap| f32::from_bits(word32(b, swap)),
        "i4" => |b, swap| word32(b, swap) as i32 as f32,
        "f8" => |b, swap| f64::from_bits(word64(b, swap)) as f32,
        _ => |b, swap| word64(b, swap) as i64 as f32,
    };
    let scatter = header.fortran && rows > 1 && cols > 1;
    let mut values = vec![0.0f32; count];
    let mut buffer = vec![0u8; (1 << 20) * width];
    let mut done = 0;
    while done < count {
        let n = (count - done).min(buffer.len() / width);
        let bytes = &mut buffer[..n * width];
        reader.read_exact(bytes)?;
        for (k, chunk) in bytes.chunks_exact(width).enumerate() {
            let index = done + k;
            let target = if scatter { (index % rows) * cols + index / rows } else { index };
            values[target] = convert(chunk, header.big_endian);
        }
        done += n;
    }
    Ok(Matrix::from_vec(rows, cols, values))
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
    let write = || -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        out.write_all(b"\x93NUMPY\x01\x00")?;
        out.write_all(&(header.len() as u16).to_le_bytes())?;
        out.write_all(header.as_bytes())?;
        for value in &matrix.data {
            out.write_all(&value.to_le_bytes())?;
        }
        out.flush()
    };
    write().map_err(|source| NpyError::Io { path: shown, source })
}

fn word32(bytes: &[u8], big_endian: bool) -> u32 {
    let raw = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if big_endian {
        u32::from_be_bytes(raw)
    } else {
        u32::from_le_bytes(raw)
    }
}

fn word64(bytes: &[u8], big_endian: bool) -> u64 {
    let raw: [u8; 8] = bytes[..8].try_into().expect("8 bytes");
    if big_endian {
        u64::from_be_bytes(raw)
    } else {
        u64::from_le_bytes(raw)
    }
}

fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') { rest.find(')')? + 1 } else { rest.find([',', '}'])? };
    Some(rest[..end].trim())
}
