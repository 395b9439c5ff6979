//! The control socket of `raidctl serve`: while an array is served, `status`, `fail`,
//! `add`, `remove`, `replace`, `rebuild`, `re-add`, `scrub`, `monitor` and `stop` given its
//! members act on the live array through the server, which owns it.
//!
//! The socket is `raidctl-UUID.ctl` in the runtime folder ([`runtime_dir`]), found from any member's superblock, or named with `--socket`. A client sends
//! one JSON line, `{"argv": [...], "cwd": "..."}`: its command line as given; the server
//! parses it with the same parser, runs it on the live array and answers one JSON line,
//! `{"stdout", "stderr", "code"}` (a `monitor` gets `{"stream": true}` and then event lines
//! until it hangs up). Long operations (rebuilds, scrubs) run in the server's background.
//! Commands that need the members themselves are refused with a hint naming the server.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use raidkit::Array;
use raidkit::array::{ArrayState, RebuildOptions, ScrubOptions};
use serde_json::{Value, json};

use crate::members::Members;
use crate::{Cli, Command, Outcome};

/// The runtime folder for sockets: `$XDG_RUNTIME_DIR` when set, else a private folder
/// `raidctl-UID` in the temporary folder, made mode 0700 and refused when another user
/// owns it or may enter it (so nobody else can put a socket where a client would look).
pub fn runtime_dir() -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
    {
        return Ok(dir);
    }
    // This process's user, without a system call of our own: /proc/self is its own.
    let uid = std::fs::metadata("/proc/self")
        .context("cannot tell this process's user (/proc/self)")?
        .uid();
    let dir = std::env::temp_dir().join(format!("raidctl-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("{}: cannot create", dir.display())),
    }
    let meta = std::fs::symlink_metadata(&dir)
        .with_context(|| format!("{}: cannot look at it", dir.display()))?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        anyhow::bail!(
            "{}: not a private folder of this user (owner {}, mode {:o}); remove it or set XDG_RUNTIME_DIR",
            dir.display(),
            meta.uid(),
            meta.mode() & 0o7777
        );
    }
    Ok(dir)
}

/// The control socket of the array `uuid`.
pub fn control_path(uuid: &str) -> Result<PathBuf> {
    Ok(runtime_dir()?.join(format!("raidctl-{uuid}.ctl")))
}

/// The control socket of the array the members belong to, when a server answers on it.
fn find_server(paths: &[PathBuf]) -> Result<Option<UnixStream>> {
    let Some(uuid) = paths.iter().find_map(|p| {
        let disk = raidkit::disk::open_read_only(p).ok()?;
        let sb = raidkit::meta::read_superblock(&disk).ok()?.superblock;
        Some(raidkit::format::uuid_string(&sb.array_uuid))
    }) else {
        return Ok(None);
    };
    Ok(UnixStream::connect(control_path(&uuid)?).ok())
}

/// When the members' array is served, runs this command line on the server and prints
/// its answer: `Some(outcome)`. `None` when no server answers (the command runs here).
pub fn forward(members: &Members) -> Result<Option<Outcome>> {
    let stream = match &members.socket {
        Some(socket) => Some(UnixStream::connect(socket).with_context(|| {
            format!(
                "{}: no raidctl serve answers there (the control socket is raidctl-UUID.ctl in {})",
                socket.display(),
                runtime_dir().map_or_else(|e| e.to_string(), |d| d.display().to_string())
            )
        })?),
        None => find_server(&members.paths()?)?,
    };
    let Some(mut stream) = stream else {
        return Ok(None);
    };
    let request = json!({
        "argv": std::env::args().collect::<Vec<_>>(),
        "cwd": std::env::current_dir()?.display().to_string(),
    });
    writeln!(stream, "{request}")?;
    let mut lines = BufReader::new(stream).lines();
    let first = lines
        .next()
        .context("the server hung up without an answer")??;
    let reply: Value = serde_json::from_str(&first).context("the server's answer")?;
    if reply["stream"] == true {
        let mut out = std::io::stdout().lock();
        for line in lines {
            let Ok(line) = line else { break };
            writeln!(out, "{line}")?;
            out.flush()?;
            if crate::interrupted().load(Ordering::Relaxed) {
                break;
            }
        }
        return Ok(Some(Outcome::Ok));
    }
    print!("{}", reply["stdout"].as_str().unwrap_or(""));
    eprint!("{}", reply["stderr"].as_str().unwrap_or(""));
    let code = reply["code"].as_u64().unwrap_or(1);
    Ok(Some(Outcome::Exit(u8::try_from(code).unwrap_or(1))))
}

