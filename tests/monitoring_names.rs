//! The chart's Grafana dashboard and alert rules (`charts/allot/monitoring/`) query only
//! metrics allot exports (registered in `src/` as `"allot_..."` literals) or that a named
//! list provides (kube-scheduler's, Prometheus' own `up`); the e2e test
//! `e2e/tests/e2e/monitoring.rs` checks the same names against real scrapes. Also: the
//! dashboard's shape (datasource variable, size), and that the chart's per-alert overrides
//! and its README name exactly the alerts of `rules.yaml`.
#![cfg(feature = "k8s")]

#[path = "monitoring/promql.rs"]
mod promql;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use promql::{KUBE_SCHEDULER_NAMES, PROMETHEUS_NAMES, metric_names, unknown, used_names};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Every name allot's exposition may show for its registered names: prometheus-client adds
/// `_total` to counters and `_bucket`/`_sum`/`_count` to histograms (the literal alone does
/// not say which a name is; the rendered registries below do, where the test can build them).
fn exported() -> BTreeSet<String> {
    let names = promql::registered_names(&repo().join("src")).expect("scanning src/");
    assert!(
        names.contains("allot_extender_requests") && names.contains("allot_build_info"),
        "the scan of src/ for \"allot_...\" literals found too little: {names:?}"
    );
    names
        .iter()
        .flat_map(|n| ["", "_total", "_bucket", "_sum", "_count"].map(|s| format!("{n}{s}")))
        .collect()
}

