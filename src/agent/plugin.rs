//! The device plugin (`allot agent --device-plugin`): kubelet's v1beta1 device plugin API, so
//! that the GPUs allot chose at bind are the GPUs the container gets.
//!
//! Two resources, each on its own socket in kubelet's device-plugins directory: whole GPUs as
//! `nvidia.com/gpu` (in place of NVIDIA's plugin on the nodes allot manages, so pods keep the
//! resource name every GPU pod already uses), and shares as `allot.dev/gpu-share` (share
//! slots, [`Options::share_slots`] per GPU). Health follows the agent's NVML samples. The
//! sockets are served, then registered with kubelet; when kubelet restarts (its socket is
//! replaced, and it removes the plugins' sockets) they are served and registered again.
//! `Allocate` is [`serve`] and [`assign`]; API calls are [`pods`].

mod assign;
mod inventory;
mod pods;
mod serve;
#[cfg(test)]
mod tests;

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use allot_kubelet_api::device_plugin_server::DevicePluginServer;
use allot_kubelet_api::registration_client::RegistrationClient;
use allot_kubelet_api::{DevicePluginOptions, KUBELET_SOCKET, RegisterRequest, VERSION};
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

pub use assign::{Ask, Refusal, Served, asks, choose, grant, prefer, share_milli};
pub use inventory::{Gpu, Inventory, Resource, share_id};
pub use serve::container_response;

/// kubelet's device-plugins directory on a standard node.
pub const DEFAULT_DIR: &str = "/var/lib/kubelet/device-plugins";
/// Share slots per GPU: the most containers that may share one GPU (a share is at least 10
/// milli-GPU).
pub const DEFAULT_SHARE_SLOTS: u32 = 100;
/// How often the plugin checks that kubelet's socket and its own are still the ones it knows.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Bound on connecting to kubelet and registering.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// The device plugin's settings (`allot agent --device-plugin*` flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// kubelet's device-plugins directory (holds `kubelet.sock`).
    pub dir: PathBuf,
    /// Share slots advertised per GPU, 1..=1000.
    pub share_slots: u32,
    /// With a CDI kind (`nvidia.com/gpu`), Allocate also names each GPU as a CDI device
    /// `<kind>=<uuid>`, for runtimes with CDI enabled.
    pub cdi_kind: Option<String>,
}

/// Whether `kind` is a CDI device kind, `vendor/class`: a DNS-like vendor with a dot and a
/// class of letters, digits, `-`, `_` and `.` (as `nvidia.com/gpu`).
pub fn valid_cdi_kind(kind: &str) -> bool {
    let Some((vendor, class)) = kind.split_once('/') else {
        return false;
    };
    let part = |s: &str, extra: &[char]| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
    };
    vendor.contains('.') && part(vendor, &['-', '.']) && part(class, &['-', '_', '.'])
}

/// The plugin's series in the agent's `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    allocations: Family<[(&'static str, &'static str); 2], Counter>,
    registrations: Family<[(&'static str, &'static str); 2], Counter>,
}

impl Counters {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "allot_agent_device_allocations",
            "Allocate calls from kubelet by resource and outcome (ok, or why refused)",
            self.allocations.clone(),
        );
        registry.register(
            "allot_agent_device_plugin_registrations",
            "Registrations with kubelet by resource and outcome",
            self.registrations.clone(),
        );
    }

    pub fn allocated(&self, resource: Resource, outcome: &'static str) {
        let labels = [("resource", resource.label()), ("outcome", outcome)];
        self.allocations.get_or_create(&labels).inc();
    }

    fn registered(&self, resource: Resource, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        let labels = [("resource", resource.label()), ("outcome", outcome)];
        self.registrations.get_or_create(&labels).inc();
    }
}

/// Identity of a socket file (device, inode): changes when kubelet recreates its socket.
fn socket_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Registers `resource` with kubelet at `kubelet` (its Registration socket).
async fn register(kubelet: &Path, resource: Resource) -> Result<(), String> {
    let path = kubelet.to_path_buf();
    let connector = tower::service_fn(move |_: tonic::transport::Uri| {
        let path = path.clone();
        async move { UnixStream::connect(path).await.map(TokioIo::new) }
    });
    let call = async move {
        let channel = tonic::transport::Endpoint::from_static("http://kubelet.invalid")
            .connect_with_connector(connector)
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        let request = RegisterRequest {
            version: VERSION.to_string(),
            endpoint: resource.socket().to_string(),
            resource_name: resource.name().to_string(),
            options: Some(DevicePluginOptions {
                pre_start_required: false,
                get_preferred_allocation_available: resource == Resource::Whole,
            }),
        };
        RegistrationClient::new(channel)
            .register(request)
            .await
            .map(|_| ())
            .map_err(|s| format!("kubelet refused: {}", s.message()))
    };
    tokio::time::timeout(REGISTER_TIMEOUT, call)
        .await
        .map_err(|_| format!("no answer in {} s", REGISTER_TIMEOUT.as_secs()))?
}