/// Ends a command that returns `()` with a served array's answer: its exit code (its
/// output, error lines included, is already printed).
pub fn exit_with(outcome: Outcome) -> Result<()> {
    match outcome {
        Outcome::Ok | Outcome::Exit(0) => Ok(()),
        Outcome::Exit(code) => std::process::exit(i32::from(code)),
        _ => std::process::exit(1),
    }
}

#[derive(clap::Args, Debug)]
pub struct StopArgs {
    #[command(flatten)]
    members: Members,
}

/// `raidctl stop`: asks the server of the members' array to stop.
pub fn stop(args: StopArgs) -> Result<Outcome> {
    match forward(&args.members)? {
        Some(outcome) => Ok(outcome),
        None => anyhow::bail!(
            "no raidctl serve answers for this array (nothing to stop; its control socket would be in {})",
            runtime_dir()?.display()
        ),
    }
}

/// An operation the server runs in the background, for `status`.
#[derive(Debug)]
struct Operation {
    what: String,
    done: AtomicU64,
    total: u64,
    started: Instant,
}

/// The served array and what runs on it.
pub struct Live {
    array: Arc<Array>,
    uri: String,
    /// Set by `stop`: the server stops serving.
    pub stop: Arc<AtomicBool>,
    /// Cancels a background scrub.
    cancel: Arc<AtomicBool>,
    operation: Mutex<Option<Arc<Operation>>>,
    background: Mutex<Vec<std::thread::JoinHandle<()>>>,
    auto: Mutex<Option<raidkit::array::AutoRebuild>>,
}

/// One answer.
struct Reply {
    stdout: String,
    stderr: String,
    code: u8,
}

impl Reply {
    fn ok(stderr: String) -> Reply {
        Reply {
            stdout: String::new(),
            stderr,
            code: 0,
        }
    }

    fn error(message: impl std::fmt::Display) -> Reply {
        Reply {
            stdout: String::new(),
            stderr: format!("raidctl: error: {message}\n"),
            code: 1,
        }
    }
}

/// A path as the client meant it: relative to its working folder.
fn client_path(cwd: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    }
}

impl Live {
    /// The live state of `array`, served at `uri`; hot spares take over failed members at
    /// once (a background rebuild whose progress `status` shows).
    pub fn new(
        array: Arc<Array>,
        uri: String,
        stop: Arc<AtomicBool>,
        rate: Option<u64>,
    ) -> Arc<Live> {
        let live = Arc::new(Live {
            array: array.clone(),
            uri,
            stop,
            cancel: Arc::new(AtomicBool::new(false)),
            operation: Mutex::new(None),
            background: Mutex::new(Vec::new()),
            auto: Mutex::new(None),
        });
        let watcher = Arc::downgrade(&live);
        let progress: Arc<dyn Fn(&raidkit::array::Progress) + Send + Sync> =
            Arc::new(move |p: &raidkit::array::Progress| {
                if let Some(live) = watcher.upgrade() {
                    live.note("rebuild", p.done, p.total);
                }
            });
        let options = RebuildOptions {
            rate,
            ..RebuildOptions::default()
        };
        let auto = array.start_auto_rebuild(options, progress);
        *live.auto.lock().unwrap_or_else(|e| e.into_inner()) = Some(auto);
        live
    }

