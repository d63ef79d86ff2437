//! The shadow prices in the extender: the window of recent arrivals, a book installed in the
//! store reaching the current view and views on later bases, and the pricer's tick solving
//! only while a policy in force reads prices.

use std::sync::Arc;
use std::time::Duration;

use super::{Idle, Pricer, SOLVE_LIMIT, Tick};
use crate::extender::metrics::Metrics;
use crate::extender::policies::PolicySettings;
use crate::extender::state::{Store, WINDOW};
use crate::extender::verbs::filter;
use crate::extender::wire::ExtenderArgs;
use crate::live::pod::PodRequest;
use crate::model::{GpuDemand, ModelSet, PodDemand};
use crate::policy::PolicyKind;
use crate::policy::learned::features::{COUNT, PRICE};
use crate::policy::learned::{PolicyFile, Provenance};
use crate::snapshot::{ClusterSnapshot, parse_snapshot};

/// A snapshot of 8-GPU A100 nodes: `thin` ones with 16 cores, `fat` ones with 128.
fn snapshot(names: &[&str]) -> ClusterSnapshot {
    let nodes: Vec<serde_json::Value> = names
        .iter()
        .map(|name| {
            let cpu = if name.starts_with("thin") {
                "16"
            } else {
                "128"
            };
            serde_json::json!({"name": name, "cpu": cpu, "memory": "512Gi", "gpus": 8,
                               "model": "A100"})
        })
        .collect();
    parse_snapshot("inline", &serde_json::json!({ "nodes": nodes }).to_string()).unwrap()
}

fn store() -> Store {
    let store = Store::new(None, Vec::new());
    store.replace(snapshot(&["thin-0", "thin-1", "fat-0", "fat-1"]));
    store
}

/// One GPU and 8 cores: a thin node's CPU runs out before its GPUs, a fat node's GPUs first.
fn demand() -> PodDemand {
    PodDemand {
        cpu_milli: 8_000,
        memory_bytes: 1 << 30,
        gpu: GpuDemand::Whole { count: 1 },
        models: ModelSet::ANY,
    }
}

fn request(uid: &str) -> PodRequest {
    PodRequest {
        key: format!("ns/{uid}"),
        uid: uid.to_string(),
        demand: demand(),
        policy: PolicyKind::Fgd,
        priority: 0,
        planned_node: None,
        planned_devices: None,
    }
}

/// The pod of [`demand`], offered every node.
fn pod(uid: &str) -> ExtenderArgs {
    serde_json::from_value(serde_json::json!({
        "Pod": { "metadata": { "name": uid, "namespace": "ns", "uid": uid },
                 "spec": { "containers": [{ "name": "c", "resources": {
                     "requests": { "cpu": "8", "memory": "1Gi", "nvidia.com/gpu": "1" } } }] } },
        "NodeNames": ["thin-0", "thin-1", "fat-0", "fat-1"] }))
    .unwrap()
}

/// Learned settings as the default policy, with weight `price` on lp_price_cost.
fn learned(price: f64) -> PolicySettings {
    let mut weights = vec![0.0; COUNT];
    weights[0] = 1.0;
    weights[PRICE] = price;
    PolicySettings {
        default: PolicyKind::Learned,
        shadow: None,
        learned: Some(Arc::new(PolicyFile::new(
            weights,
            100,
            Provenance::default(),
        ))),
    }
}

fn index(store: &Store, name: &str) -> usize {
    store.view().node_index(name).unwrap()
}

