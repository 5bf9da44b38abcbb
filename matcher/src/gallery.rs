//! A gallery as one contiguous row-major matrix of quantised templates, and
//! the plaintext scan over it: the reference the encrypted path is measured
//! against, made as fast as this machine allows (SIMD chosen at run time by
//! `pulp`, rows split across the rayon pool).

use rayon::prelude::*;

#[derive(Clone, PartialEq, Eq)]
pub struct Gallery {
    dim: usize,
    rows: Vec<i8>,
}

impl std::fmt::Debug for Gallery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gallery({} x {})", self.len(), self.dim)
    }
}

impl Gallery {
    /// `rows` holds `len × dim` values; panics if it is not a whole number of rows.
    pub fn new(dim: usize, rows: Vec<i8>) -> Self {
        assert!(dim > 0 && rows.len().is_multiple_of(dim), "gallery rows must be whole");
        Self { dim, rows }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.rows.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn row(&self, i: usize) -> &[i8] {
        &self.rows[i * self.dim..(i + 1) * self.dim]
    }

    /// `len` consecutive rows from `start`, contiguous.
    pub fn rows(&self, start: usize, len: usize) -> &[i8] {
        &self.rows[start * self.dim..(start + len) * self.dim]
    }

    /// Largest Euclidean norm of a row.
    pub fn max_norm(&self) -> f64 {
        self.rows
            .par_chunks(self.dim)
            .map(|r| r.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt())
            .reduce(|| 0.0, f64::max)
    }
}

/// Integer inner product, vectorised for the best instruction set present.
pub fn dot(a: &[i8], b: &[i8]) -> i32 {
    pulp::Arch::new().dispatch(|| a.iter().zip(b).map(|(x, y)| *x as i16 as i32 * *y as i16 as i32).sum())
}

/// Plaintext scan: for each row, whether `⟨probe, row⟩ ≥ threshold`.
pub fn scan(gallery: &Gallery, probe: &[i8], threshold: i32) -> Vec<bool> {
    assert_eq!(probe.len(), gallery.dim, "probe and gallery dimensions differ");
    let d = gallery.dim;
    let mut out = vec![false; gallery.len()];
    out.par_chunks_mut(4096).zip(gallery.rows.par_chunks(4096 * d)).for_each(|(out, rows)| {
        pulp::Arch::new().dispatch(|| {
            for (o, r) in out.iter_mut().zip(rows.chunks_exact(d)) {
                let s: i32 = r.iter().zip(probe).map(|(x, y)| *x as i16 as i32 * *y as i16 as i32).sum();
                *o = s >= threshold;
            }
        })
    });
    out
}
