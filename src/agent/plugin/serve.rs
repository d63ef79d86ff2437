//! The `DevicePlugin` gRPC service kubelet calls, one instance per resource: the device list
//! (and its changes) from the agent's NVML samples, and `Allocate` answered with the GPUs
//! allot chose for the pod being admitted ([`super::assign`]).

use std::pin::Pin;
use std::sync::Arc;

use allot_kubelet_api::device_plugin_server::DevicePlugin;
use allot_kubelet_api::{
    AllocateRequest, AllocateResponse, CdiDevice, ContainerAllocateResponse,
    ContainerPreferredAllocationResponse, DevicePluginOptions, Empty, ListAndWatchResponse,
    PreStartContainerRequest, PreStartContainerResponse, PreferredAllocationRequest,
    PreferredAllocationResponse,
};
use futures::Stream;
use tokio::sync::{Mutex, watch};
use tonic::{Request, Response, Status};

use super::assign::{Served, choose, grant};
use super::inventory::{Gpu, Inventory, Resource};
use super::pods::PodApi;
use super::{Counters, Options};
use crate::live::pod::pod_key;

/// What both resources' services share.
#[derive(Debug)]
pub struct Shared {
    pub options: Options,
    pub inventory: watch::Receiver<Inventory>,
    pub pods: PodApi,
    /// What was handed out; held across a whole Allocate, so two calls never pick one pod.
    pub served: Mutex<Served>,
    pub counters: Arc<Counters>,
    /// Turns true when the agent stops: ends every ListAndWatch stream.
    pub stop: watch::Receiver<bool>,
}

/// The service for one resource.
#[derive(Debug, Clone)]
pub struct Service {
    pub resource: Resource,
    pub shared: Arc<Shared>,
}

type DeviceStream = Pin<Box<dyn Stream<Item = Result<ListAndWatchResponse, Status>> + Send>>;

/// The environment and CDI devices that expose `gpus` (and a share's limits) to a container.
pub fn container_response(
    gpus: &[&Gpu],
    share_milli: Option<u32>,
    cdi_kind: Option<&str>,
) -> ContainerAllocateResponse {
    let uuids: Vec<&str> = gpus.iter().map(|g| g.uuid.as_str()).collect();
    let indices: Vec<String> = gpus.iter().map(|g| g.index.to_string()).collect();
    let mut envs = std::collections::HashMap::new();
    envs.insert("NVIDIA_VISIBLE_DEVICES".to_string(), uuids.join(","));
    envs.insert("ALLOT_GPU_DEVICES".to_string(), indices.join(","));
    if let (Some(milli), [gpu]) = (share_milli, gpus) {
        let mib = u64::from(milli) * gpu.memory_bytes / 1000 / (1 << 20);
        envs.insert("ALLOT_GPU_MILLI".to_string(), milli.to_string());
        envs.insert("ALLOT_GPU_MEMORY_MIB".to_string(), mib.to_string());
    }
    let cdi_devices = cdi_kind
        .map(|kind| {
            uuids
                .iter()
                .map(|u| CdiDevice {
                    name: format!("{kind}={u}"),
                })
                .collect()
        })
        .unwrap_or_default();
    ContainerAllocateResponse {
        envs,
        cdi_devices,
        ..Default::default()
    }
}