/// Serves `service` on its socket until `stop` turns true. A stale socket file (left by a
/// previous agent) is replaced.
fn serve(
    dir: &Path,
    service: serve::Service,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let path = dir.join(service.resource.socket());
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).map_err(|e| format!("binding {}: {e}", path.display()))?;
    let incoming = futures::stream::unfold(listener, |l| async move {
        let next = l.accept().await.map(|(s, _)| s);
        Some((next, l))
    });
    let resource = service.resource;
    let server = tonic::transport::Server::builder()
        .add_service(DevicePluginServer::new(service))
        .serve_with_incoming_shutdown(incoming, async move {
            let mut stop = stop;
            let _ = stop.wait_for(|s| *s).await;
        });
    Ok(tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::warn!(resource = resource.name(), error = %e, "device plugin server ended");
        }
    }))
}

/// Runs the device plugin until `stop` turns true: serve, register, and again whenever kubelet
/// restarts or a socket disappears.
pub async fn run(
    options: Options,
    client: kube::Client,
    node: &str,
    inventory: watch::Receiver<Inventory>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let shared = Arc::new(serve::Shared {
        pods: pods::PodApi::new(client, node),
        inventory,
        served: tokio::sync::Mutex::new(Served::new()),
        counters: counters.clone(),
        stop: stop.clone(),
        options: options.clone(),
    });
    let kubelet = options.dir.join(KUBELET_SOCKET);
    let mut waiting_logged = false;
    while !*stop.borrow() {
        let Some(kubelet_id) = socket_id(&kubelet) else {
            if !std::mem::replace(&mut waiting_logged, true) {
                tracing::info!(socket = %kubelet.display(), "device plugin: waiting for kubelet's socket");
            }
            if tokio::time::timeout(WATCH_EVERY, stop.wait_for(|s| *s))
                .await
                .is_ok()
            {
                break;
            }
            continue;
        };
        waiting_logged = false;
        let (round_tx, round_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut ok = true;
        for resource in Resource::ALL {
            let service = serve::Service {
                resource,
                shared: shared.clone(),
            };
            match serve(&options.dir, service, round_rx.clone()) {
                Ok(task) => tasks.push(task),
                Err(e) => {
                    tracing::error!(error = %e, "device plugin: cannot serve");
                    ok = false;
                }
            }
        }
        for resource in Resource::ALL {
            if !ok {
                break;
            }
            let result = register(&kubelet, resource).await;
            counters.registered(resource, result.is_ok());
            match result {
                Ok(()) => tracing::info!(
                    resource = resource.name(),
                    socket = resource.socket(),
                    "device plugin registered with kubelet"
                ),
                Err(e) => {
                    tracing::warn!(resource = resource.name(), error = %e, "device plugin: registering with kubelet");
                    ok = false;
                }
            }
        }
        // Serve until kubelet's socket is replaced or one of ours is removed; after a failure,
        // wait a little and start again.
        let ours: Vec<_> = Resource::ALL
            .iter()
            .map(|r| options.dir.join(r.socket()))
            .collect();
        let ours_ids: Vec<_> = ours.iter().map(|p| socket_id(p)).collect();
        loop {
            if tokio::time::timeout(WATCH_EVERY * if ok { 1 } else { 5 }, stop.wait_for(|s| *s))
                .await
                .is_ok()
            {
                break;
            }
            let same_kubelet = socket_id(&kubelet) == Some(kubelet_id);
            let same_ours = ours
                .iter()
                .zip(&ours_ids)
                .all(|(p, id)| socket_id(p) == *id);
            if !ok || !same_kubelet || !same_ours {
                tracing::info!(
                    kubelet_restarted = !same_kubelet,
                    "device plugin: serving and registering again"
                );
                break;
            }
        }
        let _ = round_tx.send(true);
        for task in tasks {
            let _ = task.await;
        }
    }
    for r in Resource::ALL {
        let _ = std::fs::remove_file(options.dir.join(r.socket()));
    }
}
