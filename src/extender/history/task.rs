//! The recorder's own thread: it takes the handlers' records off the channel into the book
//! of pods in flight, takes in binds made through other replicas from the pod watch, and
//! every tick adds what the watches saw (departures, creation times), closes what is over,
//! follows the node inventory and writes; every checkpoint it rewrites `open.csv`. A thread,
//! not a tokio task: all of its work is blocking file I/O. It records only while
//! [`Watched::leading`]; a write error stops it for good (metric + one log line).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use super::adopt::{OVERLAP_SECS, adopted};
use super::files::Files;
use super::key::Names;
use super::{Event, HistorySettings, HistoryStats, PENDING_IDLE, RecordOutcome, Seen, unix_now};
use crate::extender::state::Store;
use crate::sim::trace::history::book::{Admit, Book};
use crate::sim::trace::history::dir::read_open;
use crate::sim::trace::history::{NodeRecord, Phase, PodRecord, node_header, pod_header};

/// How long the thread sleeps between two drains of the channel. It never waits on the
/// channel itself, so a handler's send never has to wake it (a system call on the decision
/// path: +25 µs per record, measured); the channel's 4,096 records per 250 ms are ~16,000 a
/// second, far above any scheduler's rate.
const SLICE: Duration = Duration::from_millis(250);

/// What the recorder reads from the cluster besides the handlers' records.
pub trait Watched: Send + 'static {
    /// Pods that left the cluster after `after`: UID and when, oldest first.
    fn departures_since(&self, after: Instant) -> Vec<(Instant, String)>;
    /// The creation time (Unix seconds) of the live pod `namespace/name`.
    fn created(&self, key: &str) -> Option<u64>;
    /// The UIDs of the pods bound now, when known.
    fn alive(&self) -> Option<Vec<String>>;
    /// Whether this process records now (it holds the Lease, or there is none).
    fn leading(&self) -> bool;
    /// The pods bound now (to take in the binds another replica made: [`adopted`]).
    fn bound(&self) -> Vec<Arc<Pod>> {
        Vec::new()
    }
}

/// The thread's inputs.
#[derive(Debug)]
pub struct Task<W> {
    pub settings: HistorySettings,
    pub names: Names,
    pub store: Arc<Store>,
    pub watched: W,
    pub rx: Receiver<Event>,
    pub active: Arc<AtomicBool>,
    pub stats: Arc<HistoryStats>,
    /// Set to end the thread (after a last write and checkpoint).
    pub stop: Arc<AtomicBool>,
}

/// The state of a recorder that leads.
#[derive(Debug)]
struct Leading {
    files: Files,
    book: Book,
    /// Bound pods whose creation time is still to be read: hashed UID -> plain key.
    uncreated: HashMap<String, String>,
    departures_after: Instant,
    /// Binds at or after this time (Unix seconds) are taken in from the pod watch; it
    /// starts when this stretch of leading does.
    adopt_after: u64,
    /// The pods bound since `adopt_after` looked at already (plain UID -> bind time).
    adopt_seen: HashMap<String, u64>,
    nodes: BTreeMap<String, NodeRecord>,
    checkpoint_at: Instant,
    lines: String,
    rows: u64,
}

impl<W: Watched> Task<W> {
    /// Run until stopped, the channel closes, or a write fails.
    pub fn run(self) {
        let mut lead: Option<Leading> = None;
        let mut next_tick = Instant::now();
        loop {
            let stopping = self.stop.load(Ordering::Relaxed);
            let leading = self.watched.leading() && !stopping;
            if leading && lead.is_none() {
                match self.start() {
                    Ok(l) => {
                        tracing::info!(dir = %self.settings.dir.display(), "recording the workload history");
                        lead = Some(l);
                        self.set_active(true);
                    }
                    Err(e) => return self.fail(&e, 0),
                }
            }
            if !leading && let Some(l) = lead.take() {
                self.set_active(false);
                if let Err((e, rows)) = self.finish(l) {
                    return self.fail(&e, rows);
                }
                if !stopping {
                    tracing::info!("lost the history Lease: recording stopped");
                }
            }
            if stopping {
                return;
            }
            std::thread::sleep(SLICE);
            loop {
                match self.rx.try_recv() {
                    Ok(event) => match &mut lead {
                        Some(l) => self.take(l, event),
                        None => self.stats.count(RecordOutcome::dropped, 1),
                    },
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            }
            if let Some(l) = &mut lead {
                self.adopt(l, unix_now());
            }
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + self.settings.tick;
                if let Some(l) = &mut lead
                    && let Err((e, rows)) = self.tick(l, false)
                {
                    return self.fail(&e, rows);
                }
            }
        }
    }

