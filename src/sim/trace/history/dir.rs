//! Reading a recorded history directory back as one pod list: the rotated `pods-*.csv` files
//! in their order, then the pods still in flight (`open.csv`), each row checked for its
//! format version. What a killed or badly clocked recorder leaves behind is skipped and
//! counted, never fatal: a last line without its newline (killed mid-write), a deletion
//! before the creation (clock skew), an in-flight row of a pod that was closed since.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{NODES_FILE, OPEN_FILE, POD_COLUMNS, POD_FILE_PREFIX, VERSION, VERSION_COLUMN};
use crate::policy::keyed_hash;
use crate::sim::trace::{MAX_FILE_BYTES, TraceError, read_text};

/// What was skipped while reading, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Last lines cut short (the recorder was killed mid-write).
    pub truncated: usize,
    /// Rows whose deletion_time is before their creation_time (clock skew).
    pub skewed: usize,
    /// Rows without a deletion_time or creation_time.
    pub incomplete: usize,
    /// In-flight rows of pods a rotated file already closed.
    pub duplicates: usize,
}

impl Skipped {
    pub fn total(&self) -> usize {
        self.truncated + self.skewed + self.incomplete + self.duplicates
    }

    /// One warning line per kind skipped.
    pub fn warnings(&self, dir: &Path) -> Vec<String> {
        let d = dir.display();
        let mut out = Vec::new();
        let mut say = |n: usize, what: &str| {
            if n > 0 {
                out.push(format!("warning: {d}: skipped {n} {what}"));
            }
        };
        say(
            self.truncated,
            "truncated last line(s) (the recorder was stopped mid-write)",
        );
        say(
            self.skewed,
            "row(s) deleted before they were created (clock skew)",
        );
        say(
            self.incomplete,
            "row(s) without a creation or deletion time",
        );
        say(
            self.duplicates,
            "in-flight row(s) of pods already closed in a rotated file",
        );
        out
    }
}

/// A history directory read as one pod list.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub dir: PathBuf,
    /// One CSV text: a [`POD_COLUMNS`] header and every row kept, in file order.
    pub text: String,
    /// The node list (`nodes.csv`), when the directory has one.
    pub nodes: Option<PathBuf>,
    pub skipped: Skipped,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// Fingerprint of what was read: every pod file's name and text as read, in order, then
    /// `nodes.csv`'s ([`fingerprint`]).
    pub digest: String,
    /// Per row of `text` (from 0): its file (index into `files`) and line.
    origin: Vec<(usize, u64)>,
}

impl Recorded {
    /// The rows kept.
    pub fn rows(&self) -> usize {
        self.origin.len()
    }

    /// `e`, found at a line of [`Recorded::text`], pointed at the file and line it came from.
    pub fn locate(&self, mut e: TraceError) -> TraceError {
        let row = e.line.and_then(|l| l.checked_sub(2)).map(|r| r as usize);
        if let Some(&(file, line)) = row.and_then(|r| self.origin.get(r)) {
            e.file = self.files[file].display().to_string();
            e.line = Some(line);
        }
        e
    }
}

/// Whether `dir` looks like a recorded history (has a pod file or the in-flight file).
pub fn is_history_dir(dir: &Path) -> bool {
    dir.is_dir() && (dir.join(OPEN_FILE).is_file() || pod_files(dir).is_ok_and(|f| !f.is_empty()))
}

