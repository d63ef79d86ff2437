//! Which destination rooms a consolidation record holds (pure): for each pod to move while the
//! record holds, the room the plan placed it in at `to`, kept for its replacement (a pod with
//! the same controller owner) until the record's deadline. The extender places these holds
//! (`extender/state/destinations.rs`).
//!
//! A destination is held from the record's first write, before its pod is evicted, not from
//! the eviction on: the owner recreates an evicted pod within moments, and its replacement's
//! filter must find the hold there already, or it could bind elsewhere before the extender
//! reads the record again.
//!
//! A pod of a ScheduleRequest holds nothing: allot's controller recreates it where the
//! request's own plan says (its planned-node annotation), which the extender honours anyway.

use super::{MoveRecord, Planned, Record};
use crate::live::pod::parse_devices;
use crate::model::{DeviceSet, GpuDemand, ModelSet, PodDemand};
use crate::names::PLANNED_DEVICES_ANNOTATION;

/// The room held at a moved pod's destination for its replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The moved pod's UID: one replacement consumes one destination.
    pub moved: String,
    /// The moved pod's `namespace/name`, for people.
    pub pod: String,
    /// The UID of the controller owner a replacement must have.
    pub owner: String,
    pub node: String,
    /// The moved pod's demand (any GPU model: the plan chose the node and devices already).
    pub demand: PodDemand,
    /// The devices planned there (`None`: the replacement's policy chooses).
    pub devices: Option<DeviceSet>,
    /// Unix seconds when the record was planned: a pod of the owner bound since is taken
    /// for the replacement even if it bound before the hold was made.
    pub since: i64,
    /// Unix seconds until which the room is held (the record's deadline).
    pub until: i64,
}

/// The destinations `record` holds at `now` (Unix seconds): none unless the record holds;
/// of its moves, those moved (not given back), with an owner other than a ScheduleRequest
/// and a planned demand (records written before these fields hold none).
pub fn destinations(record: &Record, now: i64) -> Vec<Destination> {
    let Some(until) = record.until.filter(|_| record.holds_at(now)) else {
        return Vec::new();
    };
    record
        .moves
        .iter()
        .filter(|m| !m.given_back && !m.to.is_empty())
        .filter_map(|m| destination(m, record.planned_at, until))
        .collect()
}

fn destination(m: &MoveRecord, since: i64, until: i64) -> Option<Destination> {
    let owner = m.owner.as_ref().filter(|o| o.kind != "ScheduleRequest")?;
    let planned = m.planned.as_ref()?;
    Some(Destination {
        moved: m.uid.clone(),
        pod: m.pod.clone(),
        owner: owner.uid.clone(),
        node: m.to.clone(),
        demand: demand(planned)?,
        devices: parse_devices(PLANNED_DEVICES_ANNOTATION, &planned.devices)
            .ok()
            .filter(|d| !d.is_empty()),
        since,
        until,
    })
}

/// The demand a [`Planned`] names; `None` when it names both whole GPUs and a share, or a
/// share outside 1..999.
fn demand(p: &Planned) -> Option<PodDemand> {
    let gpu = match (p.gpus, p.gpu_milli) {
        (0, 0) => GpuDemand::None,
        (0, milli) if milli < 1000 => GpuDemand::Shared { milli },
        (count, 0) => GpuDemand::Whole { count },
        _ => return None,
    };
    Some(PodDemand {
        cpu_milli: p.cpu_milli,
        memory_bytes: p.memory_bytes,
        gpu,
        models: ModelSet::ANY,
    })
}

/// The [`Planned`] record of `demand` placed on `devices`.
pub fn planned(demand: &PodDemand, devices: DeviceSet) -> Planned {
    let (gpus, gpu_milli) = match demand.gpu {
        GpuDemand::None => (0, 0),
        GpuDemand::Shared { milli } => (0, milli),
        GpuDemand::Whole { count } => (count, 0),
    };
    Planned {
        cpu_milli: demand.cpu_milli,
        memory_bytes: demand.memory_bytes,
        gpus,
        gpu_milli,
        devices: crate::live::pod::format_devices(devices),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Phase, VERSION};
    use super::*;

    fn moved(uid: &str, kind: &str) -> MoveRecord {
        let demand = PodDemand {
            cpu_milli: 100,
            memory_bytes: 1 << 26,
            gpu: GpuDemand::Shared { milli: 500 },
            models: ModelSet::ANY,
        };
        MoveRecord::for_tests(uid, ("a", "b"), kind, &demand, 1)
    }

    fn record(phase: Phase, moves: Vec<MoveRecord>) -> Record {
        Record {
            version: VERSION,
            phase,
            planned_at: 1000,
            until: Some(1100),
            node: Some("a".into()),
            devices: Some("0,1,2,3".into()),
            moves,
            message: String::new(),
            freed: false,
        }
    }

    #[test]
    fn each_move_holds_its_planned_room_from_the_record_to_the_deadline() {
        let mut later = moved("q", "ReplicaSet");
        later.evicted = false;
        let r = record(Phase::Evicting, vec![moved("p", "ReplicaSet"), later]);
        let held = destinations(&r, 1050);
        assert_eq!(held.len(), 2, "evicted or not yet: {held:?}");
        assert_eq!(held[1].moved, "q");
        let d = &held[0];
        assert_eq!(
            (d.moved.as_str(), d.owner.as_str(), d.node.as_str()),
            ("p", "rs", "b")
        );
        assert_eq!(d.demand.gpu, GpuDemand::Shared { milli: 500 });
        assert_eq!(d.devices, Some(DeviceSet::single(1)));
        assert_eq!((d.since, d.until), (1000, 1100));
        assert!(destinations(&r, 1100).is_empty(), "the deadline passed");
        let over = record(Phase::Expired, vec![moved("p", "ReplicaSet")]);
        assert!(
            destinations(&over, 1050).is_empty(),
            "the record no longer holds"
        );
    }

    #[test]
    fn given_back_request_owned_and_ownerless_moves_hold_nothing() {
        let mut back = moved("g", "ScheduleRequest");
        back.given_back = true;
        back.to = String::new();
        let mut ownerless = moved("o", "ReplicaSet");
        ownerless.owner = None;
        let mut unplanned = moved("u", "ReplicaSet");
        unplanned.planned = None;
        let moves = vec![back, moved("s", "ScheduleRequest"), ownerless, unplanned];
        assert!(destinations(&record(Phase::Holding, moves), 1050).is_empty());
    }

    #[test]
    fn a_record_written_before_owners_and_planned_rooms_parses_and_holds_no_destination() {
        let old = r#"{"version":1,"phase":"Holding","plannedAt":1000,"until":1100,"node":"a",
            "moves":[{"pod":"ns/p","uid":"p","from":"a","to":"b","evicted":true}]}"#;
        let r = Record::parse(old).expect("an older record parses");
        assert_eq!(
            (r.moves[0].owner.as_ref(), r.moves[0].planned.as_ref()),
            (None, None)
        );
        assert!(r.holds_at(1050), "its own hold stands");
        assert!(destinations(&r, 1050).is_empty());
        // A new record round-trips with the fields; an impossible demand holds nothing.
        let mut new = record(Phase::Holding, vec![moved("p", "ReplicaSet")]);
        assert_eq!(Record::parse(&new.to_json()).as_ref(), Ok(&new));
        if let Some(p) = new.moves[0].planned.as_mut() {
            p.gpus = 2;
        }
        assert!(
            destinations(&new, 1050).is_empty(),
            "whole GPUs and a share at once"
        );
    }
}
