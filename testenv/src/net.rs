//! Loopback port allocation.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Mutex, PoisonError};

use crate::{Error, Result};

/// Ports this process has already handed out, so two components started at the same time
/// never get the same one.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Returns a TCP port on 127.0.0.1 that was free a moment ago and that this process has not
/// handed out before.
pub fn free_port() -> Result<u16> {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    loop {
        let listener =
            TcpListener::bind(("127.0.0.1", 0)).map_err(Error::io("bind a loopback port"))?;
        let port = listener
            .local_addr()
            .map_err(Error::io("read a bound port"))?
            .port();
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let ports: HashSet<u16> = (0..50).map(|_| free_port().expect("free port")).collect();
        assert_eq!(ports.len(), 50);
    }
}
