//! The consolidation record on a waiting pod: the `allot.dev/consolidation` annotation,
//! versioned JSON, which the controller's consolidator writes and the extender reads (the
//! room it holds), and what the consolidator does next given the record and the clock. The record is
//! written before anything is evicted and updated after each eviction, so a controller that
//! restarts mid-consolidation reads where it stopped: it neither evicts a pod twice nor plans
//! the same waiting pod again before the cool-down.

use serde::{Deserialize, Serialize};

mod destinations;
pub use destinations::{Destination, destinations, planned};

/// The record format's version; a newer one is left alone (and said so), never overwritten.
pub const VERSION: u32 = 1;

/// Where a consolidation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// No set of movable pods within the budget makes room.
    NoRoom,
    /// Dry run: the moves were planned and reported, nothing was evicted.
    DryRun,
    /// An eviction was refused (a PodDisruptionBudget, or the API): nothing more is evicted.
    Refused,
    /// The moves are being evicted; `moves[i].evicted` says which are done.
    Evicting,
    /// Every move was evicted; the freed room is held for the pod until `until`.
    Holding,
    /// The hold ran out with the pod still waiting.
    Expired,
}

/// One pod moved (or to move) to make room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveRecord {
    /// `namespace/name`.
    pub pod: String,
    pub uid: String,
    pub from: String,
    /// Where it fits once moved (its replacement is scheduled as any pod is); empty for an
    /// elastic replica given back.
    pub to: String,
    #[serde(default)]
    pub evicted: bool,
    /// An elastic replica of a ScheduleRequest given back rather than moved: its request
    /// waits for capacity for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub given_back: bool,
    /// The moved pod's controller owner: its replacement has the same one, and may use the
    /// room held at `to` (`destinations.rs`). Absent in records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// What the plan placed at `to` (absent for an elastic replica given back, and in records
    /// written before it existed: then no room is held there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned: Option<Planned>,
}

#[cfg(test)]
impl MoveRecord {
    /// A move done (evicted) of pod `ns/uid`, owned by a `kind` of UID `rs`, from `from` to
    /// `to`, where `demand` was planned on device `device`.
    pub fn for_tests(
        uid: &str,
        (from, to): (&str, &str),
        kind: &str,
        demand: &crate::model::PodDemand,
        device: usize,
    ) -> Self {
        MoveRecord {
            pod: format!("ns/{uid}"),
            uid: uid.into(),
            from: from.into(),
            to: to.into(),
            evicted: true,
            given_back: false,
            owner: Some(Owner {
                kind: kind.into(),
                uid: "rs".into(),
            }),
            planned: Some(planned(demand, crate::model::DeviceSet::single(device))),
        }
    }
}

/// A pod's controller owner (its ownerReference with `controller: true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub kind: String,
    pub uid: String,
}

/// A moved pod's demand and devices at its destination, as the plan placed it there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Planned {
    pub cpu_milli: u64,
    pub memory_bytes: u64,
    /// Whole GPUs (0 for a share or none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpus: u32,
    /// A share of one GPU, milli-GPU (0 for whole GPUs or none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpu_milli: u32,
    /// Device indices at the destination, `0,1` (empty without GPUs).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub devices: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The controller owner of `pod`, if it has one.
pub fn controller_owner(pod: &k8s_openapi::api::core::v1::Pod) -> Option<Owner> {
    let refs = pod.metadata.owner_references.as_ref()?;
    let o = refs.iter().find(|o| o.controller == Some(true))?;
    Some(Owner {
        kind: o.kind.clone(),
        uid: o.uid.clone(),
    })
}

/// The `allot.dev/consolidation` annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub version: u32,
    pub phase: Phase,
    /// Unix seconds when the consolidation was planned (the cool-down counts from here).
    pub planned_at: i64,
    /// Unix seconds until which the room is held (phases Evicting and Holding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// The node the room is made on, and the devices held there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moves: Vec<MoveRecord>,
    /// What happened, for people (`kubectl get pod -o yaml`).
    #[serde(default)]
    pub message: String,
    /// Set (once) when every moved pod has left its node while the room is held: writing it
    /// is a pod update, on which kube-scheduler tries the waiting pod again at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub freed: bool,
}

