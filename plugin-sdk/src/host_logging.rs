//! The plugin's side of logging: the `log` crate's records and panics go to the host's `log`
//! import of the plugin's world.

/// One world's `log` import, as the `log` bridge and the panic hook call it.
pub struct HostLog {
    pub(crate) forward: fn(log::Level, &str, &[(String, String)]),
    pub(crate) enabled: fn(log::Level) -> bool,
}

/// The `log` crate's logger inside a plugin: every record the host would keep goes to it.
impl log::Log for HostLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        (self.enabled)(metadata.level())
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let fields = [(String::from("target"), record.target().to_owned())];
            (self.forward)(record.level(), &record.args().to_string(), &fields);
        }
    }

    fn flush(&self) {}
}

/// Installs (once per instance) the `log` bridge to `host` and a panic hook that reports the
/// panic message through it before the instance traps, so the operator's error says why the
/// plugin crashed.
pub fn install_host_logging(host: &'static HostLog) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(move |info| {
            (host.forward)(log::Level::Error, &format!("panic: {info}"), &[]);
        }));
        if log::set_logger(host).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    });
}
