//! Free TCP ports on the loopback interface.

use std::net::TcpListener;

/// A port that was free a moment ago on 127.0.0.1. The small race between releasing it and the
/// service binding it is accepted: services are started with retries by their starters.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
