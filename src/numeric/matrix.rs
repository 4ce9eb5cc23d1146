//! `Matrix`: the dense, row-major `f32` matrix that stages pass around
//! (time x features, time x voxels, features x voxels). Rows are contiguous,
//! which matches the Arrow layout of matrix artifacts (one fixed-size list
//! per row) and lets faer view it without a copy.

use faer::MatRef;
use rayon::prelude::*;

/// A dense row-major matrix of `f32`.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    pub fn zeros(rows: usize, cols: usize) -> Matrix {
        Matrix { rows, cols, data: vec![0.0; rows * cols] }
    }

    /// Panics when `data.len() != rows * cols`.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<f32>) -> Matrix {
        assert_eq!(data.len(), rows * cols, "matrix data length does not match its shape");
        Matrix { rows, cols, data }
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        let cols = self.cols;
        &mut self.data[i * cols..(i + 1) * cols]
    }

    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.cols + j]
    }

    pub fn set(&mut self, i: usize, j: usize, value: f32) {
        self.data[i * self.cols + j] = value;
    }

    /// A faer view of the same memory (row-major strides, no copy).
    pub fn as_faer(&self) -> MatRef<'_, f32> {
        MatRef::from_row_major_slice(&self.data, self.rows, self.cols)
    }

    /// Copies the rows with the given indices, in that order.
    pub fn select_rows(&self, indices: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(indices.len() * self.cols);
        for &i in indices {
            data.extend_from_slice(self.row(i));
        }
        Matrix { rows: indices.len(), cols: self.cols, data }
    }

    /// Copies a contiguous block of columns `[start, start + count)`.
    pub fn select_cols(&self, start: usize, count: usize) -> Matrix {
        let mut data = Vec::with_capacity(self.rows * count);
        for i in 0..self.rows {
            data.extend_from_slice(&self.row(i)[start..start + count]);
        }
        Matrix { rows: self.rows, cols: count, data }
    }

    /// Stacks matrices with the same number of columns on top of each other.
    pub fn vstack(parts: &[&Matrix]) -> Matrix {
        let cols = parts.first().map_or(0, |m| m.cols);
        let mut data = Vec::with_capacity(parts.iter().map(|m| m.data.len()).sum());
        for part in parts {
            assert_eq!(part.cols, cols, "vstack of matrices with different widths");
            data.extend_from_slice(&part.data);
        }
        Matrix { rows: data.len() / cols.max(1), cols, data }
    }

    /// Places matrices with the same number of rows side by side.
    pub fn hstack(parts: &[&Matrix]) -> Matrix {
        let rows = parts.first().map_or(0, |m| m.rows);
        let cols: usize = parts.iter().map(|m| m.cols).sum();
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for part in parts {
                assert_eq!(part.rows, rows, "hstack of matrices with different heights");
                data.extend_from_slice(part.row(i));
            }
        }
        Matrix { rows, cols, data }
    }
}

/// The position of the first NaN or infinity. Chunks are scanned in
/// parallel with a loop that vectorises (rayon's `position_first` checks a
/// shared atomic per element: 0.74 s on 70 million values, against 0.02 s),
/// and only a chunk that has one is searched element by element.
pub fn first_non_finite(data: &[f32]) -> Option<usize> {
    const CHUNK: usize = 1 << 16;
    let chunk =
        data.par_chunks(CHUNK).position_first(|chunk| !chunk.iter().fold(true, |all, v| all & v.is_finite()))?;
    let start = chunk * CHUNK;
    data[start..].iter().position(|v| !v.is_finite()).map(|i| start + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn the_first_non_finite_value_is_found_across_chunks() {
        let mut rng = crate::testing::fresh_rng("the_first_non_finite_value_is_found_across_chunks");
        let len = 5 * (1 << 16) + rng.random_range(0..1000);
        let mut data: Vec<f32> = (0..len).map(|_| rng.random::<f32>() - 0.5).collect();
        assert_eq!(first_non_finite(&data), None);
        assert_eq!(first_non_finite(&[]), None);
        for _ in 0..20 {
            let mut marked = data.clone();
            let count = rng.random_range(1..4);
            for _ in 0..count {
                let bad = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][rng.random_range(0..3)];
                // Near a chunk boundary half of the time.
                let at = if rng.random::<bool>() {
                    (rng.random_range(1..5) << 16) - rng.random_range(0..2)
                } else {
                    rng.random_range(0..len)
                };
                marked[at] = bad;
            }
            assert_eq!(first_non_finite(&marked), marked.iter().position(|v| !v.is_finite()));
        }
        data[len - 1] = f32::NAN;
        assert_eq!(first_non_finite(&data), Some(len - 1));
    }
}
