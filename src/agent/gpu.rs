//! GPUs through NVML (nvml-wrapper, which loads `libnvidia-ml` at run time). A host without
//! the library has zero GPUs and says so once; a library whose `nvmlInit` fails (driver not
//! loaded, or the fake's broken device file) is retried on a slow timer. Per device, any
//! error other than "not supported" makes the GPU `Unhealthy` with the failing call in the
//! reason, and so do uncorrected ECC errors. A GPU that was seen and is no longer listed
//! stays in the report as `Unhealthy` ("no longer visible to NVML") until the agent restarts,
//! so a device falling off the bus never looks like a node that simply has fewer GPUs.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{EccCounter, MemoryError, TemperatureSensor};
use nvml_wrapper::error::NvmlError;

use crate::crd::{GpuHealth, GpuTelemetry};

/// How often a failed `nvmlInit` is tried again (the driver may still be loading).
pub const INIT_RETRY: Duration = Duration::from_secs(30);

/// Where NVML stands.
#[derive(Debug)]
enum State {
    /// Not tried yet, or tried and failed: try again at the instant.
    Pending(Option<Instant>),
    /// The library is not installed: zero GPUs for good.
    Absent,
    Ready(Box<Nvml>),
}

/// Samples every GPU of the host.
#[derive(Debug)]
pub struct GpuSampler {
    /// `None`: the system library (`libnvidia-ml.so.1`).
    lib: Option<PathBuf>,
    state: State,
    /// The last error `nvmlInit` gave, to log a repeated one once.
    init_error: Option<String>,
    /// Last good reading of every GPU seen, by index.
    seen: BTreeMap<u32, GpuTelemetry>,
    /// Driver version once NVML is up, for the log and metrics.
    pub driver: Option<String>,
}

/// Whether an init error means "no library here" rather than "library, but failing".
fn is_absent(e: &NvmlError) -> bool {
    matches!(
        e,
        NvmlError::LibloadingError(_) | NvmlError::LibraryNotFound
    )
}

impl GpuSampler {
    pub fn new(lib: Option<PathBuf>) -> Self {
        Self {
            lib,
            state: State::Pending(None),
            init_error: None,
            seen: BTreeMap::new(),
            driver: None,
        }
    }

    fn lib_name(&self) -> String {
        self.lib.as_ref().map_or_else(
            || "libnvidia-ml.so.1".to_string(),
            |p| p.display().to_string(),
        )
    }

    /// Try `nvmlInit` if it is time to.
    fn ensure_init(&mut self, now: Instant) {
        let State::Pending(at) = self.state else {
            return;
        };
        if at.is_some_and(|at| now < at) {
            return;
        }
        let mut builder = Nvml::builder();
        if let Some(lib) = &self.lib {
            builder.lib_path(OsStr::new(lib.as_os_str()));
        }
        match builder.init() {
            Ok(nvml) => {
                self.driver = nvml.sys_driver_version().ok();
                tracing::info!(
                    lib = %self.lib_name(),
                    driver = self.driver.as_deref().unwrap_or("unknown"),
                    "NVML initialised"
                );
                self.init_error = None;
                self.state = State::Ready(Box::new(nvml));
            }
            Err(e) if is_absent(&e) && self.lib.is_none() => {
                tracing::info!(
                    lib = %self.lib_name(),
                    error = %e,
                    "no NVIDIA management library on this host: reporting zero GPUs"
                );
                self.state = State::Absent;
            }
            Err(e) => {
                let message = e.to_string();
                if self.init_error.as_deref() != Some(message.as_str()) {
                    tracing::warn!(
                        lib = %self.lib_name(),
                        error = %message,
                        retry_seconds = INIT_RETRY.as_secs(),
                        "NVML failed to initialise: reporting zero GPUs until it does"
                    );
                    self.init_error = Some(message);
                }
                self.state = State::Pending(Some(now + INIT_RETRY));
            }
        }
    }

    /// Whether NVML is up (for `/healthz` detail and tests).
    pub fn ready(&self) -> bool {
        matches!(self.state, State::Ready(_))
    }

