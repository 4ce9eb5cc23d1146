//! `Matrix`: the dense, row-major `f32` matrix that stages pass around
//! (time x features, time x voxels, features x voxels). Rows are contiguous,
//! which matches the Arrow layout of matrix artifacts (one fixed-size list
//! per row) and lets faer view it without a copy.

use faer::MatRef;

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
