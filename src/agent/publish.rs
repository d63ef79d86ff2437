//! The agent's only writes: server-side apply of its `NodeTelemetry` (the object with spec
//! and ownerReference, once and again whenever it has gone) and of its status (every write),
//! both as field manager `allot-agent`. Reads the Node for its UID and allocatable. API
//! failures become [`PublishError`]s whose messages say what to fix.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use super::telemetry::{self, Allocatable};
use crate::crd::{NodeTelemetry, NodeTelemetryStatus};

/// Field manager of every apply the agent makes.
pub const FIELD_MANAGER: &str = "allot-agent";

/// Longest a single API call may take before it counts as failed (the sampling loop must
/// not stall behind a hung connection).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "node {0:?} does not exist; check --node-name / NODE_NAME (retrying: it may not be registered yet)"
    )]
    NodeNotFound(String),
    #[error(
        "forbidden: {0}; the agent's account needs get on nodes, and get, create, patch on \
         nodetelemetries and nodetelemetries/status (allot.dev)"
    )]
    Forbidden(String),
    #[error(
        "the NodeTelemetry resource is not served: install crds/nodetelemetries.allot.dev.yaml ({0})"
    )]
    CrdMissing(String),
    #[error("NodeTelemetry {0} was deleted; it will be re-created")]
    ObjectGone(String),
    #[error("API call timed out after {}s", CALL_TIMEOUT.as_secs())]
    Timeout,
    #[error("API error: {0}")]
    Api(#[source] kube::Error),
    #[error("encoding the status: {0}")]
    Encode(#[from] serde_json::Error),
}

impl PublishError {
    /// Bounded name of the failure, for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PublishError::NodeNotFound(_) => "NodeNotFound",
            PublishError::Forbidden(_) => "Forbidden",
            PublishError::CrdMissing(_) => "CrdMissing",
            PublishError::ObjectGone(_) => "ObjectGone",
            PublishError::Timeout => "Timeout",
            PublishError::Api(_) => "ApiError",
            PublishError::Encode(_) => "EncodeError",
        }
    }
}

/// HTTP status of an API error answer, if it was one.
fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

fn forbidden_or(e: kube::Error, other: impl FnOnce(kube::Error) -> PublishError) -> PublishError {
    match (code(&e), &e) {
        (Some(403), kube::Error::Api(status)) => PublishError::Forbidden(status.message.clone()),
        _ => other(e),
    }
}

async fn timed<T>(
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<Result<T, kube::Error>, PublishError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| PublishError::Timeout)
}

/// How often the Node is read again for allocatable changes (and a re-created Node's UID):
/// allocatable changes only with kubelet reconfiguration, and 5,000 agents at this period
/// cost the API server ~17 GETs a second.
pub const NODE_REFRESH: Duration = Duration::from_secs(300);

/// Writes one node's telemetry.
#[derive(Debug)]
pub struct Publisher {
    nodes: Api<Node>,
    telemetry: Api<NodeTelemetry>,
    node_name: String,
    node_uid: Option<String>,
    allocatable: Allocatable,
    node_read_at: Option<Instant>,
    /// Whether the object (spec, ownerReference) is known to exist as applied.
    object_applied: bool,
}

impl Publisher {
    pub fn new(client: Client, node_name: &str) -> Self {
        Self {
            nodes: Api::all(client.clone()),
            telemetry: Api::all(client),
            node_name: node_name.to_string(),
            node_uid: None,
            allocatable: Allocatable::default(),
            node_read_at: None,
            object_applied: false,
        }
    }

    /// The node's allocatable as last read (zero until the first read succeeds).
    pub fn allocatable(&self) -> Allocatable {
        self.allocatable
    }

    /// Whether the Node should be read again at `now`: never read yet, or read successfully
    /// longer than [`NODE_REFRESH`] ago. After a failed read the write path (which backs off)
    /// reads it again, so an absent API server is not asked every sample.
    pub fn node_stale(&self, now: Instant) -> bool {
        match (self.node_read_at, &self.node_uid) {
            (None, _) => true,
            (Some(at), Some(_)) => now.saturating_duration_since(at) >= NODE_REFRESH,
            (Some(_), None) => false,
        }
    }

    /// Read the Node: its UID (for the ownerReference) and allocatable.
    pub async fn read_node(&mut self, now: Instant) -> Result<(), PublishError> {
        self.node_read_at = Some(now);
        let node = timed(self.nodes.get(&self.node_name))
            .await?
            .map_err(|e| match code(&e) {
                Some(404) => PublishError::NodeNotFound(self.node_name.clone()),
                _ => forbidden_or(e, PublishError::Api),
            })?;
        let (alloc, problems) = telemetry::allocatable(&node);
        for p in problems {
            tracing::warn!(node = %self.node_name, problem = %p, "node allocatable unreadable; reporting 0");
        }
        let uid = node.metadata.uid.clone().unwrap_or_default();
        if self.node_uid.as_deref().is_some_and(|old| old != uid) {
            tracing::info!(node = %self.node_name, "node was re-created; re-applying the ownerReference");
            self.object_applied = false;
        }
        self.node_uid = Some(uid);
        self.allocatable = alloc;
        Ok(())
    }

    /// Apply the object (spec and ownerReference) unless it is known to be in place.
    async fn ensure_object(&mut self, now: Instant) -> Result<(), PublishError> {
        if self.object_applied {
            return Ok(());
        }
        if self.node_uid.is_none() {
            self.read_node(now).await?;
        }
        let uid = self.node_uid.clone().unwrap_or_default();
        let body = telemetry::object_patch(&self.node_name, &uid);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = timed(
            self.telemetry
                .patch(&self.node_name, &params, &Patch::Apply(&body)),
        )
        .await?
        .map_err(|e| match code(&e) {
            Some(404) => PublishError::CrdMissing(e.to_string()),
            _ => forbidden_or(e, PublishError::Api),
        })?;
        if !telemetry::owned_by(&applied, &uid) {
            tracing::warn!(node = %self.node_name, "NodeTelemetry lacks the ownerReference after apply");
        }
        self.object_applied = true;
        Ok(())
    }

    /// Write `status` with `wall` as its heartbeat time.
    pub async fn write(
        &mut self,
        status: &NodeTelemetryStatus,
        now: Instant,
        wall: Timestamp,
    ) -> Result<(), PublishError> {
        self.ensure_object(now).await?;
        let body = telemetry::status_patch(status, wall)?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let result = timed(self.telemetry.patch_status(
            &self.node_name,
            &params,
            &Patch::Apply(&body),
        ))
        .await?;
        match result {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some(404) => {
                // Deleted by someone (or garbage-collected with a re-created Node).
                self.object_applied = false;
                self.node_uid = None;
                Err(PublishError::ObjectGone(self.node_name.clone()))
            }
            Err(e) => Err(forbidden_or(e, PublishError::Api)),
        }
    }
}

#[cfg(test)]
mod tests;
