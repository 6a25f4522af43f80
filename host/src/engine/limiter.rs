//! The per-engine resource cap: all linear memories of a store together stay
//! under `Limits::memory_per_engine`; tables and instances are bounded too.
//! A refusal is remembered so the engine can say *why* a call trapped.

use wasmtime::ResourceLimiter;

pub struct EngineLimiter {
    pub memory_cap: usize,
    pub memory_used: usize,
    pub max_instances: usize,
    pub max_tables: usize,
    pub max_table_elements: usize,
    /// Set when a memory growth was refused; cleared by the engine.
    pub memory_refused: bool,
}

impl ResourceLimiter for EngineLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let grow = desired.saturating_sub(current);
        if self.memory_used.saturating_add(grow) > self.memory_cap {
            self.memory_refused = true;
            return Ok(false);
        }
        self.memory_used += grow;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }

    fn instances(&self) -> usize {
        self.max_instances
    }

    fn tables(&self) -> usize {
        self.max_tables
    }

    fn memories(&self) -> usize {
        self.max_instances
    }
}