    fn set_active(&self, on: bool) {
        self.active.store(on, Ordering::Relaxed);
        self.stats.recording.set(i64::from(on));
    }

    /// A write failed: stop recording for good, with one log line.
    fn fail(&self, e: &std::io::Error, rows: u64) {
        self.set_active(false);
        self.stats.count(RecordOutcome::failed, rows.max(1));
        tracing::error!(dir = %self.settings.dir.display(), error = %e,
            "workload history: writing failed; recording stopped (scheduling goes on)");
    }

    fn start(&self) -> std::io::Result<Leading> {
        let s = &self.settings;
        let files = Files::open(&s.dir, s.max_bytes, s.file_bytes, unix_now())?;
        let mut book = Book::new(s.max_open, PENDING_IDLE.as_secs());
        match read_open(&s.dir) {
            Ok(rows) => {
                let refused = book.restore(rows);
                self.stats.count(RecordOutcome::dropped, refused as u64);
            }
            Err(e) => {
                tracing::warn!(error = %e, "workload history: the earlier open.csv is unreadable; starting without its pods")
            }
        }
        Ok(Leading {
            nodes: read_nodes(&s.dir),
            files,
            book,
            uncreated: HashMap::new(),
            departures_after: Instant::now(),
            adopt_after: unix_now(),
            adopt_seen: HashMap::new(),
            checkpoint_at: Instant::now(),
            lines: String::new(),
            rows: 0,
        })
    }

    fn take(&self, l: &mut Leading, event: Event) {
        let admitted = match event {
            Event::Unschedulable(s) => {
                let rec = self.record(&s, Phase::Pending);
                l.book.unschedulable(rec, s.at)
            }
            Event::Bound(s) => {
                let rec = self.record(&s, Phase::Running);
                let uid = (rec.created == 0).then(|| rec.uid.clone());
                let admitted = l.book.bound(rec, s.at);
                if let Some(uid) = uid.filter(|_| admitted != Admit::Full) {
                    l.uncreated.insert(uid, s.key.clone());
                }
                admitted
            }
        };
        if admitted == Admit::Full {
            self.stats.count(RecordOutcome::dropped, 1);
        }
    }

    fn record(&self, s: &Seen, phase: Phase) -> PodRecord {
        PodRecord {
            name: self.names.write(&s.key),
            uid: self.names.write(&s.uid),
            cpu_milli: s.demand.cpu_milli,
            memory_bytes: s.demand.memory_bytes,
            gpu: s.demand.gpu,
            gpu_spec: s.spec.clone(),
            phase,
            created: s.created.unwrap_or(0),
            deleted: None,
            scheduled: None,
            node: s.node.clone(),
            devices: s.devices.clone(),
            policy: s.policy.to_string(),
            policy_hash: s.policy_hash.clone(),
        }
    }

    /// Departures, creation times, expiries and nodes; the rows written; `open.csv` when
    /// its checkpoint is due (or `last`). An error comes with the rows it lost.
    fn tick(&self, l: &mut Leading, last: bool) -> Result<(), (std::io::Error, u64)> {
        let (now, now_unix) = (Instant::now(), unix_now());
        l.uncreated
            .retain(|uid, key| match self.watched.created(key) {
                Some(t) => {
                    l.book.created(uid, t);
                    false
                }
                None => true,
            });
        for (at, uid) in self.watched.departures_since(l.departures_after) {
            l.departures_after = l.departures_after.max(at);
            let hashed = self.names.write(&uid);
            let ago = now.saturating_duration_since(at).as_secs();
            if let Some(rec) = l.book.departed(&hashed, now_unix.saturating_sub(ago)) {
                l.uncreated.remove(&hashed);
                l.lines.push_str(&rec.line());
                l.rows += 1;
            }
        }
        let checkpoint = last || now.duration_since(l.checkpoint_at) >= self.settings.checkpoint;
        let alive: Option<HashSet<String>> = checkpoint
            .then(|| self.watched.alive())
            .flatten()
            .map(|uids| uids.iter().map(|u| self.names.write(u)).collect());
        let check = alive.as_ref().map(|a| move |uid: &str| a.contains(uid));
        let check = check.as_ref().map(|f| f as &dyn Fn(&str) -> bool);
        for rec in l.book.expire(now_unix, check) {
            l.uncreated.remove(&rec.uid);
            l.lines.push_str(&rec.line());
            l.rows += 1;
        }
        let io = |e| (e, 0);
        if self.follow_nodes(l, now_unix) {
            let mut text = node_header();
            l.nodes.values().for_each(|n| text.push_str(&n.line()));
            l.files.replace_nodes(&text).map_err(io)?;
        }
        if !l.lines.is_empty() {
            let rows = std::mem::take(&mut l.rows);
            l.files
                .append(&std::mem::take(&mut l.lines))
                .map_err(|e| (e, rows))?;
            self.stats.count(RecordOutcome::written, rows);
        }
        if checkpoint {
            let mut text = pod_header();
            l.book
                .open_rows(now_unix)
                .iter()
                .for_each(|r| text.push_str(&r.line()));
            l.files.replace_open(&text).map_err(io)?;
            l.files.sync().map_err(io)?;
            l.checkpoint_at = now;
        }
        self.stats
            .bytes
            .set(i64::try_from(l.files.bytes()).unwrap_or(i64::MAX));
        Ok(())
    }

