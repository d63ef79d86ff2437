//! The fake's device table: the JSON file named by [`CONFIG_ENV`], parsed into [`Config`], and
//! the loaded state that follows the file's modification time so a test can change the GPUs
//! of a running process by rewriting the file. No `unsafe` here.
//!
//! ```json
//! { "driverVersion": "550.54.15",
//!   "gpus": [
//!     { "uuid": "GPU-0", "name": "NVIDIA A100-SXM4-80GB", "memoryTotalBytes": 85899345920,
//!       "memoryUsedBytes": 1073741824, "utilizationGpu": 30, "utilizationMemory": 10,
//!       "temperatureCelsius": 45, "powerMilliwatts": 90000, "migEnabled": false,
//!       "eccUncorrected": 0 },
//!     { "uuid": "GPU-1", "name": "NVIDIA A100-SXM4-80GB", "memoryTotalBytes": 85899345920,
//!       "fail": "lost" } ] }
//! ```
//!
//! Omitted readings are 0; omitting `migEnabled` / `eccUncorrected` makes the device answer
//! "not supported" for them, as a consumer GPU does.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

/// Environment variable holding the path of the JSON device file.
pub const CONFIG_ENV: &str = "ALLOT_FAKE_NVML_CONFIG";

/// The whole file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// What `nvmlSystemGetDriverVersion` answers.
    #[serde(default = "default_driver")]
    pub driver_version: String,
    /// The devices, index = position in the list. Removing an entry makes that GPU (and the
    /// ones after it) disappear from a running process.
    #[serde(default)]
    pub gpus: Vec<Gpu>,
}

fn default_driver() -> String {
    "550.0-fake".to_string()
}

/// One device.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gpu {
    pub uuid: String,
    pub name: String,
    pub memory_total_bytes: u64,
    #[serde(default)]
    pub memory_used_bytes: u64,
    /// Percent, 0..=100.
    #[serde(default)]
    pub utilization_gpu: u32,
    /// Percent, 0..=100.
    #[serde(default)]
    pub utilization_memory: u32,
    #[serde(default)]
    pub temperature_celsius: u32,
    #[serde(default)]
    pub power_milliwatts: u32,
    /// `None`: the device does not support MIG (`NVML_ERROR_NOT_SUPPORTED`).
    #[serde(default)]
    pub mig_enabled: Option<bool>,
    /// Volatile uncorrected ECC errors; `None`: ECC not supported.
    #[serde(default)]
    pub ecc_uncorrected: Option<u64>,
    /// When set, every call about this device fails with this error.
    #[serde(default)]
    pub fail: Option<Failure>,
}

/// How a failing device fails.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Failure {
    /// `NVML_ERROR_GPU_IS_LOST`: fell off the bus.
    Lost,
    /// `NVML_ERROR_UNKNOWN`.
    Unknown,
}

/// Why a device file could not be used; printed to stderr by the library, since NVML's return
/// codes cannot carry a message.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl Config {
    /// Parse and check a device file's text; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let config: Config = serde_json::from_str(text)
            .map_err(|e| ConfigError(format!("{}: invalid device file: {e}", path.display())))?;
        for (i, gpu) in config.gpus.iter().enumerate() {
            let bad = |what: &str| ConfigError(format!("{}: gpus[{i}]: {what}", path.display()));
            if gpu.uuid.is_empty() || gpu.uuid.len() >= 80 {
                return Err(bad("uuid must have 1 to 79 characters"));
            }
            if gpu.name.is_empty() || gpu.name.len() >= 96 {
                return Err(bad("name must have 1 to 95 characters"));
            }
            if gpu.memory_used_bytes > gpu.memory_total_bytes {
                return Err(bad("memoryUsedBytes exceeds memoryTotalBytes"));
            }
            if gpu.utilization_gpu > 100 || gpu.utilization_memory > 100 {
                return Err(bad("utilization must be a percentage (0 to 100)"));
            }
        }
        Ok(config)
    }

    /// Read and parse `path`, with the modification time it had.
    pub fn read(path: &Path) -> Result<(Self, Option<SystemTime>), ConfigError> {
        let mtime = modified(path);
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!("{}: cannot read device file: {e}", path.display()))
        })?;
        Ok((Self::parse(path, &text)?, mtime))
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The library's state between `nvmlInit` and the last `nvmlShutdown`.
#[derive(Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub config: Config,
    /// Modification time of the file `config` came from.
    seen: Option<SystemTime>,
    /// Modification time of a version that failed to load, so the error is printed once.
    rejected: Option<SystemTime>,
    /// `nvmlInit` calls not yet matched by `nvmlShutdown`.
    pub inits: u32,
}

impl Loaded {
    /// Load the file named by [`CONFIG_ENV`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let path = std::env::var_os(CONFIG_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| ConfigError(format!("{CONFIG_ENV} is not set: no device file")))?;
        let (config, seen) = Config::read(&path)?;
        Ok(Self {
            path,
            config,
            seen,
            rejected: None,
            inits: 1,
        })
    }

    /// Re-read the file if it changed since it was last read. A broken new version keeps
    /// the previous devices (and says so once), like a driver that keeps its last state.
    pub fn refresh(&mut self) -> Option<ConfigError> {
        let now = modified(&self.path);
        if now == self.seen || now == self.rejected {
            return None;
        }
        match Config::read(&self.path) {
            Ok((config, seen)) => {
                self.config = config;
                self.seen = seen;
                self.rejected = None;
                None
            }
            Err(e) => {
                self.rejected = now;
                Some(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("gpus.json"), text)
    }

    #[test]
    fn a_minimal_device_gets_defaults() {
        let c = parse(r#"{"gpus":[{"uuid":"GPU-1","name":"A100","memoryTotalBytes":1024}]}"#)
            .expect("valid");
        assert_eq!(c.driver_version, "550.0-fake");
        assert_eq!(c.gpus[0].memory_used_bytes, 0);
        assert_eq!(c.gpus[0].mig_enabled, None);
        assert_eq!(c.gpus[0].fail, None);
    }

    #[test]
    fn failures_parse() {
        let c = parse(
            r#"{"gpus":[{"uuid":"GPU-1","name":"A","memoryTotalBytes":1,"fail":"lost"},
                        {"uuid":"GPU-2","name":"A","memoryTotalBytes":1,"fail":"unknown"}]}"#,
        )
        .expect("valid");
        assert_eq!(c.gpus[0].fail, Some(Failure::Lost));
        assert_eq!(c.gpus[1].fail, Some(Failure::Unknown));
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let e = parse("{").expect_err("broken json");
        assert!(e.0.starts_with("gpus.json: invalid device file"), "{}", e.0);
        let e = parse(
            r#"{"gpus":[{"uuid":"GPU-1","name":"A","memoryTotalBytes":1,"memoryUsedBytes":2}]}"#,
        )
        .expect_err("used > total");
        assert!(e.0.contains("gpus[0]: memoryUsedBytes"), "{}", e.0);
        let e = parse(r#"{"gpus":[{"uuid":"GPU-1","name":"A","memoryTotalBytes":1,"colour":1}]}"#)
            .expect_err("unknown field");
        assert!(e.0.contains("colour"), "{}", e.0);
        let e = parse(r#"{"gpus":[{"uuid":"","name":"A","memoryTotalBytes":1}]}"#)
            .expect_err("empty uuid");
        assert!(e.0.contains("uuid"), "{}", e.0);
    }
}
