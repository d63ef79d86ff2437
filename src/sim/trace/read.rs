//! Reading trace, snapshot and results files with bounded memory: a file's size is checked
//! before it is opened for reading, its bytes are read incrementally (CSV line by line, JSON
//! by serde's streaming reader), a CSV line may not exceed [`MAX_LINE_BYTES`], and a file
//! that grows past [`MAX_FILE_BYTES`] while being read (a pipe, a device) stops there. Every
//! error names the file.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use super::TraceError;

/// Largest trace, snapshot or results file read. The openb pod lists are under 1 MiB and a
/// million-pod trace about 100 MiB; anything past this is a wrong path, not a trace.
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// Longest CSV line. Real rows are under 200 bytes (a long `gpu_spec` list included); a line
/// this long means the file is not CSV (binary, or a sparse file of zero bytes).
pub const MAX_LINE_BYTES: usize = 1 << 16;

/// Why a bounded read stopped, carried inside an `io::Error` through the CSV and JSON readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overrun {
    /// Line `n` (from 1) exceeded [`MAX_LINE_BYTES`].
    Line(u64),
    /// The file passed [`MAX_FILE_BYTES`].
    File,
}

impl fmt::Display for Overrun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Overrun::Line(_) => write!(
                f,
                "line is longer than {MAX_LINE_BYTES} bytes (is this a CSV file?)"
            ),
            Overrun::File => write!(f, "the file is longer than {MAX_FILE_BYTES} bytes"),
        }
    }
}

impl std::error::Error for Overrun {}

/// A reader that fails with an [`Overrun`] once a line (when `line_cap` is set) or the whole
/// input grows past its bound.
pub struct Bounded<R> {
    inner: R,
    line_cap: Option<usize>,
    line: u64,
    run: usize,
    total: u64,
    file_cap: u64,
}

impl<R: BufRead> Bounded<R> {
    /// Line by line: `line_cap` bytes per line at most (CSV).
    pub fn lines(inner: R) -> Self {
        Bounded {
            inner,
            line_cap: Some(MAX_LINE_BYTES),
            line: 1,
            run: 0,
            total: 0,
            file_cap: MAX_FILE_BYTES,
        }
    }

    /// Only the file bound (JSON, which may hold everything on one line).
    pub fn whole(inner: R) -> Self {
        Bounded {
            line_cap: None,
            ..Self::lines(inner)
        }
    }
}

impl<R: BufRead> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.inner.fill_buf()?;
        let n = available.len().min(buf.len());
        let chunk = &available[..n];
        if let Some(cap) = self.line_cap {
            for &b in chunk {
                if b == b'\n' {
                    self.line += 1;
                    self.run = 0;
                } else {
                    self.run += 1;
                    if self.run > cap {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            Overrun::Line(self.line),
                        ));
                    }
                }
            }
        }
        self.total += n as u64;
        if self.total > self.file_cap {
            return Err(io::Error::new(io::ErrorKind::InvalidData, Overrun::File));
        }
        buf[..n].copy_from_slice(chunk);
        self.inner.consume(n);
        Ok(n)
    }
}

/// The error of `file` when `e` is (or wraps) a bounded read's overrun.
pub fn overrun(file: &str, e: &(dyn std::error::Error + 'static)) -> Option<TraceError> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        let found = err
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<Overrun>())
            .or_else(|| err.downcast_ref::<Overrun>());
        if let Some(o) = found {
            return Some(TraceError {
                file: file.to_string(),
                line: match o {
                    Overrun::Line(n) => Some(*n),
                    Overrun::File => None,
                },
                column: None,
                problem: o.to_string(),
            });
        }
        cur = err.source();
    }
    None
}

/// Open `path` for a bounded read: a directory or a file larger than [`MAX_FILE_BYTES`] is
/// refused before a byte is read.
pub fn open(path: &Path) -> Result<BufReader<File>, TraceError> {
    let file = path.display().to_string();
    let fail = |problem: String| TraceError::file(&file, problem);
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if meta.is_dir() {
        return Err(fail("is a directory, not a file".to_string()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(format!(
            "the file is {} bytes; trace and snapshot files may have at most {MAX_FILE_BYTES} \
             (1 GiB)",
            meta.len()
        )));
    }
    let handle = File::open(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    Ok(BufReader::new(handle))
}

/// Read a whole text file of at most [`MAX_FILE_BYTES`]; the error names the file.
pub fn read_text(path: &Path) -> Result<String, TraceError> {
    let file = path.display().to_string();
    let mut text = String::new();
    Bounded::whole(open(path)?)
        .read_to_string(&mut text)
        .map_err(|e| {
            overrun(&file, &e)
                .unwrap_or_else(|| TraceError::file(&file, format!("cannot read: {e}")))
        })?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(mut r: impl Read) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        r.read_to_end(&mut out).map(|_| out)
    }

    #[test]
    fn lines_at_the_cap_pass_and_longer_ones_name_their_line() {
        let at_cap = format!("a\n{}\nb\n", "x".repeat(MAX_LINE_BYTES));
        let got = read_all(Bounded::lines(at_cap.as_bytes())).unwrap();
        assert_eq!(got, at_cap.as_bytes());
        let over = format!("a\nb\n{}\n", "x".repeat(MAX_LINE_BYTES + 1));
        let e = read_all(Bounded::lines(over.as_bytes())).unwrap_err();
        let err = overrun("f.csv", &e).unwrap();
        assert_eq!(
            err.to_string(),
            "f.csv:3: line is longer than 65536 bytes (is this a CSV file?)"
        );
        // Without a line cap, one long line is fine.
        let got = read_all(Bounded::whole(over.as_bytes())).unwrap();
        assert_eq!(got.len(), over.len());
    }

    #[test]
    fn an_endless_stream_stops_at_the_file_bound() {
        let endless = io::BufReader::new(io::repeat(b'\n'));
        let mut bounded = Bounded::lines(endless);
        bounded.file_cap = 1 << 20;
        let e = io::copy(&mut bounded, &mut io::sink()).unwrap_err();
        assert_eq!(
            overrun("/dev/stream", &e).unwrap().to_string(),
            "/dev/stream: the file is longer than 1073741824 bytes"
        );
    }
}
