//! CPU and memory in use on this host, from the kernel (`/proc/stat`, `/proc/meminfo`).
//! Parsing is pure; [`HostSampler`] keeps the previous CPU counters because CPU use is a rate
//! (the busy share of the jiffies elapsed between two samples).

use std::path::{Path, PathBuf};

/// Why a host sample failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Parse { path: String, what: String },
}

/// Aggregate CPU counters from the `cpu ` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// Every tick since boot (guest time is already inside user/nice and is not added again).
    pub total: u64,
    /// Ticks not idle and not waiting for I/O.
    pub busy: u64,
    /// Number of `cpuN` lines: logical CPUs online.
    pub cpus: u32,
}

/// Parse `/proc/stat`.
pub fn parse_stat(text: &str) -> Result<CpuTimes, String> {
    let mut times = None;
    let mut cpus = 0u32;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        match fields.next() {
            Some("cpu") => {
                let values = fields
                    .map(|f| {
                        f.parse::<u64>()
                            .map_err(|_| format!("bad number {f:?} in {line:?}"))
                    })
                    .collect::<Result<Vec<u64>, String>>()?;
                if values.len() < 4 {
                    return Err(format!(
                        "the cpu line has {} fields, need 4: {line:?}",
                        values.len()
                    ));
                }
                // user nice system idle iowait irq softirq steal [guest guest_nice]
                let total: u64 = values.iter().take(8).sum();
                let idle = values[3] + values.get(4).copied().unwrap_or(0);
                times = Some((total, total.saturating_sub(idle)));
            }
            Some(name) if name.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    let (total, busy) = times.ok_or("no aggregate `cpu` line")?;
    Ok(CpuTimes {
        total,
        busy,
        cpus: cpus.max(1),
    })
}

/// Millicores in use between two samples: the busy share of the ticks that passed, times
/// the number of CPUs. `None` when no time passed (nothing to divide by).
pub fn cpu_used_milli(before: CpuTimes, after: CpuTimes) -> Option<u64> {
    let total = after.total.checked_sub(before.total)?;
    if total == 0 {
        return None;
    }
    let busy = after.busy.saturating_sub(before.busy).min(total);
    Some(busy * u64::from(after.cpus) * 1000 / total)
}

/// Memory in use from `/proc/meminfo`: `MemTotal - MemAvailable`, in bytes (the kernel's own
/// estimate of what could be given to a new workload without swapping).
pub fn parse_meminfo(text: &str) -> Result<u64, String> {
    let field = |name: &str| -> Result<u64, String> {
        let line = text
            .lines()
            .find(|l| l.split(':').next() == Some(name))
            .ok_or_else(|| format!("no {name} line"))?;
        let value = line[name.len() + 1..].trim();
        let number = value.strip_suffix("kB").unwrap_or(value).trim();
        let kib: u64 = number
            .parse()
            .map_err(|_| format!("bad {name} value {value:?}"))?;
        Ok(kib * 1024)
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable")?;
    Ok(total.saturating_sub(available))
}

/// One reading of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSample {
    /// `None` on the first sample (a rate needs two).
    pub cpu_used_milli: Option<u64>,
    pub memory_used_bytes: u64,
}

/// Reads `/proc` (or a copy of it, e.g. the host's mounted into a container).
#[derive(Debug)]
pub struct HostSampler {
    proc_dir: PathBuf,
    last: Option<CpuTimes>,
}

impl HostSampler {
    pub fn new(proc_dir: &Path) -> Self {
        Self {
            proc_dir: proc_dir.to_path_buf(),
            last: None,
        }
    }

    fn read(&self, name: &str) -> Result<(String, String), HostError> {
        let path = self.proc_dir.join(name);
        let shown = path.display().to_string();
        std::fs::read_to_string(&path)
            .map(|t| (t, shown.clone()))
            .map_err(|source| HostError::Read {
                path: shown,
                source,
            })
    }

    pub fn sample(&mut self) -> Result<HostSample, HostError> {
        let (stat, stat_path) = self.read("stat")?;
        let times = parse_stat(&stat).map_err(|what| HostError::Parse {
            path: stat_path,
            what,
        })?;
        let (meminfo, mem_path) = self.read("meminfo")?;
        let memory_used_bytes = parse_meminfo(&meminfo).map_err(|what| HostError::Parse {
            path: mem_path,
            what,
        })?;
        let cpu_used_milli = self.last.and_then(|before| cpu_used_milli(before, times));
        self.last = Some(times);
        Ok(HostSample {
            cpu_used_milli,
            memory_used_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 20 30 800 50 0 0 0 0 0\n\
                        cpu0 50 10 15 400 25 0 0 0 0 0\n\
                        cpu1 50 10 15 400 25 0 0 0 0 0\n\
                        intr 12345\nctxt 999\n";

    #[test]
    fn stat_counts_busy_total_and_cpus() {
        let t = parse_stat(STAT).expect("valid");
        assert_eq!(t.total, 1000);
        assert_eq!(t.busy, 150);
        assert_eq!(t.cpus, 2);
    }

    #[test]
    fn stat_errors_say_what_is_wrong() {
        assert!(
            parse_stat("intr 1\n")
                .expect_err("no cpu")
                .contains("no aggregate")
        );
        assert!(
            parse_stat("cpu 1 2 x 4\n")
                .expect_err("bad")
                .contains("\"x\"")
        );
        assert!(
            parse_stat("cpu 1 2\n")
                .expect_err("short")
                .contains("2 fields")
        );
    }

    #[test]
    fn cpu_rate_is_the_busy_share_times_cpus() {
        let a = CpuTimes {
            total: 1000,
            busy: 100,
            cpus: 2,
        };
        let b = CpuTimes {
            total: 1200,
            busy: 150,
            cpus: 2,
        };
        // 50 of 200 ticks busy on 2 CPUs: half a core.
        assert_eq!(cpu_used_milli(a, b), Some(500));
        assert_eq!(cpu_used_milli(a, a), None);
        // Counters that went backwards (a reset) give no reading instead of nonsense.
        assert_eq!(cpu_used_milli(b, a), None);
    }

    #[test]
    fn meminfo_used_is_total_minus_available() {
        let text = "MemTotal:       16000 kB\nMemFree:         1000 kB\nMemAvailable:    6000 kB\n";
        assert_eq!(parse_meminfo(text), Ok(10_000 * 1024));
        assert!(
            parse_meminfo("MemTotal: 1 kB\n")
                .expect_err("missing")
                .contains("MemAvailable")
        );
        assert!(
            parse_meminfo("MemTotal: x kB\nMemAvailable: 1 kB\n")
                .expect_err("bad")
                .contains("MemTotal")
        );
    }

    #[test]
    fn sampler_reads_a_proc_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("stat"), STAT).expect("write");
        std::fs::write(
            dir.path().join("meminfo"),
            "MemTotal: 4 kB\nMemAvailable: 1 kB\n",
        )
        .expect("write");
        let mut s = HostSampler::new(dir.path());
        let first = s.sample().expect("sample");
        assert_eq!(first.cpu_used_milli, None);
        assert_eq!(first.memory_used_bytes, 3 * 1024);
        std::fs::write(
            dir.path().join("stat"),
            "cpu  200 20 30 900 50 0 0 0\ncpu0 1\ncpu1 1\n",
        )
        .expect("write");
        // 100 busy of 200 ticks on 2 CPUs.
        assert_eq!(s.sample().expect("sample").cpu_used_milli, Some(1000));
        let missing = HostSampler::new(&dir.path().join("nope")).sample();
        assert!(matches!(missing, Err(HostError::Read { .. })));
    }
}
