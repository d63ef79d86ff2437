//! README's offline extender example, as pasted: `allot extender --snapshot
//! examples/cluster.json` answers each body in `examples/extender/` the way README shows.
#![cfg(feature = "k8s")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Extender(Child);

impl Drop for Extender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("its address").port()
}

/// One HTTP/1.1 request; the status code and body.
fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((code, body))
}

fn example(name: &str) -> String {
    let path = format!(
        "{}/examples/extender/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_readme_example_bodies_get_the_answers_readme_shows() {
    let (port, admin) = (free_port(), free_port());
    let root = env!("CARGO_MANIFEST_DIR");
    let _ext = Extender(
        Command::new(env!("CARGO_BIN_EXE_allot"))
            .args([
                "extender",
                "--snapshot",
                &format!("{root}/examples/cluster.json"),
            ])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("allot extender starts"),
    );
    let start = Instant::now();
    while http(admin, "GET", "/readyz", "").map(|(c, _)| c).ok() != Some(200) {
        assert!(start.elapsed() < Duration::from_secs(20), "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, filter) = http(port, "POST", "/filter", &example("filter")).expect("filter");
    assert_eq!(code, 200, "{filter}");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README");
    assert!(
        readme.contains(&format!("# {filter}")),
        "README shows another answer than {filter}"
    );
    let (code, ranks) = http(port, "POST", "/prioritize", &example("prioritize")).expect("prio");
    assert_eq!(code, 200, "{ranks}");
    let ranks: serde_json::Value = serde_json::from_str(&ranks).expect("a JSON list");
    assert_eq!(ranks.as_array().map(Vec::len), Some(4), "{ranks}");
    let (code, bind) = http(port, "POST", "/bind", &example("bind")).expect("bind");
    assert_eq!((code, bind.as_str()), (200, r#"{"Error":""}"#));
    let (_, metrics) = http(admin, "GET", "/metrics", "").expect("metrics");
    let line = r#"allot_cluster_gpus_allocated{model="V100M32"} 4.0"#;
    assert!(
        metrics.contains(line),
        "{line} missing after the bind:\n{metrics}"
    );
}
