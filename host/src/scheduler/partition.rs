//! Splitting a sequence over engines the way IPython Parallel does: one
//! contiguous chunk per engine, the first `len % parts` chunks one longer
//! (15 items on 8 engines → 2,2,2,2,2,2,2,1).

use std::ops::Range;

pub fn contiguous(len: usize, parts: usize) -> Vec<Range<usize>> {
    if parts == 0 {
        return Vec::new();
    }
    let base = len / parts;
    let extra = len % parts;
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    for p in 0..parts {
        let size = base + usize::from(p < extra);
        out.push(start..start + size);
        start += size;
    }
    out
}

/// Batches of `chunksize` for the load-balanced view.
pub fn batches(len: usize, chunksize: usize) -> Vec<Range<usize>> {
    let size = chunksize.max(1);
    (0..len).step_by(size).map(|s| s..(s + size).min(len)).collect()
}

/// The chunk size used when a balanced map does not give one: about eight
/// batches per engine, so engines stay busy even when items vary in cost,
/// while per-batch overhead stays small next to the calls in it; and at
/// most [`AUTOMATIC_MAX`] items, so the batches running hold little memory
/// (a batch's calls and results exist only while it runs and until its
/// answer is collected: ~120 bytes an item for small items).
pub fn automatic_chunksize(len: usize, engines: usize) -> usize {
    len.div_ceil(engines.max(1) * 8).clamp(1, AUTOMATIC_MAX)
}

/// The largest automatic batch: 65 536 calls, ~8 MB of arguments and
/// results in flight per engine, and per-batch overhead (tens of µs) still
/// nothing next to the calls in it.
pub const AUTOMATIC_MAX: usize = 1 << 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_ipython_partitioning() {
        let sizes: Vec<usize> = contiguous(15, 8).iter().map(|r| r.len()).collect();
        assert_eq!(sizes, vec![2, 2, 2, 2, 2, 2, 2, 1]);
        let sizes: Vec<usize> = contiguous(10, 8).iter().map(|r| r.len()).collect();
        assert_eq!(sizes, vec![2, 2, 1, 1, 1, 1, 1, 1]);
        assert_eq!(contiguous(3, 4).iter().map(|r| r.len()).collect::<Vec<_>>(), vec![1, 1, 1, 0]);
        assert_eq!(contiguous(24, 8)[7], 21..24);
    }

    #[test]
    fn batches_cover_everything_once() {
        let b = batches(10, 4);
        assert_eq!(b, vec![0..4, 4..8, 8..10]);
        assert_eq!(batches(0, 3), Vec::<Range<usize>>::new());
        assert_eq!(automatic_chunksize(100_000, 2), 6250);
        assert_eq!(automatic_chunksize(10_000_000, 2), AUTOMATIC_MAX);
    }
}