impl Service {
    /// One container's Allocate: find the pod, grant its GPUs, record them.
    async fn allocate_one(&self, count: usize) -> Result<ContainerAllocateResponse, Status> {
        let shared = &self.shared;
        let mut served = shared.served.lock().await;
        let pods = shared.pods.on_node().await.map_err(Status::unavailable)?;
        // Forget pods that are gone, so the record stays the size of the node's pods.
        served.retain(|(uid, _, _)| pods.iter().any(|p| p.metadata.uid.as_deref() == Some(uid)));
        let inventory = shared.inventory.borrow().clone();
        let outcome = choose(&pods, &served, self.resource, count).and_then(|(pod, ask)| {
            let gpus = grant(pod, &ask, &inventory, &pods, &served)?;
            Ok((pod, ask, gpus))
        });
        let (pod, ask, gpus) = match outcome {
            Ok(found) => found,
            Err(refusal) => {
                shared.counters.allocated(self.resource, refusal.reason());
                tracing::warn!(resource = self.resource.name(), reason = refusal.reason(), error = %refusal, "Allocate refused");
                if let Some(key) = refusal.pod()
                    && let Some(pod) = pods.iter().find(|p| pod_key(p) == key)
                {
                    shared
                        .pods
                        .warn(pod, "GpuAllocateFailed", &refusal.to_string())
                        .await;
                }
                return Err(Status::failed_precondition(refusal.to_string()));
            }
        };
        let share = (self.resource == Resource::Share)
            .then(|| super::assign::share_milli(pod))
            .flatten();
        let response = container_response(&gpus, share, shared.options.cdi_kind.as_deref());
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        served.insert((uid.clone(), ask.container.clone(), self.resource));
        let uuids: Vec<&str> = gpus.iter().map(|g| g.uuid.as_str()).collect();
        if let Err(e) = shared.pods.mark(pod, &uuids.join(",")).await {
            // Kept in memory: only an agent restart before the pod runs would forget it.
            tracing::warn!(pod = %pod_key(pod), error = %e, "could not record the allocation on the pod");
        }
        shared.counters.allocated(self.resource, "ok");
        tracing::info!(pod = %pod_key(pod), uid, container = %ask.container, resource = self.resource.name(), gpus = %uuids.join(","), "GPUs handed to kubelet");
        Ok(response)
    }
}

#[tonic::async_trait]
impl DevicePlugin for Service {
    async fn get_device_plugin_options(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<DevicePluginOptions>, Status> {
        Ok(Response::new(DevicePluginOptions {
            pre_start_required: false,
            get_preferred_allocation_available: self.resource == Resource::Whole,
        }))
    }

    type ListAndWatchStream = DeviceStream;

    async fn list_and_watch(&self, _: Request<Empty>) -> Result<Response<DeviceStream>, Status> {
        let resource = self.resource;
        let slots = self.shared.options.share_slots;
        let mut inventory = self.shared.inventory.clone();
        let mut stop = self.shared.stop.clone();
        let first = inventory.borrow_and_update().devices(resource, slots);
        let stream = futures::stream::unfold(
            (Some(first), inventory, stop.clone()),
            move |(pending, mut inventory, mut stop)| async move {
                if let Some(devices) = pending {
                    let item = Ok(ListAndWatchResponse { devices });
                    return Some((item, (None, inventory, stop)));
                }
                tokio::select! {
                    changed = inventory.changed() => changed.ok()?,
                    _ = stop.wait_for(|s| *s) => return None,
                }
                let devices = inventory.borrow_and_update().devices(resource, slots);
                Some((
                    Ok(ListAndWatchResponse { devices }),
                    (None, inventory, stop),
                ))
            },
        );
        let _ = stop.borrow_and_update();
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<PreferredAllocationRequest>,
    ) -> Result<Response<PreferredAllocationResponse>, Status> {
        let shared = &self.shared;
        let pods = shared.pods.on_node().await.unwrap_or_default();
        let inventory = shared.inventory.borrow().clone();
        let served = shared.served.lock().await;
        let mut responses = Vec::new();
        for c in request.into_inner().container_requests {
            let size = usize::try_from(c.allocation_size).unwrap_or(0);
            let chosen = choose(&pods, &served, self.resource, size)
                .and_then(|(pod, ask)| grant(pod, &ask, &inventory, &pods, &served))
                .ok()
                .map(|gpus| gpus.iter().map(|g| g.uuid.clone()).collect::<Vec<_>>());
            let device_ids = super::assign::prefer(
                chosen,
                &c.available_device_ids,
                &c.must_include_device_ids,
                size,
            );
            responses.push(ContainerPreferredAllocationResponse { device_ids });
        }
        Ok(Response::new(PreferredAllocationResponse {
            container_responses: responses,
        }))
    }

    async fn allocate(
        &self,
        request: Request<AllocateRequest>,
    ) -> Result<Response<AllocateResponse>, Status> {
        let mut container_responses = Vec::new();
        for c in request.into_inner().container_requests {
            container_responses.push(self.allocate_one(c.device_ids.len()).await?);
        }
        Ok(Response::new(AllocateResponse {
            container_responses,
        }))
    }

    async fn pre_start_container(
        &self,
        _: Request<PreStartContainerRequest>,
    ) -> Result<Response<PreStartContainerResponse>, Status> {
        Ok(Response::new(PreStartContainerResponse {}))
    }
}