/// A record that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("annotation allot.dev/consolidation is not a consolidation record: {0}")]
    Malformed(String),
    #[error(
        "annotation allot.dev/consolidation has version {0}, newer than this allot's {VERSION}"
    )]
    Newer(u32),
}

impl Record {
    pub fn parse(text: &str) -> Result<Record, RecordError> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let v: Versioned =
            serde_json::from_str(text).map_err(|e| RecordError::Malformed(e.to_string()))?;
        if v.version > VERSION {
            return Err(RecordError::Newer(v.version));
        }
        serde_json::from_str(text).map_err(|e| RecordError::Malformed(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Record {
    /// Whether the room is held for the pod at `now` (Unix seconds): the moves are under way
    /// or done, and the deadline has not passed.
    pub fn holds_at(&self, now: i64) -> bool {
        matches!(self.phase, Phase::Evicting | Phase::Holding)
            && self.until.is_some_and(|u| now < u)
    }
}

/// Now in Unix seconds, the records' clock.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What the loop does with one waiting pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Plan afresh (no record, or its cool-down is over).
    Plan,
    /// Evict the moves not evicted yet (a consolidation interrupted mid-way).
    Resume,
    /// The hold ran out: give the pod's planned node back and record `Expired`.
    Expire,
    /// Nothing now (within the cool-down, or holding).
    Wait,
}

/// The next step for a pod whose record is `record` at `now` (Unix seconds), with cool-down
/// `cooldown` seconds between two plans for the same pod.
pub fn next_step(record: Option<&Record>, now: i64, cooldown: i64) -> Step {
    let Some(r) = record else {
        return Step::Plan;
    };
    let held = r.until.is_some_and(|u| now < u);
    match r.phase {
        Phase::Evicting if held => Step::Resume,
        Phase::Evicting | Phase::Holding if !held => Step::Expire,
        Phase::Holding => Step::Wait,
        _ if now >= r.planned_at.saturating_add(cooldown) => Step::Plan,
        _ => Step::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(phase: Phase, until: Option<i64>) -> Record {
        Record {
            version: VERSION,
            phase,
            planned_at: 1000,
            until,
            node: Some("a".into()),
            devices: Some("0,1".into()),
            moves: vec![MoveRecord {
                pod: "ns/p".into(),
                uid: "u".into(),
                from: "a".into(),
                to: "b".into(),
                evicted: false,
                given_back: false,
                owner: None,
                planned: None,
            }],
            message: String::new(),
            freed: false,
        }
    }

    #[test]
    fn a_record_reads_back_as_written_and_a_newer_version_is_named() {
        let r = record(Phase::Evicting, Some(1100));
        assert_eq!(Record::parse(&r.to_json()), Ok(r));
        let newer = r#"{"version":2,"phase":"Holding","plannedAt":1}"#;
        assert_eq!(Record::parse(newer), Err(RecordError::Newer(2)));
        let bad = Record::parse("{\"version\":1,\"phase\":\"Sleeping\",\"plannedAt\":1}");
        assert!(matches!(bad, Err(RecordError::Malformed(m)) if m.contains("Sleeping")));
        assert!(matches!(
            Record::parse("nope"),
            Err(RecordError::Malformed(_))
        ));
    }

    #[test]
    fn the_next_step_follows_the_phase_the_hold_and_the_cool_down() {
        let cooldown = 300;
        assert_eq!(next_step(None, 0, cooldown), Step::Plan);
        let evicting = record(Phase::Evicting, Some(1100));
        assert_eq!(next_step(Some(&evicting), 1050, cooldown), Step::Resume);
        assert_eq!(next_step(Some(&evicting), 1100, cooldown), Step::Expire);
        let holding = record(Phase::Holding, Some(1100));
        assert_eq!(next_step(Some(&holding), 1050, cooldown), Step::Wait);
        assert_eq!(next_step(Some(&holding), 1200, cooldown), Step::Expire);
        for phase in [Phase::NoRoom, Phase::DryRun, Phase::Refused, Phase::Expired] {
            let r = record(phase, None);
            assert_eq!(next_step(Some(&r), 1299, cooldown), Step::Wait, "{phase:?}");
            assert_eq!(next_step(Some(&r), 1300, cooldown), Step::Plan, "{phase:?}");
        }
    }
}
