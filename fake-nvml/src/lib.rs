//! A fake `libnvidia-ml.so` for machines without a GPU: the subset of the NVML C API that the
//! allot agent uses through nvml-wrapper, serving devices described by the JSON file named in
//! `ALLOT_FAKE_NVML_CONFIG` (see [`config`]). Tests load it with
//! `Nvml::builder().lib_path(...)`, so the real wrapper code runs against it.
//!
//! Failure modes, all driven by the file (re-read whenever its modification time changes):
//! a device with `"fail": "lost"` / `"unknown"` answers every call with
//! `NVML_ERROR_GPU_IS_LOST` / `NVML_ERROR_UNKNOWN`; removing a device makes the count drop and
//! old handles answer `GPU_IS_LOST`; `eccUncorrected > 0` reports ECC errors; a missing or
//! broken file makes `nvmlInit` fail (with the reason on stderr, since a return code cannot
//! carry one).
//!
//! This is the one crate of the workspace with `unsafe`: the exported functions receive raw
//! pointers from C callers. Every pointer goes through [`write_out`] or [`write_str`], which
//! check for null; the handle type is an index in disguise and is never dereferenced.

pub mod config;

use std::ffi::{c_char, c_uint, c_ulonglong};
use std::sync::{Mutex, MutexGuard, PoisonError};

use config::{Failure, Gpu, Loaded};

/// `nvmlReturn_t`.
type Ret = c_uint;
const SUCCESS: Ret = 0;
const ERROR_UNINITIALIZED: Ret = 1;
const ERROR_INVALID_ARGUMENT: Ret = 2;
const ERROR_NOT_SUPPORTED: Ret = 3;
const ERROR_NOT_FOUND: Ret = 6;
const ERROR_INSUFFICIENT_SIZE: Ret = 7;
const ERROR_GPU_IS_LOST: Ret = 15;
const ERROR_UNKNOWN: Ret = 999;

/// `NVML_MEMORY_ERROR_TYPE_UNCORRECTED`.
const MEMORY_ERROR_UNCORRECTED: c_uint = 1;

/// `nvmlDevice_t`: an opaque pointer to the caller. Here it holds `index + 1` (so it is
/// never null) and is only ever turned back into a number.
#[repr(C)]
#[derive(Debug)]
pub struct Device {
    _opaque: [u8; 0],
}
pub type DeviceHandle = *mut Device;

/// `nvmlMemory_v2_t`.
#[repr(C)]
#[derive(Debug)]
pub struct MemoryV2 {
    pub version: c_uint,
    pub total: c_ulonglong,
    pub reserved: c_ulonglong,
    pub free: c_ulonglong,
    pub used: c_ulonglong,
}

/// `nvmlUtilization_t`.
#[repr(C)]
#[derive(Debug)]
pub struct Utilization {
    pub gpu: c_uint,
    pub memory: c_uint,
}

static STATE: Mutex<Option<Loaded>> = Mutex::new(None);

fn state() -> MutexGuard<'static, Option<Loaded>> {
    // A panic cannot cross the C boundary (it aborts), so poisoning only means an earlier
    // caller's thread died elsewhere; the table itself is always whole.
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn say(message: &str) {
    use std::io::Write;
    // stderr is the only channel for the reason; nothing to do if it is closed.
    let _ = writeln!(std::io::stderr(), "fake NVML: {message}");
}

/// Run `f` on the current device table after picking up file changes.
fn with_config<T>(f: impl FnOnce(&config::Config) -> Result<T, Ret>) -> Result<T, Ret> {
    let mut guard = state();
    let loaded = guard.as_mut().ok_or(ERROR_UNINITIALIZED)?;
    if let Some(e) = loaded.refresh() {
        say(&format!("{}; keeping the previous devices", e.0));
    }
    f(&loaded.config)
}

/// Run `f` on the device behind `handle`, or the error that device answers with.
fn with_gpu<T>(handle: DeviceHandle, f: impl FnOnce(&Gpu) -> Result<T, Ret>) -> Ret
where
    T: Sized,
{
    let index = (handle as usize)
        .checked_sub(1)
        .ok_or(ERROR_INVALID_ARGUMENT);
    status(with_config(|c| {
        let gpu = c.gpus.get(index?).ok_or(ERROR_GPU_IS_LOST)?;
        match gpu.fail {
            Some(Failure::Lost) => Err(ERROR_GPU_IS_LOST),
            Some(Failure::Unknown) => Err(ERROR_UNKNOWN),
            None => f(gpu).map(|_| ()),
        }
    }))
}

