use clap::Parser;

use super::*;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    agent: AgentArgs,
}

fn parse(args: &[&str]) -> Result<Settings, String> {
    let cli = Cli::try_parse_from(std::iter::once("agent").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    settings(&cli.agent)
}

#[test]
fn defaults_are_valid() {
    let s = parse(&["--node-name", "n1"]).expect("valid");
    assert_eq!(s.node_name, "n1");
    assert_eq!(s.heartbeat, Duration::from_secs(30));
    assert_eq!(s.sample, Duration::from_secs(5));
    assert_eq!(s.thresholds, Thresholds::default());
}

#[test]
fn bad_flags_are_named() {
    // NODE_NAME may be set in the environment running the tests; an empty flag wins.
    let e = parse(&["--node-name", " "]).expect_err("no node");
    assert!(e.contains("--node-name or set NODE_NAME"), "{e}");
    let e = parse(&["--node-name", "n", "--listen", "nowhere"]).expect_err("listen");
    assert!(e.contains("--listen \"nowhere\""), "{e}");
    let e = parse(&["--node-name", "n", "--sample-seconds", "0"]).expect_err("sample");
    assert!(e.contains("--sample-seconds"), "{e}");
    let e = parse(&[
        "--node-name",
        "n",
        "--heartbeat-seconds",
        "2",
        "--sample-seconds",
        "5",
    ])
    .expect_err("heartbeat");
    assert!(e.contains("--heartbeat-seconds (2)"), "{e}");
    let e = parse(&["--node-name", "n", "--change-cpu-fraction", "3"]).expect_err("fraction");
    assert!(e.contains("--change-cpu-fraction 3"), "{e}");
    let e = parse(&["--node-name", "n", "--heartbeat-jitter", "0.9"]).expect_err("jitter");
    assert!(e.contains("--heartbeat-jitter"), "{e}");
}
