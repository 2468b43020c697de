//! Per-call resource caps: linear memory (summed over every memory of the
//! store), instance/memory/table counts, and captured output.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Table elements a plugin may have in all its tables together (host
/// memory, 8–16 bytes each, not counted in linear memory): generous for
/// real code, small enough that 64 tables cannot reach 64 × this.
pub const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Core instances, memories and tables per store: a component built by a
/// normal toolchain has a handful; a hostile one must not multiply the cap.
const MAX_INSTANCES: usize = 64;
const MAX_MEMORIES: usize = 8;
const MAX_TABLES: usize = 64;

/// Caps the store's linear memory in total and records the first refusal,
/// so a failed call can say "memory limit" instead of the guest's abort.
#[derive(Debug, Clone)]
pub struct MemoryLimiter {
    max_bytes: usize,
    total: usize,
    refused: Option<usize>,
    refused_initial: bool,
    table_elements: usize,
    tables_refused: Option<usize>,
}

impl MemoryLimiter {
    /// A limiter allowing at most `max_bytes` of linear memory in the store.
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes, total: 0, refused: None, refused_initial: false, table_elements: 0, tables_refused: None }
    }

    /// The store-wide total a refused growth would have reached, if any
    /// growth was refused.
    pub fn refused(&self) -> Option<usize> {
        self.refused
    }

    /// Whether the first refusal was a memory's initial size (the plugin
    /// could not even start), not a growth.
    pub fn refused_initial(&self) -> bool {
        self.refused_initial
    }

    /// The store-wide table element total a refused table growth would
    /// have reached, if any was refused.
    pub fn tables_refused(&self) -> Option<usize> {
        self.tables_refused
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total.saturating_sub(current).saturating_add(desired);
        if total > self.max_bytes {
            // Refuse (memory.grow returns -1) rather than trap: a guest may
            // cope; if it aborts instead, the call error names the cap.
            if self.refused.is_none() {
                // A memory being created (current 0) asks for its initial size.
                self.refused_initial = current == 0;
            }
            self.refused.get_or_insert(total);
            return Ok(false);
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.table_elements.saturating_sub(current).saturating_add(desired);
        if total > MAX_TABLE_ELEMENTS {
            self.tables_refused.get_or_insert(total);
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// A plugin's stdout or stderr: keeps the first half of `cap` bytes and the
/// last half, dropping the middle, so a chatty plugin neither fails its
/// writes nor grows host memory, and the end (where a traceback is) is kept.
#[derive(Debug, Clone)]
pub struct CappedOutput {
    cap: usize,
    kept: Arc<Mutex<Kept>>,
}

#[derive(Debug, Default)]
struct Kept {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    dropped: usize,
}

impl CappedOutput {
    /// Keeps at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self { cap, kept: Arc::default() }
    }

    /// What was kept, lossily decoded; a dropped middle is marked.
    pub fn contents(&self) -> String {
        let kept = self.kept.lock().unwrap();
        let mut bytes = kept.head.clone();
        if kept.dropped > 0 {
            bytes.extend_from_slice(format!("\n[... {} bytes not kept ...]\n", kept.dropped).as_bytes());
        }
        bytes.extend(kept.tail.iter());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn write(&self, mut buf: &[u8]) {
        let mut kept = self.kept.lock().unwrap();
        let head_cap = self.cap / 2;
        let room = head_cap.saturating_sub(kept.head.len());
        let (into_head, rest) = buf.split_at(buf.len().min(room));
        kept.head.extend_from_slice(into_head);
        buf = rest;
        let tail_cap = self.cap - head_cap;
        if buf.len() > tail_cap {
            kept.dropped += buf.len() - tail_cap + kept.tail.len();
            kept.tail.clear();
            buf = &buf[buf.len() - tail_cap..];
        }
        let overflow = (kept.tail.len() + buf.len()).saturating_sub(tail_cap);
        kept.tail.drain(..overflow);
        kept.dropped += overflow;
        kept.tail.extend(buf);
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for CappedOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_growth_past_the_cap_and_remembers_it() {
        let mut limiter = MemoryLimiter::new(64 << 20);
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(limiter.memory_growing(1 << 20, 64 << 20, None).unwrap());
        assert_eq!(limiter.refused(), None);
        assert!(!limiter.memory_growing(64 << 20, (64 << 20) + 65536, None).unwrap());
        assert!(!limiter.memory_growing(64 << 20, 128 << 20, None).unwrap());
        assert_eq!(limiter.refused(), Some((64 << 20) + 65536), "the first refusal is kept");
    }

    #[test]
    fn the_cap_is_for_all_memories_together() {
        let mut limiter = MemoryLimiter::new(64 << 20);
        assert!(limiter.memory_growing(0, 40 << 20, None).unwrap());
        assert!(!limiter.memory_growing(0, 40 << 20, None).unwrap(), "a second memory counts too");
        assert_eq!(limiter.refused(), Some(80 << 20));
        assert!(limiter.memory_growing(0, 24 << 20, None).unwrap());
    }

    #[tokio::test]
    async fn capped_output_keeps_the_start_and_the_end_and_accepts_everything() {
        use tokio::io::AsyncWriteExt;
        let out = CappedOutput::new(10);
        let mut writer = std::pin::Pin::from(out.async_stream());
        writer.write_all(b"hel").await.unwrap();
        assert_eq!(out.contents(), "hel");
        writer.write_all(b"lo world").await.unwrap();
        assert_eq!(out.contents(), "hello\n[... 1 bytes not kept ...]\nworld");
        writer.write_all(b"; the end").await.unwrap();
        writer.write_all(b"!").await.unwrap();
        assert_eq!(out.contents(), "hello\n[... 11 bytes not kept ...]\n end!", "the last five bytes, whatever the writes");
    }

    /// A hostile core module: four tables and `grow(n)`, which grows each of
    /// them by `n` (answering table 3's old size, or -1 if refused). Hand
    /// encoded: Rust cannot emit `table.grow`.
    const FOUR_TABLES: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f, // type 0: (i32) -> i32
        0x03, 0x02, 0x01, 0x00, // func 0: type 0
        0x04, 0x0d, 0x04, 0x70, 0x00, 0x00, 0x70, 0x00, 0x00, 0x70, 0x00, 0x00, 0x70, 0x00, 0x00, // 4 funcref tables, min 0
        0x07, 0x08, 0x01, 0x04, b'g', b'r', b'o', b'w', 0x00, 0x00, // export "grow"
        0x0a, 0x23, 0x01, 0x21, 0x00, // code: one body of 33 bytes, no locals
        0xd0, 0x70, 0x20, 0x00, 0xfc, 0x0f, 0x00, 0x1a, // ref.null func; local.get 0; table.grow 0; drop
        0xd0, 0x70, 0x20, 0x00, 0xfc, 0x0f, 0x01, 0x1a,
        0xd0, 0x70, 0x20, 0x00, 0xfc, 0x0f, 0x02, 0x1a,
        0xd0, 0x70, 0x20, 0x00, 0xfc, 0x0f, 0x03, 0x0b, // table.grow 3; end
    ];

    #[test]
    fn tables_are_capped_in_total_not_each() {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, FOUR_TABLES).unwrap();
        let mut store = wasmtime::Store::new(&engine, MemoryLimiter::new(64 << 20));
        store.limiter(|l| l);
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let grow = instance.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
        let quarter = (MAX_TABLE_ELEMENTS / 4) as i32;
        assert_eq!(grow.call(&mut store, quarter).unwrap(), 0, "a quarter of the cap in each of four tables");
        assert_eq!(store.data().tables_refused(), None);
        // One more element each: each table alone would be far below the
        // cap, but together they are past it (64 such tables were 512 MiB).
        assert_eq!(grow.call(&mut store, 1).unwrap(), -1);
        assert_eq!(store.data().tables_refused(), Some(MAX_TABLE_ELEMENTS + 1));
        assert_eq!(grow.call(&mut store, 1 << 20).unwrap(), -1);
    }
}