fn status(r: Result<(), Ret>) -> Ret {
    r.err().unwrap_or(SUCCESS)
}

/// Store `value` through a caller's out-pointer.
fn write_out<T>(ptr: *mut T, value: T) -> Result<(), Ret> {
    if ptr.is_null() {
        return Err(ERROR_INVALID_ARGUMENT);
    }
    // SAFETY: non-null, and the NVML contract makes the caller pass a pointer to a live,
    // writable, aligned `T` for the duration of the call.
    unsafe { ptr.write(value) };
    Ok(())
}

/// Copy `text` and a terminating NUL into a caller's buffer of `len` bytes.
fn write_str(buf: *mut c_char, len: c_uint, text: &str) -> Result<(), Ret> {
    if buf.is_null() {
        return Err(ERROR_INVALID_ARGUMENT);
    }
    let bytes = text.as_bytes();
    if bytes.len() + 1 > len as usize {
        return Err(ERROR_INSUFFICIENT_SIZE);
    }
    // SAFETY: the caller promises `len` writable bytes at `buf` (NVML contract) and we write
    // `bytes.len() + 1 <= len` of them; source and destination cannot overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), buf, bytes.len());
        buf.add(bytes.len()).write(0);
    }
    Ok(())
}

/// `nvmlInit_v2`: load the device file, or count one more user of the loaded one.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit_v2() -> Ret {
    let mut guard = state();
    if let Some(loaded) = guard.as_mut() {
        loaded.inits += 1;
        return SUCCESS;
    }
    match Loaded::from_env() {
        Ok(loaded) => {
            *guard = Some(loaded);
            SUCCESS
        }
        Err(e) => {
            say(&e.0);
            ERROR_UNKNOWN
        }
    }
}

/// `nvmlInit`: the v1 name of the same call.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit() -> Ret {
    nvmlInit_v2()
}

/// `nvmlShutdown`: drop the device table when the last user leaves.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlShutdown() -> Ret {
    let mut guard = state();
    let Some(loaded) = guard.as_mut() else {
        return ERROR_UNINITIALIZED;
    };
    loaded.inits = loaded.inits.saturating_sub(1);
    if loaded.inits == 0 {
        *guard = None;
    }
    SUCCESS
}

/// `nvmlErrorString`: a static description of a return code.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlErrorString(code: Ret) -> *const c_char {
    let text = match code {
        SUCCESS => c"Success",
        ERROR_UNINITIALIZED => c"Uninitialized",
        ERROR_INVALID_ARGUMENT => c"Invalid Argument",
        ERROR_NOT_SUPPORTED => c"Not Supported",
        ERROR_NOT_FOUND => c"Not Found",
        ERROR_INSUFFICIENT_SIZE => c"Insufficient Size",
        ERROR_GPU_IS_LOST => c"GPU is lost",
        _ => c"Unknown Error",
    };
    text.as_ptr()
}

/// `nvmlSystemGetDriverVersion`.
/// # Safety
/// Pointer arguments must be null or valid for the call, as `nvml.h` requires.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(version: *mut c_char, length: c_uint) -> Ret {
    status(with_config(|c| {
        write_str(version, length, &c.driver_version)
    }))
}

/// `nvmlDeviceGetCount_v2`.
/// # Safety
/// Pointer arguments must be null or valid for the call, as `nvml.h` requires.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(count: *mut c_uint) -> Ret {
    status(with_config(|c| {
        write_out(count, c_uint::try_from(c.gpus.len()).unwrap_or(c_uint::MAX))
    }))
}

/// `nvmlDeviceGetHandleByIndex_v2`; an index past the count is `INVALID_ARGUMENT`, as with
/// the real library.
/// # Safety
/// Pointer arguments must be null or valid for the call, as `nvml.h` requires.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    device: *mut DeviceHandle,
) -> Ret {
    status(with_config(|c| {
        let gpu = c.gpus.get(index as usize).ok_or(ERROR_INVALID_ARGUMENT)?;
        match gpu.fail {
            Some(Failure::Lost) => return Err(ERROR_GPU_IS_LOST),
            Some(Failure::Unknown) => return Err(ERROR_UNKNOWN),
            None => {}
        }
        write_out(device, std::ptr::without_provenance_mut(index as usize + 1))
    }))
}

