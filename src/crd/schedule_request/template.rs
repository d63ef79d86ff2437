//! A task's pod template as the ScheduleRequest stores it: kept raw with its parse error when it
//! is not a valid `PodTemplateSpec`, and described to the apiserver as an opaque object.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use schemars::{Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A task's pod template as stored. The schema accepts any object (see
/// `opaque_pod_template`), so a template that is not a valid `PodTemplateSpec` is kept raw
/// with its parse error instead of failing to deserialize: otherwise one malformed request
/// would make every list and watch of ScheduleRequests unreadable, stalling the controller
/// and the extender for everyone. The controller reports the error in the request's status.
#[derive(Clone, Debug, PartialEq)]
pub enum PodTemplate {
    /// Boxed: a PodTemplateSpec is ~1.8 kB, the malformed case a few words.
    Parsed(Box<PodTemplateSpec>),
    Malformed {
        raw: serde_json::Value,
        error: String,
    },
}

impl PodTemplate {
    /// The template, or why it is not one.
    pub fn parsed(&self) -> Result<&PodTemplateSpec, &str> {
        match self {
            PodTemplate::Parsed(t) => Ok(t.as_ref()),
            PodTemplate::Malformed { error, .. } => Err(error),
        }
    }
}

impl From<PodTemplateSpec> for PodTemplate {
    fn from(t: PodTemplateSpec) -> Self {
        PodTemplate::Parsed(Box::new(t))
    }
}

impl Serialize for PodTemplate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PodTemplate::Parsed(t) => t.serialize(s),
            PodTemplate::Malformed { raw, .. } => raw.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for PodTemplate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = serde_json::Value::deserialize(d)?;
        Ok(match PodTemplateSpec::deserialize(&raw) {
            Ok(t) => PodTemplate::Parsed(Box::new(t)),
            Err(e) => PodTemplate::Malformed {
                raw,
                error: e.to_string(),
            },
        })
    }
}

/// Keeps the CRD small: the pod template is validated by the apiserver when pods are created,
/// so the CRD only says "an object" instead of embedding the full pod schema.
pub(super) fn opaque_pod_template(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true
    })
}
