//! Loopback ports for helper processes that must be told their port (nats-server, s3s-fs,
//! Ballista, `roadhex serve` restarted on the same port). Shared by the examples, the e2e tests
//! and the lake's integration tests (`#[path]` includes; one copy of the rule).

/// A free loopback port below the kernel's ephemeral range (32768–60999 on Linux). A port picked
/// with bind(0) and released lies inside that range, where two failures were seen in CI:
/// another test's bind(0) took it first ("Address already in use"), and a readiness probe that
/// connects before the helper listens can be given that very port as its source port and
/// connect to itself ("Connection refused" on the next, real connect). Outgoing connections never
/// use ports below the range, so neither can happen here. Each call in a process gets a new port.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOW: u16 = 20_000;
    const SPAN: u16 = 12_000;
    // Spread concurrent test processes apart; within one process, a counter keeps ports distinct.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + (base.wrapping_add(step.wrapping_mul(7))) % SPAN;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN)
}