    /// Records the background operation's progress.
    fn note(&self, what: &str, done: u64, total: u64) {
        let mut op = self.operation.lock().unwrap_or_else(|e| e.into_inner());
        match op.as_ref() {
            Some(o) if o.what == what && o.total == total => {
                o.done.store(done, Ordering::Relaxed);
            }
            _ => {
                *op = Some(Arc::new(Operation {
                    what: what.to_string(),
                    done: AtomicU64::new(done),
                    total,
                    started: Instant::now(),
                }));
            }
        }
        if done >= total {
            *op = None;
        }
    }

    /// Stops the background work (a rebuild or scrub stops at its next step, with its
    /// position recorded) and waits for it.
    pub fn finish(&self) {
        self.cancel.store(true, Ordering::Release);
        if let Some(auto) = self.auto.lock().unwrap_or_else(|e| e.into_inner()).take() {
            auto.stop();
        }
        for h in self
            .background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = h.join();
        }
    }

    fn member_name(&self, cwd: &Path, path: &Path) -> String {
        let wanted = client_path(cwd, path);
        let canonical = std::fs::canonicalize(&wanted).ok();
        self.array
            .status()
            .members
            .iter()
            .map(|m| m.name.clone())
            .find(|name| {
                canonical.is_some()
                    && std::fs::canonicalize(name).ok().as_ref() == canonical.as_ref()
            })
            .unwrap_or_else(|| wanted.display().to_string())
    }

    /// The operation line(s) of `status`.
    fn operation_json(&self) -> Value {
        let op = self.operation.lock().unwrap_or_else(|e| e.into_inner());
        op.as_ref().map_or(Value::Null, |o| {
            let done = o.done.load(Ordering::Relaxed);
            let secs = o.started.elapsed().as_secs_f64().max(1e-3);
            let rate = done as f64 / secs;
            let eta = (rate > 0.0).then(|| ((o.total - done.min(o.total)) as f64 / rate).ceil());
            json!({"kind": o.what, "done": done, "total": o.total,
                   "rate": rate.round(), "eta_seconds": eta})
        })
    }

    fn status(&self, json_out: bool) -> Reply {
        let status = self.array.status();
        let code = match status.state {
            ArrayState::Clean => 0,
            ArrayState::Degraded => 3,
            ArrayState::Failed => 4,
        };
        let op = self.operation_json();
        let stdout = if json_out {
            let mut value = crate::report::status_json(&status);
            value["served_at"] = json!(self.uri);
            value["operation"] = op;
            format!(
                "{}\n",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            )
        } else {
            let mut text = crate::report::status_text(&status);
            text.push_str(&format!("\n  served at : {}\n", self.uri));
            if !op.is_null() {
                text.push_str(&format!(
                    "  running : {} {} of {} MiB ({:.0}%), {} MiB/s, ETA {}\n",
                    op["kind"].as_str().unwrap_or(""),
                    op["done"].as_u64().unwrap_or(0) >> 20,
                    op["total"].as_u64().unwrap_or(0) >> 20,
                    100.0 * op["done"].as_f64().unwrap_or(0.0)
                        / op["total"].as_f64().unwrap_or(1.0).max(1.0),
                    op["rate"].as_f64().unwrap_or(0.0) as u64 >> 20,
                    op["eta_seconds"]
                        .as_f64()
                        .map_or("-".to_string(), |s| format!("{s:.0}s"))
                ));
            }
            text
        };
        Reply {
            stdout,
            stderr: String::new(),
            code,
        }
    }

    /// Runs `f` in the background; the answer says it started.
    fn background(
        self: &Arc<Live>,
        what: &str,
        f: impl FnOnce(&Arc<Live>) + Send + 'static,
    ) -> Reply {
        let busy = self
            .operation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|o| o.what.clone());
        if let Some(busy) = busy {
            return Reply::error(format!(
                "a {busy} is running on the served array; wait for it (raidctl status shows it)"
            ));
        }
        self.note(what, 0, u64::MAX);
        let live = self.clone();
        let handle = std::thread::spawn(move || f(&live));
        self.background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(handle);
        Reply::ok(format!(
            "raidctl: {what} started in the background of the server; raidctl status shows its progress\n"
        ))
    }

    /// Runs one command line on the live array.
    fn run(self: &Arc<Live>, argv: Vec<String>, cwd: &Path) -> Reply {
        let cli = match Cli::try_parse_from(argv) {
            Ok(cli) => cli,
            Err(e) => return Reply::error(crate::one_line(&e.to_string())),
        };
        let array = &self.array;
        let served = || {
            Reply::error(format!(
                "the array is served by raidctl serve at {}: use it through NBD, or stop the server first (raidctl stop MEMBERS)",
                self.uri
            ))
        };
        match cli.command {
            Command::Status(args) => self.status(args.json),
            Command::Fail(args) => {
                let name = self.member_name(cwd, &args.member);
                if !args.members.force
                    && let Err(e) = array.check_fail(&name)
                {
                    return Reply::error(format!("{e}; --force to fail it anyway"));
                }
                // Whether a spare waits, asked before the fail: the automatic rebuild
                // may take it (and even finish) before the answer is written.
                let spare_waits = array
                    .status()
                    .members
                    .iter()
                    .any(|m| m.state == raidkit::array::MemberState::Spare);
                match array.fail_member(&name) {
                    Ok(()) => Reply::ok(format!(
                        "raidctl: {name} marked faulty; the array is {}{}\n",
                        array.status().state.name(),
                        if spare_waits || array.needs_rebuild() {
                            "; a hot spare takes over in the background"
                        } else {
                            ""
                        }
                    )),
                    Err(e) => Reply::error(e),
                }
            }
            Command::Add(args) => {
                let path = client_path(cwd, &args.spare);
                let disk = match raidkit::array::open_members(std::slice::from_ref(&path)) {
                    Ok(mut d) => d.remove(0),
                    Err(e) => return Reply::error(e),
                };
                match array.add_spare(disk, args.members.force) {
                    Ok(()) => Reply::ok(format!("raidctl: {} added as a spare\n", path.display())),
                    Err(e) => Reply::error(e),
                }
            }
            Command::Remove(args) => {
                let name = self.member_name(cwd, &args.member);
                match array.remove_member(&name) {
                    Ok(()) => Reply::ok(format!("raidctl: {name} removed\n")),
                    Err(e) => Reply::error(e),
                }
            }
            Command::Rebuild(_) => {
                if array.needs_rebuild() {
                    Reply::ok(
                        "raidctl: the server rebuilds onto hot spares by itself; raidctl status shows its progress\n"
                            .to_string(),
                    )
                } else {
                    Reply::ok("raidctl: nothing to rebuild (add a hot spare for a role that lost its member)\n".to_string())
                }
            }
            Command::Scrub(args) => {
                let options = ScrubOptions {
                    repair: args.repair,
                    rate: args.rate.map(|r| r as u64),
                    restart: args.restart,
                    ..ScrubOptions::default()
                };
                let what = if args.repair { "scrub+repair" } else { "scrub" };
                self.background(what, move |live| {
                    let total = live.array.regions().data_size;
                    let result = live.array.scrub(options, &live.cancel, &|p| {
                        live.note(what, p.done, total)
                    });
                    live.note(what, total, total);
                    match result {
                        Ok(r) => log::warn!(
                            "{what} finished: {} damaged blocks found, {} repaired, {} unrecoverable",
                            r.damaged.len(),
                            r.damaged.iter().filter(|d| d.repaired).count(),
                            r.unrecoverable.len()
                        ),
                        Err(e) => log::error!("{what}: {e}"),
                    }
                })
            }
            Command::ReAdd(args) => {
                let name = self.member_name(cwd, &args.member);
                let never = AtomicBool::new(false);
                match array.re_add(&name, &RebuildOptions::default(), &never, &|_| {}) {
                    Ok(r) => Reply::ok(format!(
                        "raidctl: {} re-added to role {}: {} resync, {} bytes\n",
                        r.member,
                        r.role,
                        r.kind.name(),
                        r.bytes
                    )),
                    Err(e) => Reply::error(e),
                }
            }
            Command::Replace(args) => {
                let old = self.member_name(cwd, &args.old);
                let new = client_path(cwd, &args.new);
                let disk = match raidkit::array::open_members(std::slice::from_ref(&new)) {
                    Ok(mut d) => d.remove(0),
                    Err(e) => return Reply::error(e),
                };
                let force = args.members.force;
                let options = RebuildOptions {
                    rate: args.rate.rate().map(|r| r as u64),
                    ..RebuildOptions::default()
                };
                self.background("replace", move |live| {
                    let result =
                        live.array
                            .replace(&old, disk, force, &options, &live.cancel, &|p| {
                                live.note("replace", p.done, p.total)
                            });
                    live.note("replace", 1, 1);
                    match result {
                        Ok(r) => log::warn!(
                            "replaced {old} with {}: {} MiB, {} bytes lost",
                            r.member,
                            r.bytes >> 20,
                            r.lost.iter().map(|l| l.len).sum::<u64>()
                        ),
                        Err(e) => log::error!("replace {old}: {e}"),
                    }
                })
            }
            Command::Stop(_) => {
                self.stop.store(true, Ordering::Release);
                Reply::ok(format!("raidctl: the server at {} is stopping\n", self.uri))
            }
            Command::Write(_)
            | Command::Read(_)
            | Command::Create(_)
            | Command::Resync(_)
            | Command::Serve(_) => served(),
            _ => Reply::error("this command does not act on a served array"),
        }
    }
}