fn solves(store: &Store, outcome: &str) -> String {
    let text = Metrics::for_store(store).render(Duration::ZERO, 0);
    let series = format!("allot_extender_price_solves_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series).map(str::to_string))
        .unwrap_or_else(|| "absent".into())
}

#[test]
fn an_installed_book_reaches_the_current_view_and_views_on_a_new_base() {
    let store = store();
    let before = store.view();
    assert!(before.ctx.prices.is_none());
    let book = crate::alloc::price(&before.cluster, &vec![demand(); 50], SOLVE_LIMIT).unwrap();
    let fat_cost = book.cost(index(&store, "fat-1"), &demand());
    let thin_cost = book.cost(index(&store, "thin-0"), &demand());
    assert!(fat_cost > 0.5 && thin_cost > 0.0, "{fat_cost} {thin_cost}");
    store.install_prices(book.clone(), &before.base);
    let now = store.view();
    assert_eq!(now.ctx.prices.as_deref(), Some(&book));
    assert!(
        Arc::ptr_eq(&now.base, &before.base),
        "same base, new context"
    );
    assert!(
        before.ctx.prices.is_none(),
        "a reader keeps the view it holds"
    );

    // A placement on the same base shares the priced context.
    store.record(&request("p"), "fat-0").unwrap();
    assert!(Arc::ptr_eq(&store.view().ctx, &now.ctx));

    // A new base: nodes moved, one gone, one added; the book follows them by hardware.
    store.replace(snapshot(&["fat-new", "fat-1", "thin-0"]));
    let moved = store.view();
    let prices = moved
        .ctx
        .prices
        .as_ref()
        .expect("the new base's context is priced");
    assert_eq!(prices.cost(index(&store, "fat-1"), &demand()), fat_cost);
    assert_eq!(prices.cost(index(&store, "thin-0"), &demand()), thin_cost);
    assert_eq!(prices.cost(index(&store, "fat-new"), &demand()), fat_cost);

    // A change of policy settings rebuilds the context, prices included.
    store.set_policies(learned(1.0));
    assert!(store.view().ctx.prices.is_some());
}

#[test]
fn the_window_counts_a_pod_filtered_twice_once_and_keeps_the_latest() {
    let store = store();
    filter(&store, &pod("a")).unwrap();
    filter(&store, &pod("a")).unwrap();
    assert_eq!(store.recent_arrivals(), vec![demand()]);
    for i in 0..WINDOW + 5 {
        store.remember(&request(&format!("p{i}")));
    }
    assert_eq!(store.recent_arrivals().len(), WINDOW);
    // "a" and the first five were dropped: filtering "a" again is a new arrival.
    filter(&store, &pod("a")).unwrap();
    assert_eq!(store.recent_arrivals().len(), WINDOW);
}

#[test]
fn a_tick_solves_and_installs_only_while_learned_reads_prices() {
    let mut pricer = Pricer::new(SOLVE_LIMIT);
    let store = store().with_policies(learned(1.0));
    assert_eq!(pricer.tick(&store), Tick::Idle(Idle::NoArrivals));
    for i in 0..20 {
        filter(&store, &pod(&format!("p{i}"))).unwrap();
    }
    let tick = pricer.tick(&store);
    assert!(
        matches!(
            tick,
            Tick::Solved {
                groups: 2,
                arrivals: 20
            }
        ),
        "{tick:?}"
    );
    assert!(store.view().ctx.prices.is_some());
    assert_eq!(solves(&store, "ok"), "1");

    // FGD by default, no shadow: nothing is solved, even with the same weights loaded.
    for settings in [
        PolicySettings {
            default: PolicyKind::Fgd,
            ..learned(1.0)
        },
        learned(0.0),
    ] {
        let store = store_with(settings.clone());
        assert_eq!(
            pricer.tick(&store),
            Tick::Idle(Idle::NotWanted),
            "{settings:?}"
        );
        assert!(store.view().ctx.prices.is_none());
        assert_eq!(solves(&store, "ok"), "absent");
    }

    // Learned as the shadow of FGD reads prices too.
    let shadowed = store_with(PolicySettings {
        default: PolicyKind::Fgd,
        shadow: Some(PolicyKind::Learned),
        ..learned(1.0)
    });
    assert!(matches!(pricer.tick(&shadowed), Tick::Solved { .. }));

    // Not ready (never listed): nothing solved.
    let empty = Store::new(None, Vec::new()).with_policies(learned(1.0));
    empty.remember(&request("x"));
    assert_eq!(pricer.tick(&empty), Tick::Idle(Idle::NotReady));
}

/// A store deciding with `settings` that has seen 20 arrivals.
fn store_with(settings: PolicySettings) -> Store {
    let store = store().with_policies(settings);
    for i in 0..20 {
        store.remember(&request(&format!("p{i}")));
    }
    store
}