    /// Read every GPU, ordered by index.
    pub fn sample(&mut self, now: Instant) -> Vec<GpuTelemetry> {
        self.ensure_init(now);
        let State::Ready(nvml) = &self.state else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match nvml.device_count() {
            Ok(count) => {
                for index in 0..count {
                    let gpu = read_device(nvml, index, self.seen.get(&index));
                    if gpu.health == GpuHealth::Healthy {
                        self.seen.insert(index, gpu.clone());
                    }
                    out.push(gpu);
                }
            }
            Err(e) => {
                // Nothing can be read: every known GPU is in doubt.
                for known in self.seen.values() {
                    out.push(unhealthy(known.clone(), format!("NVML device count: {e}")));
                }
                return out;
            }
        }
        let listed = u32::try_from(out.len()).unwrap_or(u32::MAX);
        for known in self.seen.range(listed..).map(|(_, g)| g) {
            out.push(unhealthy(
                known.clone(),
                "no longer visible to NVML".to_string(),
            ));
        }
        out
    }
}

fn unhealthy(mut gpu: GpuTelemetry, reason: String) -> GpuTelemetry {
    gpu.health = GpuHealth::Unhealthy;
    gpu.reason = Some(reason);
    gpu
}

/// Read one device. `known` (its last good reading) fills identity fields a failing device
/// can no longer report.
fn read_device(nvml: &Nvml, index: u32, known: Option<&GpuTelemetry>) -> GpuTelemetry {
    let base = known.cloned().unwrap_or_else(|| GpuTelemetry {
        index,
        uuid: format!("unknown-{index}"),
        model: "unknown".to_string(),
        ..GpuTelemetry::default()
    });
    let device = match nvml.device_by_index(index) {
        Ok(d) => d,
        Err(e) => return unhealthy(base, format!("NVML device handle: {e}")),
    };
    // Identity and memory are required: any error makes the GPU unusable.
    let required = (|| -> Result<GpuTelemetry, String> {
        let fail = |call: &'static str| move |e: NvmlError| format!("NVML {call}: {e}");
        let memory = device.memory_info().map_err(fail("memory info"))?;
        Ok(GpuTelemetry {
            index,
            uuid: device.uuid().map_err(fail("UUID"))?,
            model: device.name().map_err(fail("name"))?,
            memory_total_bytes: memory.total,
            memory_used_bytes: memory.used,
            health: GpuHealth::Healthy,
            ..GpuTelemetry::default()
        })
    })();
    let mut gpu = match required {
        Ok(g) => g,
        Err(reason) => return unhealthy(base, reason),
    };
    // Optional readings: "not supported" leaves the default; anything else is a fault.
    let mut faults = Vec::new();
    let mut optional = |call: &'static str, r: Result<(), NvmlError>| match r {
        Ok(()) | Err(NvmlError::NotSupported) => {}
        Err(e) => faults.push(format!("NVML {call}: {e}")),
    };
    optional(
        "utilization",
        device.utilization_rates().map(|u| {
            gpu.utilization_gpu_percent = u.gpu.min(100);
            gpu.utilization_memory_percent = u.memory.min(100);
        }),
    );
    optional(
        "temperature",
        device
            .temperature(TemperatureSensor::Gpu)
            .map(|t| gpu.temperature_celsius = t),
    );
    optional(
        "power",
        device
            .power_usage()
            .map(|p| gpu.power_milliwatts = u64::from(p)),
    );
    optional(
        "MIG mode",
        device
            .mig_mode()
            .map(|m| gpu.mig_enabled = Some(m.current == 1)),
    );
    let mut ecc = 0;
    optional(
        "ECC errors",
        device
            .total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
            .map(|n| ecc = n),
    );
    if ecc > 0 {
        faults.insert(0, format!("{ecc} uncorrected ECC errors"));
    }
    if faults.is_empty() {
        gpu
    } else {
        unhealthy(gpu, faults.join("; "))
    }
}