/// `nvmlDeviceGetName`.
/// # Safety
/// Pointer arguments must be null or valid for the call, as `nvml.h` requires.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetName(
    device: DeviceHandle,
    name: *mut c_char,
    length: c_uint,
) -> Ret {
    with_gpu(device, |g| write_str(name, length, &g.name))
}

/// `nvmlDeviceGetUUID`.
/// # Safety
/// Pointer arguments must be null or valid for the call, as `nvml.h` requires.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    device: DeviceHandle,
    uuid: *mut c_char,
    length: c_uint,
) -> Ret {
    with_gpu(device, |g| write_str(uuid, length, &g.uuid))
}

/// `nvmlDeviceGetMemoryInfo_v2` (what nvml-wrapper 0.13 calls for `memory_info`).
/// # Safety
/// Pointer arguments must be null or valid for the call, as `nvml.h` requires.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(
    device: DeviceHandle,
    memory: *mut MemoryV2,
) -> Ret {
    with_gpu(device, |g| {
        // The caller set `version` (struct size | 2 << 24); keep it as the real library does.
        let version = if memory.is_null() {
            0
        } else {
            // SAFETY: non-null, and the caller passes a live, initialised nvmlMemory_v2_t.
            unsafe { (*memory).version }
        };
        write_out(
            memory,
            MemoryV2 {
                version,
                total: g.memory_total_bytes,
                reserved: 0,
                free: g.memory_total_bytes - g.memory_used_bytes,
                used: g.memory_used_bytes,
            },
        )
    })
}

/// `nvmlDeviceGetUtilizationRates`.
/// # Safety
/// Pointer arguments must be null or valid for the call, as `nvml.h` requires.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUtilizationRates(
    device: DeviceHandle,
    utilization: *mut Utilization,
) -> Ret {
    with_gpu(device, |g| {
        write_out(
            utilization,
            Utilization {
                gpu: g.utilization_gpu,
                memory: g.utilization_memory,
            },
        )
    })
}

/// `nvmlDeviceGetTemperature` (every sensor reads the die temperature).
/// # Safety
/// Pointer arguments must be null or valid for the call, as `nvml.h` requires.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    device: DeviceHandle,
    _sensor: c_uint,
    temp: *mut c_uint,
) -> Ret {
    with_gpu(device, |g| write_out(temp, g.temperature_celsius))
}

/// `nvmlDeviceGetPowerUsage`, in milliwatts.
/// # Safety
/// Pointer arguments must be null or valid for the call, as `nvml.h` requires.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(device: DeviceHandle, power: *mut c_uint) -> Ret {
    with_gpu(device, |g| write_out(power, g.power_milliwatts))
}

/// `nvmlDeviceGetMigMode`: `NOT_SUPPORTED` unless the device sets `migEnabled`.
/// # Safety
/// Pointer arguments must be null or valid for the call, as `nvml.h` requires.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMigMode(
    device: DeviceHandle,
    current: *mut c_uint,
    pending: *mut c_uint,
) -> Ret {
    with_gpu(device, |g| {
        let mode = c_uint::from(g.mig_enabled.ok_or(ERROR_NOT_SUPPORTED)?);
        write_out(current, mode)?;
        write_out(pending, mode)
    })
}

/// `nvmlDeviceGetTotalEccErrors`: uncorrected errors from `eccUncorrected`, corrected ones
/// always zero; `NOT_SUPPORTED` when the device has no ECC.
/// # Safety
/// Pointer arguments must be null or valid for the call, as `nvml.h` requires.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTotalEccErrors(
    device: DeviceHandle,
    error_type: c_uint,
    _counter_type: c_uint,
    count: *mut c_ulonglong,
) -> Ret {
    with_gpu(device, |g| {
        let uncorrected = g.ecc_uncorrected.ok_or(ERROR_NOT_SUPPORTED)?;
        let n = if error_type == MEMORY_ERROR_UNCORRECTED {
            uncorrected
        } else {
            0
        };
        write_out(count, n)
    })
}
