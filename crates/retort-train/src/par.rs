//! The trainer's own parallel loops, on candle's worker threads.
//!
//! candle runs its elementwise ops on a pool of its own (a barrier pool whose idle workers
//! spin before they park). Running the fused ops on a second pool (rayon's) put two sets of
//! spinning threads on the same cores: on 2 cores the trainer lost a fifth of its speed to
//! them. So every parallel loop of the trainer runs on candle's pool.

use std::sync::Mutex;

/// Calls `f(i, &mut chunks[i])` for every chunk, in parallel on candle's pool.
fn for_each<T: Send>(chunks: Vec<T>, f: impl Fn(usize, &mut T) + Sync) {
    let chunks: Vec<Mutex<T>> = chunks.into_iter().map(Mutex::new).collect();
    candle_core::utils::barrier_pool().execute_chunked(chunks.len(), |range| {
        for i in range {
            f(i, &mut chunks[i].lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        }
    });
}

/// Calls `f(i, chunk)` for each `per`-sized chunk `i` of `out`, in parallel.
pub(crate) fn for_chunks(out: &mut [f32], per: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    for_each(out.chunks_mut(per.max(1)).collect(), |i, chunk| f(i, chunk));
}

/// [`for_chunks`] over two outputs of the same length at once.
pub(crate) fn for_chunks2(a: &mut [f32], b: &mut [f32], per: usize, f: impl Fn(usize, &mut [f32], &mut [f32]) + Sync) {
    assert_eq!(a.len(), b.len(), "for_chunks2: outputs of different lengths");
    for_each(a.chunks_mut(per.max(1)).zip(b.chunks_mut(per.max(1))).collect(), |i, (a, b)| f(i, a, b));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_is_visited_once_with_its_index() {
        let mut out = vec![0f32; 10];
        for_chunks(&mut out, 3, |i, chunk| chunk.iter_mut().for_each(|x| *x += 1.0 + i as f32));
        assert_eq!(out, vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0]);
        let (mut a, mut b) = (vec![0f32; 4], vec![0f32; 4]);
        for_chunks2(&mut a, &mut b, 2, |i, a, b| {
            a.fill(i as f32);
            b.fill(-(i as f32));
        });
        assert_eq!((a, b), (vec![0.0, 0.0, 1.0, 1.0], vec![0.0, 0.0, -1.0, -1.0]));
    }
}
