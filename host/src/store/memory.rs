//! `--db none`: the task store in memory, gone with the process.
//!
//! Invariants:
//! - Every `put` is visible at once (there is no batch window), so `flush`
//!   has nothing to wait for.
//! - Positions (`seq`) grow with each new id and are never reused, so
//!   cursors behave as SQLite's do.
//! - Views are kept as JSON text, parsed when read: what a record weighs for
//!   `--retain-mib` is then what it holds in memory (as `serde_json::Value`
//!   trees, 8 MiB of views took ~80 MiB), and a put does not build a tree.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use super::query::encode_cursor;
use super::{Retention, StoreStats, StoredTask, TaskPage, TaskQuery, TaskSource, TaskStore};
use crate::Result;

struct Row {
    task: StoredTask,
    view: Box<str>,
    weight: u64,
}

impl Row {
    /// The record with its view parsed back (or `Null` when not wanted).
    fn read(&self, with_view: bool) -> StoredTask {
        let mut task = self.task.clone();
        if with_view {
            task.view = serde_json::from_str(&self.view).unwrap_or(serde_json::Value::Null);
        }
        task
    }
}

#[derive(Default)]
struct Rows {
    seq_of: HashMap<String, u64>,
    /// By position: the record (its `view` `Null`), its view as JSON text,
    /// and its weight in bytes.
    rows: BTreeMap<u64, Row>,
    next: u64,
    bytes: u64,
}

#[derive(Default)]
pub struct MemoryStore {
    rows: Mutex<Rows>,
    /// Applied on every put (an unbounded in-memory store would grow with
    /// every task a long-lived controller runs).
    bounds: Option<Retention>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store kept under `bounds` (count and bytes) as tasks are put.
    pub fn with_retention(bounds: Retention) -> Self {
        MemoryStore { rows: Mutex::default(), bounds: Some(bounds) }
    }

    fn insert(&self, task: StoredTask, view: String) {
        let w = task.weight(view.len());
        let mut r = self.rows.lock();
        let seq = match r.seq_of.get(&task.id) {
            Some(&seq) => seq,
            None => {
                r.next += 1;
                let seq = r.next;
                r.seq_of.insert(task.id.clone(), seq);
                seq
            }
        };
        if let Some(old) = r.rows.insert(seq, Row { task, view: view.into_boxed_str(), weight: w }) {
            r.bytes -= old.weight;
        }
        r.bytes += w;
        if let Some(b) = &self.bounds {
            // Over a bound: trim to 90% of it, so a full store is not
            // scanned on every put.
            if b.max_tasks.is_some_and(|m| r.rows.len() as u64 > m) {
                let keep = b.max_tasks.unwrap_or(u64::MAX) / 10 * 9;
                r.remove_oldest_finished(|r| r.rows.len() as u64 > keep);
            }
            if b.max_bytes.is_some_and(|m| r.bytes > m) {
                let keep = b.max_bytes.unwrap_or(u64::MAX) / 10 * 9;
                r.remove_oldest_finished(|r| r.bytes > keep);
            }
        }
    }
}

impl Rows {
    fn remove(&mut self, seq: u64) {
        if let Some(row) = self.rows.remove(&seq) {
            self.seq_of.remove(&row.task.id);
            self.bytes -= row.weight;
        }
    }

    /// Remove the oldest finished rows for which `stop` says go on.
    fn remove_oldest_finished(&mut self, mut more: impl FnMut(&Rows) -> bool) -> u64 {
        let candidates: Vec<u64> = self.rows.iter().filter(|(_, row)| row.task.status.is_finished()).map(|(s, _)| *s).collect();
        let mut n = 0;
        for seq in candidates {
            if !more(self) {
                break;
            }
            self.remove(seq);
            n += 1;
        }
        n
    }
}

impl TaskStore for MemoryStore {
    fn put(&self, mut task: StoredTask) {
        let view = serde_json::to_string(&task.view).unwrap_or_else(|_| "null".into());
        task.view = serde_json::Value::Null;
        self.insert(task, view);
    }

    fn put_lazy(&self, source: Arc<dyn TaskSource>) {
        let (task, view) = source.stored_text();
        self.insert(task, view);
    }

    fn get(&self, id: &str) -> Result<Option<StoredTask>> {
        let r = self.rows.lock();
        Ok(r.seq_of.get(id).and_then(|seq| r.rows.get(seq)).map(|row| row.read(true)))
    }

    fn query(&self, q: &TaskQuery) -> Result<TaskPage> {
        let r = self.rows.lock();
        let upper = q.before_seq.unwrap_or(u64::MAX);
        let mut hits = r.rows.range(..upper).rev().filter(|(_, row)| q.matches(&row.task));
        let mut tasks = Vec::new();
        let mut last = None;
        for (seq, row) in hits.by_ref().take(q.limit) {
            tasks.push(row.read(q.include_view));
            last = Some(*seq);
        }
        let next_cursor = match (hits.next(), last) {
            (Some(_), Some(seq)) => Some(encode_cursor(seq)),
            _ => None,
        };
        Ok(TaskPage { tasks, next_cursor })
    }

    fn purge(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut r = self.rows.lock();
        let old: Vec<u64> = r
            .rows
            .iter()
            .filter(|(_, row)| row.task.status.is_finished() && row.task.completed.is_some_and(|c| c < before))
            .map(|(s, _)| *s)
            .collect();
        for seq in &old {
            r.remove(*seq);
        }
        Ok(old.len() as u64)
    }

    fn retain(&self, retention: &Retention) -> Result<u64> {
        let mut n = 0;
        if let Some(age) = retention.max_age {
            let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
            n += self.purge(Utc::now().checked_sub_signed(age).unwrap_or(DateTime::<Utc>::MIN_UTC))?;
        }
        let mut r = self.rows.lock();
        if let Some(max) = retention.max_tasks {
            n += r.remove_oldest_finished(|r| r.rows.len() as u64 > max);
        }
        if let Some(max) = retention.max_bytes {
            n += r.remove_oldest_finished(|r| r.bytes > max);
        }
        Ok(n)
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn stats(&self) -> Result<StoreStats> {
        let r = self.rows.lock();
        Ok(StoreStats { tasks: r.rows.len() as u64, bytes: r.bytes, backlog: 0 })
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}
