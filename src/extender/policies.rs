//! The extender's policy settings, which may change while it runs: the policy of pods that
//! name none, an optional shadow policy (decided and compared, never placed), and the weights
//! `learned` scores with. With `--policy-dir` they are read from a directory (a mounted
//! ConfigMap: one file per key) and re-read when it changes, so a platform team can switch
//! `learned` on, shadow it, or switch back to FGD without a restart.
//!
//! The directory's files, each optional:
//! - `default-policy`: a policy name (absent: `learned`);
//! - `shadow-policy`: a policy name, or empty (absent: no shadow);
//! - `policy.json`: a policy file from `allot train` (absent: the policy in the binary).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::live::pod::DEFAULT_POLICY;
use crate::model::frag::TargetWorkload;
use crate::policy::PolicyKind;
use crate::policy::learned::{Outside, PolicyFile, PolicyFileError, WorkloadMix, embedded_file};

/// File names inside `--policy-dir`.
pub const DEFAULT_FILE: &str = "default-policy";
pub const SHADOW_FILE: &str = "shadow-policy";
pub const WEIGHTS_FILE: &str = "policy.json";
/// A policy name file is a word; anything longer is not one.
const MAX_NAME_BYTES: u64 = 256;

/// One consistent set of policy settings; the store swaps whole sets.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySettings {
    /// The policy of pods without an `allot.dev/policy` annotation.
    pub default: PolicyKind,
    /// Decided beside every pod's own policy at filter and compared with the node bound.
    pub shadow: Option<PolicyKind>,
    /// The weights `learned` scores with (`None`: the policy embedded in the binary).
    pub learned: Option<Arc<PolicyFile>>,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            default: DEFAULT_POLICY,
            shadow: None,
            learned: None,
        }
    }
}

impl PolicySettings {
    /// The content hash of the policy `learned` scores with.
    pub fn learned_hash(&self) -> &str {
        match &self.learned {
            Some(file) => &file.hash,
            None => &embedded_file().hash,
        }
    }

    /// Which weights of the learned policy file score `target` (in words), and why it is FGD
    /// alone when it lies outside the file's support and every expert's.
    pub fn learned_choice(&self, target: &TargetWorkload) -> (String, Option<Outside>) {
        let file = self.learned.as_deref().unwrap_or_else(|| embedded_file());
        file.scored_by(&WorkloadMix::of(target))
    }

    /// The shadow policy, when it differs from `placed` (the pod's own).
    pub fn shadow_of(&self, placed: PolicyKind) -> Option<PolicyKind> {
        self.shadow.filter(|s| *s != placed)
    }
}

/// Why a policy directory cannot be used. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyDirError {
    #[error("{file}: {problem}")]
    Name { file: String, problem: String },
    #[error(transparent)]
    Weights(#[from] PolicyFileError),
}

/// Read the settings in `dir` (see the module doc for its files).
pub fn read_dir(dir: &Path) -> Result<PolicySettings, PolicyDirError> {
    if !dir.is_dir() {
        return Err(PolicyDirError::Name {
            file: dir.display().to_string(),
            problem: "not a directory (--policy-dir names a folder of policy settings)".into(),
        });
    }
    let default = read_name(&dir.join(DEFAULT_FILE))?.unwrap_or(DEFAULT_POLICY);
    let shadow = read_name(&dir.join(SHADOW_FILE))?;
    let weights = dir.join(WEIGHTS_FILE);
    let learned = match weights.try_exists() {
        Ok(false) => None,
        _ => Some(Arc::new(PolicyFile::load(&weights)?)),
    };
    Ok(PolicySettings {
        default,
        shadow,
        learned,
    })
}

/// A policy name from `path`: `None` when the file is absent or blank.
fn read_name(path: &Path) -> Result<Option<PolicyKind>, PolicyDirError> {
    let file = path.display().to_string();
    let fail = |problem: String| PolicyDirError::Name {
        file: file.clone(),
        problem,
    };
    let len = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e.to_string())),
        Ok(m) => m.len(),
    };
    if len > MAX_NAME_BYTES {
        return Err(fail(format!(
            "{len} bytes is not a policy name (at most {MAX_NAME_BYTES})"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let name = text.trim();
    if name.is_empty() {
        return Ok(None);
    }
    PolicyKind::from_str(name)
        .map(Some)
        .map_err(|e| fail(e.to_string()))
}

/// What the extender counts about its policies, as metric families `/metrics` registers
/// (handles: the store updates them, the registry reads them).
#[derive(Debug, Default)]
pub struct PolicyStats {
    /// Binds by whether the shadow policy chose the same node at filter.
    pub shadow: Family<ShadowLabels, Counter>,
    /// Changes to `--policy-dir` by outcome (a failed one keeps the previous settings).
    pub reloads: Family<ReloadLabels, Counter>,
    /// The settings in force (value 1, one series).
    pub info: Family<InfoLabels, Gauge>,
    /// 1, labelled with the statistic, while the workload lies outside the learned policy's
    /// support and `learned` places as FGD; no series otherwise.
    pub outside: Family<OutsideLabels, Gauge>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutsideLabels {
    pub statistic: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ShadowLabels {
    pub agree: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `ok`, or the reason of the error.
    pub outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct InfoLabels {
    pub default: &'static str,
    pub shadow: &'static str,
    pub learned_hash: String,
}

impl PolicyStats {
    /// A bind compared with the shadow policy's choice.
    pub fn shadowed(&self, agree: bool) {
        let agree = if agree { "true" } else { "false" };
        self.shadow.get_or_create(&ShadowLabels { agree }).inc();
    }

    /// Show whether the workload lies outside the learned policy's support.
    pub fn support(&self, outside: Option<&Outside>) {
        self.outside.clear();
        if let Some(o) = outside {
            self.outside
                .get_or_create(&OutsideLabels { statistic: o.stat })
                .set(1);
        }
    }

    /// A reload of `--policy-dir`: `Ok` or the error's reason.
    pub fn reloaded(&self, outcome: &'static str) {
        self.reloads.get_or_create(&ReloadLabels { outcome }).inc();
    }

    /// Show `settings` as the ones in force.
    pub fn in_force(&self, settings: &PolicySettings) {
        self.info.clear();
        let labels = InfoLabels {
            default: settings.default.name(),
            shadow: settings.shadow.map_or("", PolicyKind::name),
            learned_hash: settings.learned_hash().to_string(),
        };
        self.info.get_or_create(&labels).set(1);
    }
}

impl PolicyDirError {
    /// Bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PolicyDirError::Name { .. } => "BadPolicyName",
            PolicyDirError::Weights(e) => e.reason(),
        }
    }
}

/// A fingerprint of the directory's files (their first 1 MiB + 1 bytes, the most a policy
/// file may hold, or their absence), to notice a change without parsing. Contents rather than
/// modification times, because a ConfigMap volume swaps whole directories under symlinks.
pub fn fingerprint(dir: &Path) -> u64 {
    use std::io::Read as _;
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    let mut mix = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for name in [DEFAULT_FILE, SHADOW_FILE, WEIGHTS_FILE] {
        let mut buf = Vec::new();
        match std::fs::File::open(dir.join(name)) {
            Ok(f) => {
                let read = f.take((1 << 20) + 1).read_to_end(&mut buf);
                mix(if read.is_ok() { b"file" } else { b"unreadable" });
            }
            Err(_) => mix(b"absent"),
        }
        mix(&(buf.len() as u64).to_le_bytes());
        mix(&buf);
    }
    h
}
