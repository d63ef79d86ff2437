//! The metric names the chart's dashboard and alert rules query, and the names a `/metrics`
//! exposition declares: shared by `tests/monitoring_names.rs` (against allot's sources) and
//! the e2e test `e2e/tests/e2e/monitoring.rs` (against scrapes of a running extender and
//! kube-scheduler).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Names Prometheus itself writes for every target at scrape time: no exporter serves them.
pub const PROMETHEUS_NAMES: &[&str] = &["up"];

/// kube-scheduler's metrics the dashboard shows (its `/metrics`; the e2e test scrapes it).
pub const KUBE_SCHEDULER_NAMES: &[&str] = &[
    "scheduler_schedule_attempts_total",
    "scheduler_pending_pods",
];

/// Words of PromQL that read like a metric name but are not one.
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
];

/// Keywords followed by a list of label names in parentheses.
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names `expr` selects: identifiers that are not functions or aggregations
/// (followed by `(`), keywords, label names (inside `{}` or a grouping list), strings,
/// numbers, durations (`[5m]`, `offset 1h`) or Grafana variables (`$__rate_interval`).
pub fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(&chars, i)?,
            '{' => i = skip_group(&chars, i, '{', '}')?,
            '[' => i = skip_group(&chars, i, '[', ']')?,
            '#' => {
                i = chars[i..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(chars.len(), |n| i + n)
            }
            '$' => {
                i += 1;
                if chars.get(i) == Some(&'{') {
                    i = skip_group(&chars, i, '{', '}')?;
                } else {
                    while i < chars.len() && is_ident(chars[i]) {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_')
                {
                    i += 1;
                }
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                // A call, or an aggregation with its grouping first: `sum by (l) (x)`.
                let follower: String = chars[next..].iter().take_while(|c| is_ident(**c)).collect();
                let call =
                    chars.get(next) == Some(&'(') || ["by", "without"].contains(&follower.as_str());
                let lower = word.to_ascii_lowercase();
                if GROUPING.contains(&lower.as_str()) {
                    if call {
                        i = skip_group(&chars, next, '(', ')')?;
                    }
                } else if !call && !KEYWORDS.contains(&lower.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    Ok(names)
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The index after the string literal that opens at `start`.
fn skip_string(chars: &[char], start: usize) -> Result<usize, String> {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 2,
            c if c == quote => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(format!("unterminated string from offset {start}"))
}

/// The index after the group that opens with `open` at `start` (strings inside skipped).
fn skip_group(chars: &[char], start: usize, open: char, close: char) -> Result<usize, String> {
    let mut depth = 0usize;
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(chars, i)?;
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err(format!("unbalanced {open}{close} from offset {start}"))
}

/// Every name an exposition (Prometheus text or OpenMetrics) declares: sample names, and the
/// names each `# TYPE` line implies, so a family without samples yet (prometheus-client
/// prints only its HELP and TYPE lines) still counts. Counters: the name and `_total`;
/// histograms: `_bucket`, `_sum`, `_count`; summaries: the name, `_sum`, `_count`.
pub fn exposition_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["", "_total"],
                "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line
                .find(|c: char| c == '{' || c.is_whitespace())
                .unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// Every query of a Grafana dashboard: the `expr` of each panel target (rows' panels too),
/// and each variable's query (`label_values(<selector>, <label>)` reduced to its selector).
/// Each with where it is, for messages.
pub fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(v: &serde_json::Value, at: &str, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(map) => {
                let here = map
                    .get("title")
                    .and_then(|t| t.as_str())
                    .map_or_else(|| at.to_string(), |t| format!("panel \"{t}\""));
                if let Some(expr) = map.get("expr").and_then(|e| e.as_str()) {
                    out.push((here.clone(), expr.to_string()));
                }
                for (key, value) in map {
                    if key != "templating" {
                        walk(value, &here, out);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, at, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, "dashboard", &mut out);
    let variables = dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for var in variables.iter().filter(|v| v["type"] == "query") {
        let query = var["query"]["query"]
            .as_str()
            .or(var["query"].as_str())
            .unwrap_or("");
        let selector = query
            .strip_prefix("label_values(")
            .and_then(|q| q.rsplit_once(','))
            .map_or(query, |(selector, _)| selector);
        out.push((
            format!("variable \"{}\"", var["name"].as_str().unwrap_or("?")),
            selector.to_string(),
        ));
    }
    out
}

/// The `expr` of every rule of a Prometheus rule file, with its alert or record name.
pub fn rule_queries(yaml: &str) -> Result<Vec<(String, String)>, String> {
    let file: serde_json::Value =
        serde_saphyr::from_str(yaml).map_err(|e| format!("rules file: {e}"))?;
    let mut out = Vec::new();
    for group in file["groups"]
        .as_array()
        .ok_or("rules file: no `groups` list")?
    {
        for rule in group["rules"]
            .as_array()
            .ok_or("rules file: a group without `rules`")?
        {
            let name = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .unwrap_or("?");
            let expr = rule["expr"]
                .as_str()
                .ok_or_else(|| format!("rule {name}: no expr"))?;
            out.push((format!("rule {name}"), expr.to_string()));
        }
    }
    Ok(out)
}

/// Every metric name the chart's dashboard and rules use, with the places using it.
pub fn used_names(repo: &Path) -> Result<BTreeMap<String, Vec<String>>, String> {
    let dir = repo.join("charts/allot/monitoring");
    let read =
        |f: &str| std::fs::read_to_string(dir.join(f)).map_err(|e| format!("reading {f}: {e}"));
    let dashboard: serde_json::Value = serde_json::from_str(&read("dashboard.json")?)
        .map_err(|e| format!("dashboard.json: {e}"))?;
    let mut queries: Vec<(String, String)> = dashboard_queries(&dashboard)
        .into_iter()
        .map(|(at, q)| (format!("dashboard.json {at}"), q))
        .collect();
    queries.extend(
        rule_queries(&read("rules.yaml")?)?
            .into_iter()
            .map(|(at, q)| (format!("rules.yaml {at}"), q)),
    );
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (at, query) in queries {
        for name in metric_names(&query).map_err(|e| format!("{at}: {e}: {query}"))? {
            used.entry(name).or_default().push(at.clone());
        }
    }
    Ok(used)
}

/// The `"allot_..."` string literals of every `.rs` file under `dir`: the names allot
/// registers (without the suffixes the exposition adds to counters and histograms).
pub fn registered_names(dir: &Path) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.is_dir() {
            out.extend(registered_names(&path)?);
        } else if path.extension().is_some_and(|x| x == "rs") {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            for (at, _) in text.match_indices("\"allot_") {
                let rest = &text[at + 1..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(rest.len());
                if rest[end..].starts_with('"') {
                    out.insert(rest[..end].to_string());
                }
            }
        }
    }
    Ok(out)
}

/// `name` without the suffix an exposition adds to a counter or histogram family.
pub fn family(name: &str) -> &str {
    ["_total", "_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// The used names that `known` lacks, one line each with where they are used.
pub fn unknown(used: &BTreeMap<String, Vec<String>>, known: &BTreeSet<String>) -> Vec<String> {
    used.iter()
        .filter(|(name, _)| !known.contains(*name))
        .map(|(name, at)| format!("{name} (used by {})", at.join(", ")))
        .collect()
}
