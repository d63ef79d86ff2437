//! `allot extender` as started from the command line serves through the bounded listeners:
//! a half-sent request is dropped after --header-timeout-seconds, and SIGTERM stops the
//! process within --drain-seconds although such a request is open.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// Kills the extender if a test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_healthy(admin: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", admin)) {
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the extender did not become healthy within 20 s");
}

/// A connection that sent half a request head.
fn half_sent(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    s.write_all(b"POST /filter HTTP/1.1\r\nHost: t\r\n")
        .expect("writes");
    s
}

#[test]
fn the_cli_extender_drops_half_sent_requests_and_stops_within_its_drain() {
    let (verbs, admin) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["extender", "--snapshot", "examples/cluster.json"])
        .args(["--listen", &format!("127.0.0.1:{verbs}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .args(["--header-timeout-seconds", "1", "--drain-seconds", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the allot binary starts");
    let mut running = Running(child);
    wait_healthy(admin);

    let mut slow = half_sent(verbs);
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("sets a timeout");
    let started = Instant::now();
    let mut rest = Vec::new();
    // The server answers 408 or just closes; either way the read ends.
    let _ = slow.read_to_end(&mut rest);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "a half-sent head was held {took:?} (timeout 1 s)"
    );

    let _held = half_sent(verbs);
    let pid = running.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.is_ok_and(|s| s.success()), "kill -TERM {pid}");
    let started = Instant::now();
    loop {
        if let Some(status) = running.0.try_wait().expect("waits") {
            assert!(status.success(), "exit status {status:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "still running 8 s after SIGTERM with a half-sent request open (drain 1 s)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
