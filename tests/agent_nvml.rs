//! The agent's GPU sampling against the fake NVML (`fake-nvml/`), loaded through the real
//! nvml-wrapper path (`Nvml::builder().lib_path(..)`), including its failure modes.
//!
//! The fake library keeps its state per process and reads its device file from an
//! environment variable, so each scenario runs in a child process: the test re-runs its own
//! binary with `--exact <name>` and the variable set, and the child does the work. The library
//! is built here with `cargo build -p allot-fake-nvml` (a no-op when it is up to date), so a
//! clean `cargo test --workspace` needs nothing built beforehand.
#![cfg(feature = "k8s")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use allot::agent::GpuSampler;
use allot::crd::GpuHealth;
use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;
use serde_json::{Value, json};

const CONFIG_ENV: &str = "ALLOT_FAKE_NVML_CONFIG";
const LIB_ENV: &str = "ALLOT_FAKE_NVML_LIB";

#[path = "../e2e/src/cargo.rs"]
mod cargo;

/// Build the fake library once per test process and return its path.
fn fake_lib() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        // <target>/<profile>/deps/<this test>: build into the same target directory.
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable under <target>/<profile>/deps");
        let target = profile_dir.parent().expect("a target directory");
        let mut cmd = cargo::nested_cargo();
        cmd.args(["build", "--quiet", "-p", "allot-fake-nvml"])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .expect("running cargo build -p allot-fake-nvml");
        assert!(
            status.success(),
            "cargo build -p allot-fake-nvml failed: {status}"
        );
        let lib = profile_dir.join("libnvidia_ml_fake.so");
        assert!(lib.exists(), "{} missing after the build", lib.display());
        lib
    })
    .clone()
}

