//! `delay-relay`: a TCP forwarder that delays each direction by a fixed time.
//!
//! ```text
//! delay-relay --listen 127.0.0.1:0 --target HOST:PORT --delay-ms 30
//! ```
//!
//! Prints the address it listens on (one line on stdout), then relays until killed.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use weft_interop_tests::DelayRelay;

const USAGE: &str = "usage: delay-relay [--listen 127.0.0.1:0] --target HOST:PORT [--delay-ms 30]";

struct Args {
    listen: SocketAddr,
    target: SocketAddr,
    delay: Duration,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut target = None;
    let mut delay_ms = 30u64;
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let value = iter.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = value.parse().map_err(|e| format!("--listen: {e}"))?,
            "--target" => {
                target = value
                    .to_socket_addrs()
                    .map_err(|e| format!("--target: {e}"))?
                    .next()
            }
            "--delay-ms" => delay_ms = value.parse().map_err(|e| format!("--delay-ms: {e}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(Args {
        listen,
        target: target.ok_or("--target HOST:PORT is required")?,
        delay: Duration::from_millis(delay_ms),
    })
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let relay = match DelayRelay::start_on(args.listen, args.target, args.delay).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", relay.local_addr()).and_then(|()| stdout.flush());
    }
    eprintln!(
        "relaying {} -> {} with {:?} each way",
        relay.local_addr(),
        relay.target(),
        relay.one_way_delay()
    );
    let _ = tokio::signal::ctrl_c().await;
    eprintln!(
        "done: {} connections, {} bytes to target, {} bytes back",
        relay.connections(),
        relay.bytes_to_target(),
        relay.bytes_from_target()
    );
}
