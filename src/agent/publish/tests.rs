//! The publisher against a scripted API: the first write's order, errors that say what to fix, and
//! retried node reads.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::*;
use crate::agent::testing::{MockApi, UID, serve};

fn now() -> (Instant, Timestamp) {
    (Instant::now(), Timestamp::now())
}

#[tokio::test]
async fn first_write_applies_the_owned_object_then_the_status() {
    let api = Arc::new(MockApi::default());
    let mut p = Publisher::new(serve(api.clone()).await, "n1");
    let (t, wall) = now();
    p.write(&NodeTelemetryStatus::default(), t, wall)
        .await
        .expect("written");
    assert_eq!(p.allocatable().cpu_milli, 4000);
    assert_eq!(p.allocatable().memory_bytes, 8 << 30);
    let objects = api.objects();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0]["metadata"]["ownerReferences"][0]["uid"], UID);
    let statuses = api.statuses();
    assert_eq!(statuses.len(), 1);
    assert!(statuses[0]["status"]["heartbeatTime"].is_string());
    // Later writes touch only the status.
    p.write(&NodeTelemetryStatus::default(), t, wall)
        .await
        .expect("written");
    assert_eq!((api.objects().len(), api.statuses().len()), (1, 2));
}

#[tokio::test]
async fn errors_say_what_to_fix() {
    let api = Arc::new(MockApi::default());
    let client = serve(api.clone()).await;
    let (t, wall) = now();
    let status = NodeTelemetryStatus::default();

    api.node_code.store(404, Ordering::SeqCst);
    let e = Publisher::new(client.clone(), "ghost")
        .write(&status, t, wall)
        .await
        .expect_err("no node");
    assert_eq!(e.reason(), "NodeNotFound");
    assert!(
        e.to_string().contains("node \"ghost\" does not exist"),
        "{e}"
    );

    api.node_code.store(403, Ordering::SeqCst);
    let e = Publisher::new(client.clone(), "n1")
        .write(&status, t, wall)
        .await
        .expect_err("forbidden");
    assert_eq!(e.reason(), "Forbidden");
    assert!(e.to_string().contains("nodetelemetries/status"), "{e}");

    api.node_code.store(200, Ordering::SeqCst);
    api.object_code.store(404, Ordering::SeqCst);
    let e = Publisher::new(client.clone(), "n1")
        .write(&status, t, wall)
        .await
        .expect_err("no CRD");
    assert_eq!(e.reason(), "CrdMissing");
    assert!(
        e.to_string()
            .contains("crds/nodetelemetries.allot.dev.yaml"),
        "{e}"
    );

    api.object_code.store(200, Ordering::SeqCst);
    api.status_code.store(500, Ordering::SeqCst);
    let mut p = Publisher::new(client, "n1");
    let e = p.write(&status, t, wall).await.expect_err("server error");
    assert_eq!(e.reason(), "ApiError");
    assert!(e.to_string().contains("stand-in says 500"), "{e}");

    // Deleted under the agent: reported, then re-created on the next write.
    api.status_code.store(404, Ordering::SeqCst);
    let e = p.write(&status, t, wall).await.expect_err("gone");
    assert_eq!(e.reason(), "ObjectGone");
    api.status_code.store(200, Ordering::SeqCst);
    let before = api.objects().len();
    p.write(&status, t, wall).await.expect("re-created");
    assert_eq!(api.objects().len(), before + 1);
}

#[tokio::test]
async fn a_failed_node_read_is_retried_by_the_write_path_only() {
    let api = Arc::new(MockApi::default());
    let mut p = Publisher::new(serve(api.clone()).await, "n1");
    let (t, wall) = now();
    assert!(p.node_stale(t), "never read");
    api.node_code.store(500, Ordering::SeqCst);
    assert!(p.read_node(t).await.is_err());
    assert!(
        !p.node_stale(t + NODE_REFRESH),
        "a failed read must not be repeated every sample"
    );
    api.node_code.store(200, Ordering::SeqCst);
    p.write(&NodeTelemetryStatus::default(), t, wall)
        .await
        .expect("the write path reads the node");
    assert!(!p.node_stale(t + NODE_REFRESH - Duration::from_secs(1)));
    assert!(p.node_stale(t + NODE_REFRESH));
}