/// In the parent: write `config`, re-run `test` in a child with the fake configured, and
/// return the child's stderr. In the child: `None`, so the caller runs the scenario.
fn in_child(test: &str, config: &str) -> Option<String> {
    if std::env::var_os(CONFIG_ENV).is_some() {
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gpus.json");
    std::fs::write(&path, config).expect("writing the device file");
    let out = Command::new(std::env::current_exe().expect("test executable"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CONFIG_ENV, &path)
        .env(LIB_ENV, fake_lib())
        .output()
        .expect("running the child test");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child {test} failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("1 passed"), "child ran no test:\n{stdout}");
    Some(stderr)
}

fn config_path() -> PathBuf {
    PathBuf::from(std::env::var_os(CONFIG_ENV).expect("set by the parent"))
}

fn lib_path() -> PathBuf {
    PathBuf::from(std::env::var_os(LIB_ENV).expect("set by the parent"))
}

/// Rewrite the device file with a modification time that surely differs from the last one.
fn rewrite(config: &Value, step: u64) {
    let path = config_path();
    std::fs::write(&path, config.to_string()).expect("rewriting the device file");
    let file = std::fs::File::options()
        .write(true)
        .open(&path)
        .expect("opening the device file");
    file.set_modified(SystemTime::now() + Duration::from_secs(step))
        .expect("setting mtime");
}

fn gpu(i: u32) -> Value {
    json!({
        "uuid": format!("GPU-0000000{i}"),
        "name": "NVIDIA A100-SXM4-80GB",
        "memoryTotalBytes": 80u64 << 30,
        "memoryUsedBytes": (u64::from(i) + 1) << 30,
        "utilizationGpu": 10 * i,
        "utilizationMemory": 5 * i,
        "temperatureCelsius": 40 + i,
        "powerMilliwatts": 60_000 + i,
        "eccUncorrected": 0,
    })
}

#[test]
fn serves_devices_through_nvml_wrapper() {
    let mut mig = gpu(1);
    mig["migEnabled"] = json!(true);
    mig["name"] = json!("NVIDIA H100 80GB HBM3");
    let config = json!({ "driverVersion": "550.54.15", "gpus": [gpu(0), mig] });
    if in_child("serves_devices_through_nvml_wrapper", &config.to_string()).is_some() {
        return;
    }
    let lib = lib_path();
    let nvml = Nvml::builder()
        .lib_path(lib.as_os_str())
        .init()
        .expect("init");
    assert_eq!(nvml.sys_driver_version().expect("driver"), "550.54.15");
    assert_eq!(nvml.device_count().expect("count"), 2);
    let d = nvml.device_by_index(0).expect("handle");
    assert_eq!(d.memory_info().expect("memory").free, 79u64 << 30);
    assert!(matches!(d.mig_mode(), Err(NvmlError::NotSupported)));
    assert!(matches!(
        nvml.device_by_index(2),
        Err(NvmlError::InvalidArg)
    ));
    drop(nvml);

    let mut sampler = GpuSampler::new(Some(lib));
    let gpus = sampler.sample(Instant::now());
    assert!(sampler.ready());
    assert_eq!(sampler.driver.as_deref(), Some("550.54.15"));
    assert_eq!(gpus.len(), 2);
    let g = &gpus[1];
    assert_eq!(g.index, 1);
    assert_eq!(g.uuid, "GPU-00000001");
    assert_eq!(g.model, "NVIDIA H100 80GB HBM3");
    assert_eq!(g.memory_total_bytes, 80u64 << 30);
    assert_eq!(g.memory_used_bytes, 2u64 << 30);
    assert_eq!(
        (g.utilization_gpu_percent, g.utilization_memory_percent),
        (10, 5)
    );
    assert_eq!(g.temperature_celsius, 41);
    assert_eq!(g.power_milliwatts, 60_001);
    assert_eq!(g.mig_enabled, Some(true));
    assert_eq!(gpus[0].mig_enabled, None);
    assert!(
        gpus.iter()
            .all(|g| g.health == GpuHealth::Healthy && g.reason.is_none())
    );
}

#[test]
fn failing_and_vanishing_gpus_turn_unhealthy() {
    let mut config = json!({ "gpus": [gpu(0), gpu(1), gpu(2), gpu(3)] });
    if in_child(
        "failing_and_vanishing_gpus_turn_unhealthy",
        &config.to_string(),
    )
    .is_some()
    {
        return;
    }
    let mut sampler = GpuSampler::new(Some(lib_path()));
    let healthy = sampler.sample(Instant::now());
    assert_eq!(healthy.len(), 4);

    config["gpus"][0]["eccUncorrected"] = json!(3);
    config["gpus"][1]["fail"] = json!("lost");
    config["gpus"][2]["fail"] = json!("unknown");
    rewrite(&config, 10);
    let gpus = sampler.sample(Instant::now());
    let health: Vec<_> = gpus.iter().map(|g| g.health).collect();
    assert_eq!(
        health,
        [
            GpuHealth::Unhealthy,
            GpuHealth::Unhealthy,
            GpuHealth::Unhealthy,
            GpuHealth::Healthy
        ]
    );
    assert_eq!(gpus[0].reason.as_deref(), Some("3 uncorrected ECC errors"));
    let lost = gpus[1].reason.as_deref().unwrap_or_default();
    assert!(lost.starts_with("NVML device handle:"), "{lost}");
    assert!(lost.contains("fell off the bus"), "{lost}");
    // The identity of a failing GPU comes from its last good reading.
    assert_eq!(gpus[1].uuid, "GPU-00000001");
    assert!(
        gpus[2]
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("NVML")
    );

    // The last GPU disappears: it stays in the report, unhealthy.
    config["gpus"].as_array_mut().expect("array").pop();
    rewrite(&config, 20);
    let gpus = sampler.sample(Instant::now());
    assert_eq!(gpus.len(), 4);
    assert_eq!(gpus[3].uuid, "GPU-00000003");
    assert_eq!(gpus[3].health, GpuHealth::Unhealthy);
    assert_eq!(gpus[3].reason.as_deref(), Some("no longer visible to NVML"));

    // A broken rewrite keeps the previous devices (and says so on stderr).
    std::fs::write(config_path(), "{ not json").expect("write");
    let file = std::fs::File::options()
        .write(true)
        .open(config_path())
        .expect("open");
    file.set_modified(SystemTime::now() + Duration::from_secs(30))
        .expect("mtime");
    assert_eq!(sampler.sample(Instant::now()).len(), 4);

    // Everything recovers when the file is healthy again.
    rewrite(&json!({ "gpus": [gpu(0), gpu(1), gpu(2), gpu(3)] }), 40);
    let gpus = sampler.sample(Instant::now());
    assert!(
        gpus.iter().all(|g| g.health == GpuHealth::Healthy),
        "{gpus:?}"
    );
}

#[test]
fn broken_device_file_fails_init_naming_the_file() {
    let stderr = in_child(
        "broken_device_file_fails_init_naming_the_file",
        r#"{"gpus": [{"uuid": 7}]}"#,
    );
    if let Some(stderr) = stderr {
        assert!(stderr.contains("fake NVML: "), "{stderr}");
        assert!(
            stderr.contains("gpus.json: invalid device file"),
            "{stderr}"
        );
        assert!(stderr.contains("line 1"), "{stderr}");
        return;
    }
    let lib = lib_path();
    let err = Nvml::builder()
        .lib_path(lib.as_os_str())
        .init()
        .expect_err("a broken file must fail nvmlInit");
    assert!(matches!(err, NvmlError::Unknown), "{err:?}");
    // The agent keeps running with zero GPUs.
    let mut sampler = GpuSampler::new(Some(lib));
    assert!(sampler.sample(Instant::now()).is_empty());
    assert!(!sampler.ready());
}

#[test]
fn no_library_means_zero_gpus() {
    let mut sampler = GpuSampler::new(Some(PathBuf::from("/nonexistent/libnvidia-ml.so.1")));
    assert!(sampler.sample(Instant::now()).is_empty());
    assert!(!sampler.ready());
    if let Err(NvmlError::LibloadingError(_)) = Nvml::init() {
        // No driver on this machine: the default library path reports zero GPUs too.
        let mut sampler = GpuSampler::new(None);
        assert!(sampler.sample(Instant::now()).is_empty());
        assert!(!sampler.ready());
    }
}
