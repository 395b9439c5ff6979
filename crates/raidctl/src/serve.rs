//! `raidctl serve`: the array as an NBD export, owned by this process until it stops.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use clap::Args;
use raidkit_nbd::{ArrayExport, Listener, Server, ServerOptions};

use crate::members::Members;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Listen on this Unix socket (the default: raidctl-NAME.sock in $XDG_RUNTIME_DIR, or
    /// else in /tmp/raidctl-UID, a folder private to the user).
    #[arg(long, value_name = "PATH", conflicts_with = "listen")]
    unix: Option<PathBuf>,
    /// Listen on TCP instead: PORT (on 127.0.0.1) or ADDR:PORT.
    #[arg(long, value_name = "[ADDR:]PORT")]
    listen: Option<String>,
    /// The export's name (default: the array's name).
    #[arg(long, value_name = "EXPORT")]
    name: Option<String>,
    /// Refuse writes (the array is opened read-only: nothing about it changes).
    #[arg(long)]
    read_only: bool,
    /// Connections at once.
    #[arg(long, default_value_t = 16)]
    max_clients: usize,
    /// Pace the automatic rebuild onto hot spares: at most this many bytes per second of
    /// each member (K, M, G suffixes), as rebuild's --rate; default unlimited.
    #[arg(long, value_parser = crate::size::parse_size)]
    rate: Option<usize>,
    #[command(flatten)]
    members: Members,
}

/// `PORT` or `ADDR:PORT`; a bare port binds loopback only.
fn tcp_address(text: &str) -> Result<SocketAddr> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse::<SocketAddr>()
        .with_context(|| format!("--listen {text}: not PORT or ADDR:PORT"))
}

pub fn run(args: ServeArgs) -> Result<()> {
    let array = if args.read_only {
        args.members.open_read_only()?
    } else {
        args.members.open()?
    };
    let status = array.status();
    let export_name = args.name.clone().unwrap_or_else(|| status.name.clone());
    let tag = if status.name.is_empty() {
        status.uuid.chars().take(8).collect::<String>()
    } else {
        status.name.clone()
    };
    let (listener, uri, socket) = match &args.listen {
        Some(text) => {
            let address = tcp_address(text)?;
            let listener = TcpListener::bind(address)
                .with_context(|| format!("cannot listen on {address}"))?;
            let bound = listener.local_addr()?;
            (
                Listener::Tcp(listener),
                format!("nbd://{bound}/{export_name}"),
                None,
            )
        }
        None => {
            let path = match args.unix.clone() {
                Some(path) => path,
                None => crate::control::runtime_dir()?.join(format!("raidctl-{tag}.sock")),
            };
            if path.exists() {
                if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                    bail!(
                        "{}: a server already listens there (stop it first, or give --unix PATH)",
                        path.display()
                    );
                }
                // A socket file left by a server that did not end cleanly.
                std::fs::remove_file(&path).with_context(|| {
                    format!("{}: cannot remove the stale socket", path.display())
                })?;
            }
            let listener = UnixListener::bind(&path)
                .with_context(|| format!("cannot listen on {}", path.display()))?;
            let uri = format!("nbd+unix:///{export_name}?socket={}", path.display());
            (Listener::Unix(listener), uri, Some(path))
        }
    };
    let array = Arc::new(array);
    let export = Arc::new(ArrayExport::new(array.clone()));
    // The control socket: commands given the same members act on the live array.
    let stop_all = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let live = crate::control::Live::new(
        array.clone(),
        uri.clone(),
        stop_all.clone(),
        args.rate.map(|r| r as u64),
    );
    let control = crate::control::control_path(&status.uuid)?;
    let _ = std::fs::remove_file(&control);
    let control_listener = UnixListener::bind(&control)
        .with_context(|| format!("cannot listen on {}", control.display()))?;
    // Only the server's user may manage the array through it.
    std::fs::set_permissions(
        &control,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .with_context(|| format!("{}: cannot restrict it to its owner", control.display()))?;
    let control_thread = {
        let live = live.clone();
        let stop = stop_all.clone();
        std::thread::spawn(move || crate::control::serve_control(control_listener, live, stop))
    };
    // Ctrl-C or `raidctl stop` ends serving.
    let watcher = {
        let stop = stop_all.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if crate::interrupted().load(Ordering::Relaxed) {
                    stop.store(true, Ordering::Release);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let options = ServerOptions {
        name: export_name,
        description: format!("raidkit array {} ({})", status.name, status.uuid),
        max_clients: args.max_clients.max(1),
        ..ServerOptions::default()
    };
    let server = Server::new(export.clone(), options);
    eprintln!(
        "raidctl: serving {} array {} ({} MiB){} at {uri}",
        crate::report::level_name(status.level),
        if status.name.is_empty() {
            &status.uuid
        } else {
            &status.name
        },
        status.size >> 20,
        if args.read_only { ", read-only" } else { "" }
    );
    let served = server.serve(listener, &stop_all);
    let _ = watcher.join();
    let _ = control_thread.join();
    let _ = std::fs::remove_file(&control);
    live.finish();
    let stats = &server.stats;
    eprintln!(
        "raidctl: stopping: {} connection(s), {} request(s) served ({} with an error)",
        stats.connections.load(Ordering::Relaxed),
        stats.requests.load(Ordering::Relaxed),
        stats.errors.load(Ordering::Relaxed)
    );
    drop(server);
    if let Some(path) = &socket {
        let _ = std::fs::remove_file(path);
    }
    drop(export);
    drop(live);
    let array = Arc::try_unwrap(array)
        .map_err(|_| anyhow::anyhow!("the array is still in use after the server stopped"))?;
    crate::members::close(array)?;
    served.context("the server stopped on an error")?;
    Ok(())
}
