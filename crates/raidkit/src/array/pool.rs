//! Reused stripe buffers: chunk-sized buffers are allocated once and handed out again, so
//! the data path does not fault in and zero fresh memory for every stripe.
//!
//! Owns reusable buffers and nothing else.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use crate::disk::AlignedBuf;

/// Bytes the pool keeps at most; buffers returned beyond that are freed.
const KEEP: usize = 64 << 20;

/// Free buffers by length.
#[derive(Debug, Default)]
pub(crate) struct BufPool {
    free: Mutex<(HashMap<usize, Vec<AlignedBuf>>, usize)>,
}

impl BufPool {
    /// A buffer of `len` bytes, aligned to 4096. Its contents are unspecified (a reused
    /// buffer keeps old bytes): callers fill it before using it.
    pub fn take(&self, len: usize) -> PoolBuf<'_> {
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            let buf = free.0.get_mut(&len).and_then(|list| list.pop());
            if buf.is_some() {
                free.1 -= len;
            }
            buf
        };
        PoolBuf {
            buf: Some(reused.unwrap_or_else(|| AlignedBuf::new(len))),
            pool: self,
        }
    }

    /// Takes a buffer back. When the pool is full, buffers of other sizes make room (the
    /// sizes in use change: stripe-sized for requests, larger for scrub and rebuild spans).
    fn give(&self, buf: AlignedBuf) {
        let len = buf.len();
        if len > KEEP {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while free.1 + len > KEEP {
            let other = free
                .0
                .iter_mut()
                .find(|(size, list)| **size != len && !list.is_empty())
                .map(|(size, list)| (*size, list.pop()));
            match other {
                Some((size, Some(_dropped))) => free.1 -= size,
                _ => return,
            }
        }
        free.1 += len;
        free.0.entry(len).or_default().push(buf);
    }
}

/// A buffer on loan from a [`BufPool`]; it goes back on drop.
#[derive(Debug)]
pub(crate) struct PoolBuf<'a> {
    buf: Option<AlignedBuf>,
    pool: &'a BufPool,
}

impl Deref for PoolBuf<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buf.as_deref().expect("a loaned buffer")
    }
}

impl DerefMut for PoolBuf<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.buf.as_deref_mut().expect("a loaned buffer")
    }
}

impl Drop for PoolBuf<'_> {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.pool.give(buf);
        }
    }
}