    /// Take in the pods allot bound since the last look (less [`OVERLAP_SECS`]) that the book
    /// does not hold: bound through another replica, whose handlers do not record. Every
    /// slice, not every tick: a pod that leaves before it is looked at is missed.
    fn adopt(&self, l: &mut Leading, now: u64) {
        let after = l.adopt_after;
        l.adopt_after = after.max(now.saturating_sub(OVERLAP_SECS));
        l.adopt_seen.retain(|_, at| *at >= after);
        let mut taken = 0;
        for pod in self.watched.bound() {
            let uid = pod.metadata.uid.as_deref().unwrap_or_default();
            if l.adopt_seen.contains_key(uid) {
                continue;
            }
            let Some(seen) = adopted(&self.store, &pod, after) else {
                continue;
            };
            l.adopt_seen.insert(seen.uid.clone(), seen.at);
            if !l.book.contains(&self.names.write(&seen.uid)) {
                self.take(l, Event::Bound(seen));
                taken += 1;
            }
        }
        if taken > 0 {
            tracing::debug!(
                taken,
                "binds made through another replica taken into the history"
            );
        }
    }

    /// Bring the inventory up to the extender's snapshot; whether it changed.
    fn follow_nodes(&self, l: &mut Leading, now: u64) -> bool {
        if !self.store.is_ready() {
            return false;
        }
        let view = self.store.view();
        let cluster = &view.cluster;
        let mut changed = false;
        let mut present = HashSet::with_capacity(cluster.len());
        for n in cluster.nodes() {
            present.insert(&*n.name);
            let model = n.model.map_or("", |m| cluster.models.name(m)).to_string();
            let entry = l.nodes.entry(n.name.to_string()).or_insert_with(|| {
                changed = true;
                NodeRecord {
                    name: n.name.to_string(),
                    cpu_milli: n.cpu_capacity,
                    memory_bytes: n.memory_capacity,
                    gpus: n.gpu_count(),
                    model: model.clone(),
                    added: now,
                    removed: None,
                }
            });
            let same = (
                entry.cpu_milli,
                entry.memory_bytes,
                entry.gpus,
                &entry.model,
            ) == (n.cpu_capacity, n.memory_capacity, n.gpu_count(), &model);
            if !same || entry.removed.is_some() {
                (entry.cpu_milli, entry.memory_bytes) = (n.cpu_capacity, n.memory_capacity);
                (entry.gpus, entry.model, entry.removed) = (n.gpu_count(), model, None);
                changed = true;
            }
        }
        for n in l.nodes.values_mut() {
            if n.removed.is_none() && !present.contains(n.name.as_str()) {
                n.removed = Some(now);
                changed = true;
            }
        }
        changed
    }

    /// The last write and checkpoint of a recorder that stops leading.
    fn finish(&self, mut l: Leading) -> Result<(), (std::io::Error, u64)> {
        self.tick(&mut l, true)
    }
}

/// The node inventory an earlier recorder left in `dir` (none if unreadable: rebuilt).
fn read_nodes(dir: &Path) -> BTreeMap<String, NodeRecord> {
    let path = dir.join(crate::sim::trace::history::NODES_FILE);
    let Ok(mut reader) = csv::Reader::from_path(&path) else {
        return BTreeMap::new();
    };
    let num = |r: &csv::StringRecord, i: usize| r.get(i).and_then(|t| t.parse::<u64>().ok());
    reader
        .records()
        .filter_map(Result::ok)
        .filter_map(|r| {
            let name = r.get(0)?.to_string();
            let node = NodeRecord {
                name: name.clone(),
                cpu_milli: num(&r, 1)?,
                memory_bytes: num(&r, 2)?.checked_mul(1 << 20)?,
                gpus: usize::try_from(num(&r, 3)?).ok()?,
                model: r.get(4)?.to_string(),
                added: num(&r, 5)?,
                removed: num(&r, 6),
            };
            Some((name, node))
        })
        .collect()
}