/// The rotated pod files of `dir` (`pods-*.csv`), in writing order.
pub fn pod_files(dir: &Path) -> Result<Vec<PathBuf>, TraceError> {
    let entries = std::fs::read_dir(dir).map_err(|e| TraceError {
        file: dir.display().to_string(),
        line: None,
        column: None,
        problem: format!("cannot list the directory: {e}"),
    })?;
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name.starts_with(POD_FILE_PREFIX) && name.ends_with(".csv")).then(|| (name, e.path()))
        })
        .collect();
    // Names carry the writer's start time and a sequence number, zero-padded: name order is
    // writing order, also for files of several recorders copied into one directory.
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Read the history in `dir`. Errors name the file (and line): a file without the version
/// column, one from a newer format version, a malformed row that is not the last line.
pub fn read_history(dir: &Path) -> Result<Recorded, TraceError> {
    let mut files = pod_files(dir)?;
    let open = dir.join(OPEN_FILE);
    let has_open = open.is_file();
    if has_open {
        files.push(open);
    }
    if files.is_empty() {
        return Err(TraceError {
            file: dir.display().to_string(),
            line: None,
            column: None,
            problem: format!(
                "no recorded pods here (no {POD_FILE_PREFIX}*.csv or {OPEN_FILE}); is this an \
                 `allot extender --history-dir` directory?"
            ),
        });
    }
    let nodes = Some(dir.join(NODES_FILE)).filter(|p| p.is_file());
    let mut out = Recorded {
        dir: dir.to_path_buf(),
        text: format!("{}\n", POD_COLUMNS.join(",")),
        nodes,
        skipped: Skipped::default(),
        files: files.clone(),
        digest: String::new(),
        origin: Vec::new(),
    };
    let mut closed: HashSet<String> = HashSet::new();
    let mut read = Vec::with_capacity(files.len() + 1);
    for (i, path) in files.iter().enumerate() {
        let is_open = has_open && i + 1 == files.len();
        read.push((
            file_name(path),
            read_file(&mut out, i, path, is_open, &mut closed)?,
        ));
        if out.text.len() as u64 > MAX_FILE_BYTES {
            return Err(TraceError {
                file: dir.display().to_string(),
                line: None,
                column: None,
                problem: format!("the history is longer than {MAX_FILE_BYTES} bytes"),
            });
        }
    }
    if let Some(nodes) = &out.nodes {
        read.push((file_name(nodes), read_text(nodes)?));
    }
    out.digest = fingerprint(&read);
    Ok(out)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// A 128-bit content fingerprint of `(name, text)` pairs, as 32 hex digits: two FNV-1a
/// hashes under different keys over each name, length and text. It tells one history from
/// another (a changed, added or removed file changes it); it is not a cryptographic hash.
pub fn fingerprint(files: &[(String, String)]) -> String {
    let mut all = String::new();
    for (name, text) in files {
        all.push_str(&format!("{name}\0{}\0", text.len()));
        all.push_str(text);
    }
    let (a, b) = (keyed_hash(0x4849_5354, &all), keyed_hash(0x4f52_5921, &all));
    format!("{a:016x}{b:016x}")
}

/// Reads one pod file's rows into `out`; returns the file's text as read (for the digest).
fn read_file(
    out: &mut Recorded,
    index: usize,
    path: &Path,
    is_open: bool,
    closed: &mut HashSet<String>,
) -> Result<String, TraceError> {
    let file = path.display().to_string();
    let as_read = read_text(path)?;
    let mut text = as_read.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.truncate(text.rfind('\n').map_or(0, |i| i + 1));
        out.skipped.truncated += 1;
    }
    if text.is_empty() {
        return Ok(as_read);
    }
    let error = |line: Option<u64>, column: Option<&str>, problem: String| TraceError {
        file: file.clone(),
        line,
        column: column.map(str::to_string),
        problem,
    };
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| error(Some(1), None, format!("cannot read the header: {e}")))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let version_at = col(VERSION_COLUMN).ok_or_else(|| {
        error(
            Some(1),
            None,
            format!(
                "not an allot history file: its header has no `{VERSION_COLUMN}` column \
                 (an openb pod list is read with --pods FILE, not as a history directory)"
            ),
        )
    })?;
    let mut record = csv::StringRecord::new();
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line());
                return Err(error(line, None, format!("malformed CSV: {e}")));
            }
        }
        let line = record.position().map_or(0, |p| p.line());
        let version_text = record.get(version_at).unwrap_or("").trim();
        let version: u32 = version_text.parse().map_err(|_| {
            error(
                Some(line),
                Some(VERSION_COLUMN),
                format!("{version_text:?} is not a format version"),
            )
        })?;
        if version > VERSION {
            return Err(error(
                Some(line),
                Some(VERSION_COLUMN),
                format!(
                    "written by a newer allot (history format version {version}; this allot \
                     reads up to {VERSION}): upgrade allot to read it"
                ),
            ));
        }
        let mut cells = Vec::with_capacity(POD_COLUMNS.len());
        for name in POD_COLUMNS {
            let at = col(name).ok_or_else(|| {
                error(
                    Some(1),
                    Some(name),
                    "missing column of history format version 1".to_string(),
                )
            })?;
            cells.push(record.get(at).unwrap_or("").trim());
        }
        let time = |name: &str| {
            let at = POD_COLUMNS.iter().position(|c| *c == name).unwrap_or(0);
            cells[at].parse::<u64>().ok()
        };
        let (Some(created), Some(deleted)) = (time("creation_time"), time("deletion_time")) else {
            out.skipped.incomplete += 1;
            continue;
        };
        if deleted < created {
            out.skipped.skewed += 1;
            continue;
        }
        let uid_at = POD_COLUMNS.iter().position(|c| *c == "uid").unwrap_or(0);
        let identity = if cells[uid_at].is_empty() {
            cells[0].to_string()
        } else {
            cells[uid_at].to_string()
        };
        if is_open {
            if closed.contains(&identity) {
                out.skipped.duplicates += 1;
                continue;
            }
        } else {
            closed.insert(identity);
        }
        writer
            .write_record(&cells)
            .map_err(|e| error(Some(line), None, format!("cannot copy the row: {e}")))?;
        out.origin.push((index, line));
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| error(None, None, format!("cannot copy the rows: {e}")))?;
    out.text.push_str(&String::from_utf8_lossy(&bytes));
    Ok(as_read)
}

/// The pods in flight of an earlier recorder (`open.csv` of `dir`), for a restarted one to
/// take back; none when there is no such file. Rows not written by allot are left out.
pub fn read_open(dir: &Path) -> Result<Vec<super::PodRecord>, TraceError> {
    let path = dir.join(OPEN_FILE);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let mut out = Recorded {
        dir: dir.to_path_buf(),
        text: String::new(),
        nodes: None,
        skipped: Skipped::default(),
        files: vec![path.clone()],
        digest: String::new(),
        origin: Vec::new(),
    };
    read_file(&mut out, 0, &path, false, &mut HashSet::new())?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(out.text.as_bytes());
    Ok(reader
        .records()
        .filter_map(Result::ok)
        .filter_map(|r| super::book::parse_record(&r.iter().collect::<Vec<_>>()))
        .collect())
}
