//! A controller told to keep its Lease in a namespace that does not exist says so once, in
//! its log and on `/readyz` (503, with the fix), instead of a warning every round; once the
//! namespace exists it takes the Lease and is ready.

use anyhow::{Result, ensure};

use super::leading;
use crate::support::{AllotProcess, Cluster, WAIT, free_port, poll};

/// `/readyz`'s status code and body.
fn readyz(admin: &str) -> Result<(u16, String)> {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            &format!("http://{admin}/readyz"),
        ])
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    Ok((code.trim().parse().unwrap_or(0), body.to_string()))
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn a_missing_lease_namespace_is_named_once_and_leadership_follows_its_creation() -> Result<()>
{
    let test = "a_missing_lease_namespace_is_named_once_and_leadership_follows_its_creation";
    let cluster = Cluster::from_env(test).await?;
    cluster
        .in_namespace("sr-lease", |cluster, ns| async move {
            let missing = format!("{ns}-lease");
            let admin = format!("127.0.0.1:{}", free_port()?);
            let mut ctl = AllotProcess::start(
                cluster,
                "controller-lease-ns",
                &[
                    "controller",
                    "--lease-namespace",
                    &missing,
                    "--lease-duration-seconds",
                    "3",
                    "--admin-listen",
                    &admin,
                ],
            )?;
            let body = poll("/readyz to name the missing namespace", WAIT, || async {
                let (code, body) = readyz(&admin)?;
                Ok((code == 503 && body.contains("does not exist")).then_some(body))
            })
            .await?;
            ensure!(
                body.contains(&missing) && body.contains("--lease-namespace"),
                "{body}"
            );
            // Four more lease rounds (one a second with a 3 s lease): still one log line.
            tokio::time::sleep(std::time::Duration::from_secs(4)).await;
            ctl.check_alive()?;
            let log = std::fs::read_to_string(&ctl.log)?;
            let said = log.lines().filter(|l| l.contains("does not exist")).count();
            ensure!(
                said == 1,
                "the missing namespace logged {said} times:\n{log}"
            );
            ensure!(!leading(&admin)?, "leading without a Lease");
            cluster.kubectl(&["create", "namespace", &missing])?;
            poll(
                "the controller to lead once the namespace exists",
                WAIT,
                || async {
                    let ready = readyz(&admin)?.0 == 200;
                    Ok((ready && leading(&admin)?).then_some(()))
                },
            )
            .await?;
            let log = std::fs::read_to_string(&ctl.log)?;
            ensure!(log.contains("lease rounds succeed again"), "{log}");
            cluster.kubectl(&["delete", "namespace", &missing, "--wait=false"])?;
            Ok(())
        })
        .await
}
