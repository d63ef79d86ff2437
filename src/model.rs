//! The core data model: resources in integer units (millicores, bytes, milli-GPU per
//! device), nodes, pod demands and placements. Pure data; every other layer builds on it.

pub mod cluster;
pub mod demand;
pub mod frag;
pub mod gpu;
pub mod misfit;
pub mod node;
pub mod nodes;
pub mod pod;
pub mod product;
pub mod quantity;
pub mod shape;

pub use cluster::{Cluster, Placement};
pub use demand::{DemandError, DemandParts, parse_demand};
pub use gpu::{ModelCatalog, ModelId, ModelSet};
pub use node::{DeviceSet, MAX_GPUS_PER_NODE, Misfit, Node};
pub use nodes::Nodes;
pub use pod::{GpuDemand, MILLI_PER_GPU, PodDemand, PodShape};
pub use shape::{NodeShape, distinct_shapes};
