//! The long-running roles started where there is no cluster: one line saying what to set,
//! not kube's chain of every place it looked, and no hang.
#![cfg(feature = "k8s")]

use std::process::Command;

fn run(
    args: &[&str],
    home: &std::path::Path,
    kubeconfig: Option<&std::path::Path>,
) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_allot"));
    cmd.args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("NODE_NAME", "n1")
        .env("RUST_LOG", "error");
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    let out = cmd.output().expect("the allot binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn each_role_says_in_one_line_that_there_is_no_cluster() {
    let home = tempfile::tempdir().expect("tempdir");
    let roles: [&[&str]; 3] = [
        &[
            "extender",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &["controller", "--admin-listen", "127.0.0.1:0"],
        &["agent", "--listen", "127.0.0.1:0"],
    ];
    for args in roles {
        let (code, err) = run(args, home.path(), None);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert_eq!(
            err.trim_end(),
            "error: no kubeconfig found: set KUBECONFIG or run inside a cluster",
            "{args:?}"
        );
    }
    let bad = home.path().join("config");
    std::fs::write(&bad, "not: [a kubeconfig").expect("write");
    let (code, err) = run(roles[1], home.path(), Some(&bad));
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "reading the cluster configuration (KUBECONFIG={})",
            bad.display()
        )),
        "{err}"
    );
}