/// Answers control connections until `stop`.
pub fn serve_control(listener: UnixListener, live: Arc<Live>, stop: Arc<AtomicBool>) {
    if let Err(e) = listener.set_nonblocking(true) {
        log::error!("control socket: {e}");
        return;
    }
    let mut answering: Vec<std::thread::JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) && !live.stop.load(Ordering::Relaxed) {
        answering.retain(|h| !h.is_finished());
        match listener.accept() {
            Ok((stream, _)) => {
                let live = live.clone();
                let stop = stop.clone();
                answering.push(std::thread::spawn(move || {
                    if let Err(e) = answer(stream, &live, &stop) {
                        log::info!("control connection: {e}");
                    }
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                log::error!("control socket: {e}");
                break;
            }
        }
    }
    // Streams (monitor) see the stop within a moment; nothing may hold the array after.
    for h in answering {
        let _ = h.join();
    }
}

fn answer(stream: UnixStream, live: &Arc<Live>, stop: &AtomicBool) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?.take(1 << 20));
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let request: Value = serde_json::from_str(&line)?;
    let argv: Vec<String> = request["argv"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let cwd = PathBuf::from(request["cwd"].as_str().unwrap_or("/"));
    let mut out = stream;
    if argv.get(1).map(String::as_str) == Some("monitor") {
        writeln!(out, "{}", json!({"stream": true}))?;
        let events = live.array.events();
        let uuid = raidkit::format::uuid_string(&live.array.uuid());
        loop {
            if stop.load(Ordering::Relaxed) || live.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            match events.recv_timeout(Duration::from_millis(200)) {
                Ok(event) => {
                    let mut value = crate::monitor::event_json(&event);
                    value["uuid"] = json!(uuid);
                    value["time"] = json!(crate::report::utc(
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs())
                    ));
                    writeln!(out, "{value}")?;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => return Ok(()),
            }
        }
    }
    let reply = live.run(argv, &cwd);
    writeln!(
        out,
        "{}",
        json!({"stdout": reply.stdout, "stderr": reply.stderr, "code": reply.code})
    )?;
    Ok(())
}
