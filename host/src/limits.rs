//! The per-call memory cap. A plain `ResourceLimiter` that also remembers
//! what it refused, so a failed call can say "memory limit" instead of the
//! guest's generic abort.

use wasmtime::ResourceLimiter;

/// Table elements a plugin may have; generous for real code, small enough to
/// stop a table-growth bomb.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Caps linear memory per store and records the first refusal.
#[derive(Debug, Clone)]
pub struct MemoryLimiter {
    max_bytes: usize,
    refused: Option<usize>,
}

impl MemoryLimiter {
    /// A limiter allowing at most `max_bytes` of linear memory per memory.
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes, refused: None }
    }

    /// The cap in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The size a refused growth asked for, if any growth was refused.
    pub fn refused(&self) -> Option<usize> {
        self.refused
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            // Refuse (memory.grow returns -1) rather than trap: a guest may
            // cope; if it aborts instead, the call error names the cap.
            self.refused.get_or_insert(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
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
    fn caps_tables() {
        let mut limiter = MemoryLimiter::new(1);
        assert!(limiter.table_growing(0, 1000, None).unwrap());
        assert!(!limiter.table_growing(0, MAX_TABLE_ELEMENTS + 1, None).unwrap());
    }
}
