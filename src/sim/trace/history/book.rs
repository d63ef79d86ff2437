//! The recorder's book of pods in flight: what it knows of each pod between the event that
//! opens its row (allot found no node for it, or bound it) and the one that closes it (it
//! left the cluster, or nobody asked about it for a while). Pure: times are given in Unix
//! seconds, so the recorder task and the tests drive it alike.

use std::collections::HashMap;

use super::{POD_COLUMNS, Phase, PodRecord, VERSION_COLUMN};
use crate::model::GpuDemand;

/// What the book did with a new fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Opened,
    Updated,
    /// The book holds its limit of pods: the fact is dropped.
    Full,
}

/// Pods in flight, keyed by their (hashed) UID.
#[derive(Debug, Clone)]
pub struct Book {
    open: HashMap<String, Entry>,
    max_open: usize,
    /// Seconds a never-bound pod stays open after allot last saw it.
    pending_idle: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    rec: PodRecord,
    last_seen: u64,
}

impl Book {
    pub fn new(max_open: usize, pending_idle: u64) -> Book {
        Book {
            open: HashMap::new(),
            max_open,
            pending_idle,
        }
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Whether the pod with (hashed) UID `uid` is in flight.
    pub fn contains(&self, uid: &str) -> bool {
        self.open.contains_key(uid)
    }

    /// Allot found no node for `rec` at `at`: opened as Pending, or its last sighting moved.
    pub fn unschedulable(&mut self, mut rec: PodRecord, at: u64) -> Admit {
        if let Some(e) = self.open.get_mut(&rec.uid) {
            e.last_seen = e.last_seen.max(at);
            return Admit::Updated;
        }
        if self.open.len() >= self.max_open {
            return Admit::Full;
        }
        rec.phase = Phase::Pending;
        let uid = rec.uid.clone();
        self.open.insert(uid, Entry { rec, last_seen: at });
        Admit::Opened
    }

    /// Allot bound `rec` (node, devices, policy set) at `at`. A pod that waited keeps the
    /// creation time it was first seen with when the bind does not know one.
    pub fn bound(&mut self, mut rec: PodRecord, at: u64) -> Admit {
        rec.phase = Phase::Running;
        rec.scheduled = Some(at);
        if let Some(e) = self.open.get_mut(&rec.uid) {
            if rec.created == 0 {
                rec.created = e.rec.created;
            }
            e.rec = rec;
            e.last_seen = at;
            return Admit::Updated;
        }
        if self.open.len() >= self.max_open {
            return Admit::Full;
        }
        let uid = rec.uid.clone();
        self.open.insert(uid, Entry { rec, last_seen: at });
        Admit::Opened
    }

    /// The creation time of a pod in flight, learnt from the cluster's watch.
    pub fn created(&mut self, uid: &str, created: u64) {
        if let Some(e) = self.open.get_mut(uid)
            && (e.rec.created == 0 || created < e.rec.created)
        {
            e.rec.created = created;
        }
    }

    /// The UIDs of bound pods in flight whose creation time is still unknown.
    pub fn missing_creation(&self) -> Vec<String> {
        self.open
            .values()
            .filter(|e| e.rec.created == 0 && e.rec.phase == Phase::Running)
            .map(|e| e.rec.uid.clone())
            .collect()
    }

    /// The bound pod `uid` left the cluster at `at`: its closed row. A pod the book does not
    /// hold, or one never bound, gives none. A creation time never learnt becomes the bind's.
    pub fn departed(&mut self, uid: &str, at: u64) -> Option<PodRecord> {
        if self.open.get(uid)?.rec.phase != Phase::Running {
            return None;
        }
        let mut rec = self.open.remove(uid)?.rec;
        if rec.created == 0 {
            rec.created = rec.scheduled.unwrap_or(at);
        }
        rec.phase = Phase::Terminated;
        rec.deleted = Some(at);
        Some(rec)
    }

    /// Close the never-bound pods nobody has asked about for `pending_idle` seconds by `now`,
    /// each deleted when last seen; and the pods bound more than `pending_idle` seconds ago
    /// that are not `alive` (when the caller knows which are: a departure the watch missed),
    /// deleted `now`.
    pub fn expire(&mut self, now: u64, alive: Option<&dyn Fn(&str) -> bool>) -> Vec<PodRecord> {
        let idle = self.pending_idle;
        let gone: Vec<String> = self
            .open
            .iter()
            .filter(|(uid, e)| match e.rec.phase {
                Phase::Pending => e.last_seen.saturating_add(idle) < now,
                // Bound a while ago (the watch shows a bind within seconds) and not alive.
                _ => e.last_seen.saturating_add(idle) < now && alive.is_some_and(|a| !a(uid)),
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        let mut out = Vec::with_capacity(gone.len());
        for uid in gone {
            let Some(e) = self.open.remove(&uid) else {
                continue;
            };
            let mut rec = e.rec;
            if rec.phase == Phase::Pending {
                rec.deleted = Some(e.last_seen.max(rec.created));
            } else {
                if rec.created == 0 {
                    rec.created = rec.scheduled.unwrap_or(now);
                }
                rec.phase = Phase::Terminated;
                rec.deleted = Some(now);
            }
            out.push(rec);
        }
        out.sort_by(|a, b| (a.created, &a.uid).cmp(&(b.created, &b.uid)));
        out
    }

    /// Every pod in flight as an `open.csv` row: deleted `now` (the checkpoint), as openb
    /// writes the pods still running when its trace was taken. Sorted by creation.
    pub fn open_rows(&self, now: u64) -> Vec<PodRecord> {
        let mut rows: Vec<PodRecord> = self
            .open
            .values()
            .map(|e| {
                let mut rec = e.rec.clone();
                if rec.created == 0 {
                    rec.created = rec.scheduled.unwrap_or(now);
                }
                rec.deleted = Some(now.max(rec.created));
                rec
            })
            .collect();
        rows.sort_by(|a, b| (a.created, &a.uid).cmp(&(b.created, &b.uid)));
        rows
    }

    /// Take back the pods of an earlier `open.csv` (a restarted recorder): their rows as
    /// written, open again (a Pending one last seen at its checkpoint). Rows the book has
    /// no room for are counted in the answer.
    pub fn restore(&mut self, rows: Vec<PodRecord>) -> usize {
        let mut refused = 0;
        for mut rec in rows {
            let seen = rec.deleted.take().unwrap_or(rec.created);
            if self.open.len() >= self.max_open {
                refused += 1;
                continue;
            }
            let uid = rec.uid.clone();
            self.open.entry(uid).or_insert(Entry {
                rec,
                last_seen: seen,
            });
        }
        refused
    }
}

/// A pod row of a history file back as a record, from its [`POD_COLUMNS`] cells (as the
/// directory reader copies them); `None` for a row that is not one allot wrote.
pub fn parse_record(cells: &[&str]) -> Option<PodRecord> {
    if cells.len() != POD_COLUMNS.len() || cells[POD_COLUMNS.len() - 1].is_empty() {
        return None;
    }
    debug_assert_eq!(POD_COLUMNS[16], VERSION_COLUMN);
    let num = |i: usize| cells[i].parse::<u64>().ok();
    let time = |i: usize| (!cells[i].is_empty()).then(|| num(i)).flatten();
    let num_gpu = u32::try_from(num(3)?).ok()?;
    let milli = u32::try_from(num(4)?).ok()?;
    let gpu = match (num_gpu, milli) {
        (0, _) => GpuDemand::None,
        (1, m) if m < 1000 => GpuDemand::Shared { milli: m },
        (n, _) => GpuDemand::Whole { count: n },
    };
    Some(PodRecord {
        name: cells[0].to_string(),
        cpu_milli: num(1)?,
        memory_bytes: num(2)?.checked_mul(1 << 20)?,
        gpu,
        gpu_spec: cells[5].to_string(),
        phase: Phase::parse(cells[7])?,
        created: num(8)?,
        deleted: time(9),
        scheduled: time(10),
        node: cells[11].to_string(),
        devices: cells[12].to_string(),
        policy: cells[13].to_string(),
        policy_hash: cells[14].to_string(),
        uid: cells[15].to_string(),
    })
}
