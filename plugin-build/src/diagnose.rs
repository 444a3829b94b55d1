//! Reading a failed build's output for mistakes a plugin author can fix.

/// C library functions behind `std::net` (and libraries that open sockets themselves).
/// Debian's wasi-libc has no sockets, so a plugin that calls them fails to link with
/// `undefined symbol: …`; plugins never get sockets anyway (a driver reaches its BMC through
/// `bmc-http`).
const SOCKET_SYMBOLS: &[&str] = &[
    "accept",
    "accept4",
    "bind",
    "connect",
    "freeaddrinfo",
    "gai_strerror",
    "getaddrinfo",
    "getnameinfo",
    "getpeername",
    "getsockname",
    "getsockopt",
    "listen",
    "recv",
    "recvfrom",
    "send",
    "sendto",
    "setsockopt",
    "shutdown",
    "socket",
];

/// The socket function a linker error line names (`wasm-ld: error: …: undefined symbol:
/// connect`), if the line is one.
pub fn socket_symbol(line: &str) -> Option<&str> {
    let (_, symbol) = line.split_once("undefined symbol: ")?;
    let symbol = symbol.trim();
    SOCKET_SYMBOLS.contains(&symbol).then_some(symbol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undefined_socket_function_is_recognised() {
        let line =
            "          wasm-ld: error: /t/libstd-a5.rlib(std.o): undefined symbol: freeaddrinfo";
        assert_eq!(socket_symbol(line), Some("freeaddrinfo"));
        assert_eq!(
            socket_symbol("undefined symbol: connect\n"),
            Some("connect")
        );
    }

    #[test]
    fn other_link_errors_and_lines_are_not_about_sockets() {
        assert_eq!(
            socket_symbol("wasm-ld: error: undefined symbol: my_helper"),
            None
        );
        assert_eq!(socket_symbol("   Compiling socket2 v0.6.0"), None);
        assert_eq!(socket_symbol(""), None);
    }
}
