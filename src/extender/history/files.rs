//! The history directory on disk: pod rows appended to `pods-<start>-<seq>.csv` files that
//! rotate at `file_bytes`, the oldest deleted while the directory holds more than
//! `max_bytes`; `open.csv` and `nodes.csv` replaced whole (written aside, then renamed, so a
//! reader never sees half of one). Plain `std::fs`: the recorder task calls it from
//! `spawn_blocking`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::sim::trace::history::dir::pod_files;
use crate::sim::trace::history::{NODES_FILE, OPEN_FILE, POD_FILE_PREFIX, pod_header};

/// Where pod rows go, and how much the directory may hold.
#[derive(Debug)]
pub struct Files {
    dir: PathBuf,
    max_bytes: u64,
    file_bytes: u64,
    /// When this writer started (Unix seconds): its files sort after every earlier one's.
    start: u64,
    seq: u32,
    current: Option<(PathBuf, File, u64)>,
    /// The rotated files, oldest first, with their sizes.
    closed: Vec<(PathBuf, u64)>,
    /// Bytes of `open.csv` and `nodes.csv`.
    side: u64,
}

impl Files {
    /// The writer for `dir` (created if missing); the files already there count against
    /// `max_bytes` and are deleted first. A new file is started (an earlier writer's last
    /// file may end in a half-written line).
    pub fn open(dir: &Path, max_bytes: u64, file_bytes: u64, start: u64) -> io::Result<Files> {
        std::fs::create_dir_all(dir)?;
        let closed = pod_files(dir)
            .map_err(|e| io::Error::other(e.to_string()))?
            .into_iter()
            .map(|p| {
                let len = std::fs::metadata(&p).map_or(0, |m| m.len());
                (p, len)
            })
            .collect();
        let side = [OPEN_FILE, NODES_FILE]
            .iter()
            .map(|f| std::fs::metadata(dir.join(f)).map_or(0, |m| m.len()))
            .sum();
        Ok(Files {
            dir: dir.to_path_buf(),
            max_bytes,
            file_bytes: file_bytes.max(1),
            start,
            seq: 0,
            current: None,
            closed,
            side,
        })
    }

    /// Bytes the directory's history files hold.
    pub fn bytes(&self) -> u64 {
        self.closed.iter().map(|(_, n)| n).sum::<u64>()
            + self.current.as_ref().map_or(0, |(_, _, n)| *n)
            + self.side
    }

    /// Append `lines` (whole rows, each newline-terminated) in one write, rotating first when
    /// the current file is full, then deleting the oldest files past the bound.
    pub fn append(&mut self, lines: &str) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        if self
            .current
            .as_ref()
            .is_some_and(|(_, _, n)| *n + lines.len() as u64 > self.file_bytes)
        {
            self.rotate();
        }
        if self.current.is_none() {
            let (path, mut file) = self.next_file()?;
            let header = pod_header();
            file.write_all(header.as_bytes())?;
            self.current = Some((path, file, header.len() as u64));
        }
        if let Some((_, file, n)) = &mut self.current {
            file.write_all(lines.as_bytes())?;
            *n += lines.len() as u64;
        }
        self.prune()
    }

    /// A new pod file, named after the start time and the next sequence number; a name
    /// already taken (a writer restarted within the same second) moves on to the next.
    fn next_file(&mut self) -> io::Result<(PathBuf, File)> {
        loop {
            self.seq += 1;
            let name = format!("{POD_FILE_PREFIX}{:012}-{:06}.csv", self.start, self.seq);
            let path = self.dir.join(name);
            match OpenOptions::new().create_new(true).append(true).open(&path) {
                Ok(file) => return Ok((path, file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && self.seq < 999_999 => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Flush the current file to the disk (a checkpoint or shutdown).
    pub fn sync(&mut self) -> io::Result<()> {
        match &mut self.current {
            Some((_, file, _)) => file.sync_data(),
            None => Ok(()),
        }
    }

    fn rotate(&mut self) {
        if let Some((path, _, n)) = self.current.take() {
            self.closed.push((path, n));
        }
    }

    /// Delete the oldest rotated files while the directory holds more than `max_bytes` (the
    /// file being written is never deleted).
    fn prune(&mut self) -> io::Result<()> {
        while self.bytes() > self.max_bytes && !self.closed.is_empty() {
            let (path, _) = self.closed.remove(0);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Replace `open.csv` with `text`.
    pub fn replace_open(&mut self, text: &str) -> io::Result<()> {
        self.replace(OPEN_FILE, text)
    }

    /// Replace `nodes.csv` with `text`.
    pub fn replace_nodes(&mut self, text: &str) -> io::Result<()> {
        self.replace(NODES_FILE, text)
    }

    fn replace(&mut self, name: &str, text: &str) -> io::Result<()> {
        let path = self.dir.join(name);
        let old = std::fs::metadata(&path).map_or(0, |m| m.len());
        let aside = self.dir.join(format!(".{name}.tmp"));
        let mut file = File::create(&aside)?;
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        std::fs::rename(&aside, &path)?;
        self.side = self.side.saturating_sub(old) + text.len() as u64;
        self.prune()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_directory_under_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Files::open(dir.path(), 4096, 1024, 1_700_000_000).unwrap();
        let row = format!("{}\n", "x".repeat(99));
        for _ in 0..200 {
            files.append(&row).unwrap();
            assert!(files.bytes() <= 4096 + 1024, "{}", files.bytes());
        }
        files.replace_open("open\n").unwrap();
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(on_disk, files.bytes());
        assert!(on_disk <= 4096, "{on_disk}");
        let names = pod_files(dir.path()).unwrap();
        assert!(names.len() >= 3, "{names:?}");
        assert!(
            names
                .iter()
                .all(|p| std::fs::metadata(p).unwrap().len() <= 1024)
        );
        // The newest rows survive: the last file is the one being written.
        let last = names.last().unwrap();
        assert_eq!(&files.current.as_ref().unwrap().0, last);
        // A second writer (a restart, here within the same second) starts its own file and
        // counts the first one's.
        let mut again = Files::open(dir.path(), 1 << 20, 1024, 1_700_000_000).unwrap();
        assert_eq!(again.bytes(), on_disk);
        again.append(&row).unwrap();
        assert_eq!(pod_files(dir.path()).unwrap().len(), names.len() + 1);
    }
}
