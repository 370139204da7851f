//! What the `webhook` and `chat` examples share: log lines for operators.

/// Log lines on stderr, human-readable, at the level `RUST_LOG` sets (else `default`, such as
/// `info`; a directive it cannot read is left out with a note), coloured only on a terminal.
/// stdout is left to the program's own lines.
pub fn install(program: &str, default: &str) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::filter::EnvFilter;
    let filter = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::builder().parse_lossy(directives)
        }
        _ => EnvFilter::builder().parse_lossy(default),
    };
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    if let Err(e) = installed {
        eprintln!("{program}: no log lines: {e}");
    }
}