fn allow_listed() -> BTreeSet<String> {
    PROMETHEUS_NAMES
        .iter()
        .chain(KUBE_SCHEDULER_NAMES)
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn extractor_finds_metric_names_and_nothing_else() {
    let cases: &[(&str, &[&str])] = &[
        (
            r#"histogram_quantile(0.99, sum by (verb, le) (rate(a_bucket{verb="filter", le=~"0.5|1"}[5m])))"#,
            &["a_bucket"],
        ),
        (
            "sum(rate(b_total[$__rate_interval])) by (policy)",
            &["b_total"],
        ),
        (
            "x / on (instance) group_left (model) y > bool 0.5",
            &["x", "y"],
        ),
        (
            r#"absent(up{job=~".*(extender|on).*"} == 1) or vector(0)"#,
            &["up"],
        ),
        (
            "max_over_time(m[1d:5m] offset 1h) unless ignoring(le) n and Inf < NaN",
            &["m", "n"],
        ),
        (
            r#"label_replace(c, "dst", "$1", "src", "(.*)") + count_values("v", d) * 1e3"#,
            &["c", "d"],
        ),
        (
            "time() - max without (pod) (ts{model=~\"${model}\"} > 0) # a comment naming z\n",
            &["ts"],
        ),
        ("topk(5, sum by (le)(q)) @ start()", &["q"]),
        ("job:requests:rate5m", &["job:requests:rate5m"]),
    ];
    for (expr, want) in cases {
        let got = metric_names(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "names of {expr}");
    }
    assert!(
        metric_names("sum(x{a=\"b\"").is_err(),
        "an unclosed brace must be an error"
    );
}

#[test]
fn a_metric_nobody_exports_is_reported() {
    let mut used = BTreeMap::new();
    for name in
        metric_names("sum(rate(allot_extender_requestz_total[5m])) / sum(up)").expect("expr")
    {
        used.insert(name, vec!["a test".to_string()]);
    }
    let mut known = exported();
    known.extend(allow_listed());
    assert_eq!(
        unknown(&used, &known),
        ["allot_extender_requestz_total (used by a test)"]
    );
}

#[test]
fn dashboard_and_rules_query_only_exported_or_allow_listed_metrics() {
    let used = used_names(&repo()).expect("reading the dashboard and rules");
    assert!(
        used.len() > 20,
        "too few names found, is the extractor broken? {used:?}"
    );
    let mut known = exported();
    known.extend(allow_listed());
    let missing = unknown(&used, &known);
    assert!(
        missing.is_empty(),
        "charts/allot/monitoring queries metrics that allot does not register in src/ and that \
         are not on the allow-lists of tests/monitoring/promql.rs:\n  {}",
        missing.join("\n  ")
    );
    // An allow-list entry nothing uses is a stale entry.
    let idle: Vec<String> = allow_listed()
        .into_iter()
        .filter(|n| !used.contains_key(n))
        .collect();
    assert!(
        idle.is_empty(),
        "allow-listed but never queried (remove them): {idle:?}"
    );
}

/// The extender's and the controller's expositions with a sample in every family the
/// dashboard and rules read (prometheus-client leaves a family without samples out of the
/// exposition altogether). The extender's policy families need a Store, and are not read.
fn rendered() -> String {
    use allot::extender::gauges::{ClusterGauges, ModelTally};
    use allot::extender::metrics::{Metrics, Outcome, Verb};
    use allot::extender::waiting::Waiting;
    let extender = Metrics::default();
    extender.observe(Verb::Filter, Outcome::Ok, Duration::from_millis(1));
    extender.decided("fgd");
    let mut cluster = ClusterGauges::default();
    cluster.models.insert(
        "V100".into(),
        ModelTally {
            gpus: 8,
            ..ModelTally::default()
        },
    );
    extender.set_cluster(&cluster, &[0; Waiting::ALL.len()]);
    let controller = allot::controller::metrics::Metrics::default();
    controller.reconciled(Duration::from_millis(1), Some("KubeApi"));
    controller.planned(allot::controller::metrics::PlanOutcome::Complete, 1);
    controller.moved("NodeDeleted");
    format!(
        "{}\n{}",
        extender.render(Duration::ZERO, 0),
        controller.render()
    )
}

#[test]
fn extender_and_controller_names_have_the_suffix_their_type_gives() {
    // A name whose family these registries have must be one their exposition declares (a
    // counter queried without `_total`, say, would match no series).
    let text = rendered();
    let declared = promql::exposition_names(&text);
    let families: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_whitespace().next())
        .map(str::to_string)
        .collect();
    for f in [
        "allot_extender_requests",
        "allot_cluster_gpus",
        "allot_controller_plans",
    ] {
        assert!(
            families.contains(f),
            "{f} not in the rendered metrics:\n{text}"
        );
    }
    let used = used_names(&repo()).expect("reading the dashboard and rules");
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (name, at) in &used {
        // A gauge may end in `_count` too: strip only when that names a family.
        let stripped = promql::family(name);
        let family = if families.contains(stripped) {
            stripped
        } else {
            name
        };
        if families.contains(family) {
            checked += 1;
            if !declared.contains(name) {
                wrong.push(format!("{name} (used by {})", at.join(", ")));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "names the exposition does not have: {wrong:?}"
    );
    assert!(
        checked >= 15,
        "only {checked} names checked against the rendered metrics"
    );
}

#[test]
fn dashboard_uses_the_datasource_variable_and_fits_a_configmap() {
    let text = read("charts/allot/monitoring/dashboard.json");
    // A ConfigMap holds at most 1 MiB; leave room for the object around the JSON.
    assert!(
        text.len() < 900 << 10,
        "dashboard.json is {} bytes",
        text.len()
    );
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard.json parses");
    let vars = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list");
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "no `datasource` variable of type datasource (prometheus)"
    );
    // Every datasource reference is the variable: no UID of somebody's Grafana.
    fn check(v: &serde_json::Value, bad: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(ds) = map.get("datasource")
                    && ds.get("uid").and_then(|u| u.as_str()) != Some("${datasource}")
                {
                    bad.push(ds.to_string());
                }
                map.values().for_each(|v| check(v, bad));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| check(v, bad)),
            _ => {}
        }
    }
    let mut bad = Vec::new();
    check(&dashboard["panels"], &mut bad);
    assert!(
        bad.is_empty(),
        "datasources other than ${{datasource}}: {bad:?}"
    );
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "duplicate panel id {}",
            panel["id"]
        );
    }
}

#[test]
fn alert_overrides_and_readme_name_every_alert() {
    let rules = promql::rule_queries(&read("charts/allot/monitoring/rules.yaml")).expect("rules");
    let alerts: BTreeSet<String> = rules
        .iter()
        .filter_map(|(at, _)| at.strip_prefix("rule "))
        .map(str::to_string)
        .collect();
    let schema: serde_json::Value =
        serde_json::from_str(&read("charts/allot/values.schema.json")).expect("values.schema.json");
    let overridable: BTreeSet<String> = schema["properties"]["metrics"]["properties"]["prometheusRule"]
        ["properties"]["alerts"]["properties"]
        .as_object()
        .expect("metrics.prometheusRule.alerts in values.schema.json")
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        overridable, alerts,
        "values.schema.json's metrics.prometheusRule.alerts vs rules.yaml"
    );
    let readme = read("charts/allot/README.md");
    let section = readme
        .split("## Monitoring")
        .nth(1)
        .expect("a Monitoring section in charts/allot/README.md");
    let section = section.split("\n## ").next().unwrap_or(section);
    let undocumented: Vec<&String> = alerts
        .iter()
        .filter(|a| !section.contains(&format!("`{a}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "alerts the README's Monitoring section does not explain: {undocumented:?}"
    );
}
