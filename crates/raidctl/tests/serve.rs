//! `raidctl serve`, tested with NBD clients nobody here wrote (libnbd's `nbdinfo` and
//! `nbdcopy`, QEMU's `qemu-img` and `qemu-io`) and with a raw socket for the clients that
//! misbehave. The tools are Debian packages `.ci/run` installs; outside CI a test whose
//! tool is missing is skipped, saying why.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RAIDCTL: &str = env!("CARGO_BIN_EXE_raidctl");

fn run(args: &[&str]) -> std::process::Output {
    Command::new(RAIDCTL)
        .args(args)
        .output()
        .expect("run raidctl")
}

/// Whether `tool` runs; in CI a missing tool fails the test, elsewhere it is skipped.
fn have(tool: &str, test: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: {tool} is required in CI (.ci/run installs it)"
        );
        eprintln!("SKIP {test}: {tool} is not installed");
    }
    found
}

struct Served {
    child: Option<Child>,
    size: u64,
    socket: PathBuf,
    uri: String,
    members: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Served {
    /// A RAID-6 over four 32 MiB files, served on a Unix socket in its folder.
    fn start(extra: &[&str]) -> Served {
        Served::start_sized(extra, "32M")
    }

    /// The same with members of `size`.
    fn start_sized(extra: &[&str], size: &str) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<String> = (0..4)
            .map(|i| dir.path().join(format!("m{i}.img")).display().to_string())
            .collect();
        let mut create = vec![
            "create", "--level", "6", "--size", size, "--chunk", "64K", "--name", "disk",
        ];
        create.extend(members.iter().map(|s| s.as_str()));
        assert!(run(&create).status.success());
        let mut status = vec!["status", "--json"];
        status.extend(members.iter().map(|s| s.as_str()));
        let status: serde_json::Value = serde_json::from_slice(&run(&status).stdout).unwrap();
        let size = status["size"].as_u64().unwrap();
        let socket = dir.path().join("disk.sock");
        let tcp_port = extra
            .iter()
            .position(|a| *a == "--listen")
            .and_then(|i| extra.get(i + 1))
            .map(|p| p.parse::<u16>().expect("a bare port"));
        let mut args = vec!["serve".to_string()];
        if tcp_port.is_none() {
            args.push("--unix".to_string());
            args.push(socket.display().to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(members.iter().cloned());
        let child = Command::new(RAIDCTL)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until("the server did not start", || match tcp_port {
            Some(port) => std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            None => socket.exists(),
        });
        let uri = format!("nbd+unix:///disk?socket={}", socket.display());
        Served {
            child: Some(child),
            size,
            socket,
            uri,
            members,
            _dir: dir,
        }
    }

    /// Stops the server with SIGINT; its exit status and standard error.
    fn stop(&mut self) -> (std::process::ExitStatus, String) {
        let child = self.child.take().expect("running");
        // SAFETY: kill has no memory-safety preconditions; the pid is our live child's.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let out = child.wait_with_output().unwrap();
        (out.status, String::from_utf8_lossy(&out.stderr).to_string())
    }

    /// Stops the server with SIGINT; it must exit 0.
    fn stop_ok(&mut self) {
        let (status, stderr) = self.stop();
        assert!(status.success(), "{stderr}");
    }

    /// Waits for a server told to stop (by `raidctl stop`) to exit.
    fn stop_waited(&mut self) -> (std::process::ExitStatus, String) {
        let child = self.child.take().expect("running");
        let out = child.wait_with_output().unwrap();
        (out.status, String::from_utf8_lossy(&out.stderr).to_string())
    }

    /// A blank (sparse) disk file of `size` bytes in the folder, by path.
    fn blank(&self, name: &str, size: u64) -> String {
        let path = self.path(name);
        std::fs::File::create(&path).unwrap().set_len(size).unwrap();
        path.display().to_string()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.socket.parent().unwrap().join(name)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// fio's output: it must have run without an error (`err= 0`, exit 0).
fn fio_ok(out: &std::process::Output, what: &str) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("err= 0"),
        "fio {what}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `ready` every 20 ms; fails the test, saying `what`, after 10 s.
fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The export as a file (nbdfuse) and that file as a block device (a loop device).
struct Attached {
    nbdfuse: Child,
    fuse: PathBuf,
    device: String,
}

impl Attached {
    fn new(served: &Served) -> Attached {
        let fuse = served.path("fuse");
        std::fs::create_dir_all(&fuse).unwrap();
        let nbdfuse = Command::new("nbdfuse")
            .arg(&fuse)
            .arg(&served.uri)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let file = fuse.join("nbd");
        wait_until("nbdfuse did not start", || file.exists());
        let out = tool("losetup", &["-f", "--show", &file.display().to_string()]);
        let device = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Attached {
            nbdfuse,
            fuse,
            device,
        }
    }

    /// Detaches the loop device and unmounts nbdfuse (lazily: also when the server is
    /// gone).
    fn detach(mut self) {
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg("-z")
            .arg(&self.fuse)
            .status();
        let _ = self.nbdfuse.kill();
        let _ = self.nbdfuse.wait();
    }
}

fn tool(program: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Real clients: nbdinfo sees the size, block sizes and flags; qemu-img writes an image
/// and compares it; nbdcopy copies it back; qemu-io does unaligned writes, write-zeroes,
/// discard and flush, two at once; after a stop the members hold what the clients wrote.
#[test]
fn real_clients_read_and_write_the_export() {
    let test = "real_clients_read_and_write_the_export";
    if !(have("nbdinfo", test) && have("qemu-img", test) && have("qemu-io", test)) {
        return;
    }
    let mut served = Served::start(&[]);
    let info = tool("nbdinfo", &["--json", &served.uri]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let export = &info["exports"][0];
    assert_eq!(export["export-size"], served.size, "{info}");
    assert_eq!(export["block_size_minimum"], 512);
    assert_eq!(export["block_size_maximum"], 32 << 20);
    for flag in [
        "can_flush",
        "can_fua",
        "can_trim",
        "can_zero",
        "can_multi_conn",
    ] {
        assert_eq!(export[flag], true, "{flag}: {info}");
    }
    assert_eq!(export["is_read_only"], false);

    let image = served.path("image.raw");
    let data = noise(1, 20 << 20);
    std::fs::write(&image, &data).unwrap();
    let image_s = image.display().to_string();
    tool(
        "qemu-img",
        &[
            "convert",
            "-n",
            "-f",
            "raw",
            "-O",
            "raw",
            &image_s,
            &served.uri,
        ],
    );
    tool(
        "qemu-img",
        &["compare", "-f", "raw", "-F", "raw", &image_s, &served.uri],
    );
    let mut expected = data.clone();
    expected.resize(served.size as usize, 0);
    // Two clients at once, each on its own range: an unaligned write, write-zeroes and a
    // discard, then flush.
    let a = Command::new("qemu-io")
        .args([
            "-f",
            "raw",
            "-c",
            "write -P 0xab 1000 3000",
            "-c",
            "write -z 1M 1M",
            "-c",
            "flush",
            &served.uri,
        ])
        .output()
        .unwrap();
    let b = Command::new("qemu-io")
        .args([
            "-f",
            "raw",
            "-c",
            "discard 4M 1M",
            "-c",
            "write -P 0x5c 40M 2M",
            "-c",
            "flush",
            &served.uri,
        ])
        .output()
        .unwrap();
    assert!(a.status.success() && b.status.success());
    expected[1000..4000].fill(0xab);
    expected[1 << 20..2 << 20].fill(0);
    expected[4 << 20..5 << 20].fill(0);
    expected[40 << 20..42 << 20].fill(0x5c);
    if have("nbdcopy", test) {
        // Into the export (over what qemu-img wrote) ...
        let other = served.path("other.raw");
        let second = noise(2, 8 << 20);
        std::fs::write(&other, &second).unwrap();
        tool("nbdcopy", &[&other.display().to_string(), &served.uri]);
        expected[..8 << 20].copy_from_slice(&second);
        // ... and back out.
        let back = served.path("back.raw");
        tool("nbdcopy", &[&served.uri, &back.display().to_string()]);
        assert!(
            std::fs::read(&back).unwrap() == expected,
            "nbdcopy read back"
        );
    }
    // While it is served the array has its owner: a direct write is refused, naming the
    // server.
    let mut write = vec!["write", "--input", image_s.as_str()];
    write.extend(served.members.iter().map(|s| s.as_str()));
    let refused = run(&write);
    assert_eq!(refused.status.code(), Some(1));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("served by raidctl serve") && why.contains(&served.uri),
        "{why}"
    );
    let (status, stderr) = served.stop();
    assert!(status.success() && stderr.contains("stopping"), "{stderr}");
    assert!(!served.socket.exists(), "the socket is removed");
    let mut read = vec!["read"];
    read.extend(served.members.iter().map(|s| s.as_str()));
    let out = run(&read);
    assert!(out.status.success());
    assert!(
        out.stdout == expected,
        "the members hold what the clients wrote"
    );
}

/// A raw client: the handshake by hand, then requests.
struct Raw {
    s: UnixStream,
}

impl Raw {
    /// Connects and negotiates `NBD_OPT_GO` (asking for block sizes when `sizes`).
    fn go(socket: &Path, sizes: bool) -> Raw {
        let mut s = UnixStream::connect(socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut greeting = [0u8; 18];
        s.read_exact(&mut greeting).unwrap();
        assert_eq!(&greeting[..16], b"NBDMAGICIHAVEOPT");
        s.write_all(&3u32.to_be_bytes()).unwrap();
        let mut data = 0u32.to_be_bytes().to_vec();
        let infos: &[u16] = if sizes { &[3] } else { &[] };
        data.extend_from_slice(&(infos.len() as u16).to_be_bytes());
        for i in infos {
            data.extend_from_slice(&i.to_be_bytes());
        }
        let mut opt = b"IHAVEOPT".to_vec();
        opt.extend_from_slice(&7u32.to_be_bytes());
        opt.extend_from_slice(&(data.len() as u32).to_be_bytes());
        opt.extend_from_slice(&data);
        s.write_all(&opt).unwrap();
        loop {
            let mut h = [0u8; 20];
            s.read_exact(&mut h).unwrap();
            let kind = u32::from_be_bytes(h[12..16].try_into().unwrap());
            let len = u32::from_be_bytes(h[16..20].try_into().unwrap()) as usize;
            let mut skip = vec![0u8; len];
            s.read_exact(&mut skip).unwrap();
            if kind == 1 {
                return Raw { s };
            }
            assert_eq!(kind, 3, "info replies, then ack");
        }
    }

    /// Sends a request (with `payload` for writes) and reads the simple reply's error.
    fn request(&mut self, kind: u16, offset: u64, length: u32, payload: &[u8]) -> u32 {
        let r = raidkit_nbd::proto::Request {
            flags: 0,
            kind,
            cookie: 77,
            offset,
            length,
        };
        self.s
            .write_all(&raidkit_nbd::proto::encode_request(&r))
            .unwrap();
        self.s.write_all(payload).unwrap();
        let mut reply = [0u8; 16];
        self.s.read_exact(&mut reply).unwrap();
        assert_eq!(&reply[..4], &[0x67, 0x44, 0x66, 0x98]);
        assert_eq!(u64::from_be_bytes(reply[8..].try_into().unwrap()), 77);
        let error = u32::from_be_bytes(reply[4..8].try_into().unwrap());
        if error == 0 && kind == 0 {
            let mut data = vec![0u8; length as usize];
            self.s.read_exact(&mut data).unwrap();
        }
        error
    }
}

/// Clients that misbehave get protocol errors, never a crash or a hang: garbage, requests
/// past the end, over the maximum payload, misaligned against the sizes they asked for,
/// unknown commands, and a client that vanishes in the middle of a write. The server
/// serves the next client as before.
#[test]
fn bad_clients_get_errors_and_the_server_goes_on() {
    let mut served = Served::start(&[]);
    // Garbage instead of the client flags.
    let mut s = UnixStream::connect(&served.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut greeting = [0u8; 18];
    s.read_exact(&mut greeting).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "the server hangs up");

    let size = served.size;
    let mut c = Raw::go(&served.socket, true);
    assert_eq!(
        c.request(0, size - 512, 1024, &[]),
        22,
        "read past the end: EINVAL"
    );
    assert_eq!(
        c.request(1, size, 512, &[0u8; 512]),
        28,
        "write past the end: ENOSPC"
    );
    assert_eq!(
        c.request(0, 0, 33 << 20, &[]),
        75,
        "over the maximum: EOVERFLOW"
    );
    assert_eq!(c.request(0, 100, 512, &[]), 22, "misaligned: EINVAL");
    assert_eq!(c.request(7, 0, 512, &[]), 22, "block status: not offered");
    assert_eq!(c.request(1, 4096, 512, &[7u8; 512]), 0, "a good write");
    assert_eq!(c.request(3, 0, 0, &[]), 0, "flush");
    // A client that did not ask for block sizes may do unaligned I/O.
    let mut loose = Raw::go(&served.socket, false);
    assert_eq!(loose.request(0, 100, 7, &[]), 0);
    // A write header, part of its payload, and gone.
    let mut gone = Raw::go(&served.socket, true);
    let r = raidkit_nbd::proto::Request {
        flags: 0,
        kind: 1,
        cookie: 1,
        offset: 0,
        length: 1 << 20,
    };
    gone.s
        .write_all(&raidkit_nbd::proto::encode_request(&r))
        .unwrap();
    gone.s.write_all(&[1u8; 1000]).unwrap();
    drop(gone);
    // Bad magic in a request ends that connection only.
    let mut bad = Raw::go(&served.socket, true);
    bad.s.write_all(&[0xee; 28]).unwrap();
    let mut rest = Vec::new();
    let _ = bad.s.read_to_end(&mut rest);
    // The others still work.
    assert_eq!(c.request(0, 4096, 512, &[]), 0);
    let mut next = Raw::go(&served.socket, true);
    assert_eq!(next.request(0, 0, 4096, &[]), 0);
    drop((c, loose, next));
    served.stop_ok();
    let mut read = vec!["read", "--offset", "4096", "--length", "512"];
    read.extend(served.members.iter().map(|s| s.as_str()));
    let out = run(&read);
    assert!(out.status.success());
    assert!(
        out.stdout == vec![7u8; 512],
        "the good write is there; the vanished one is not"
    );
}

/// The export as a block device for the time of `work`: nbdfuse makes it a file, a loop
/// device makes that a block device; `fs` ("ext4" or "xfs") is made first when `format`,
/// mounted, `work` runs on the mount point, then it is unmounted and checked read-only
/// (`e2fsck -fn`, `xfs_repair -n`), which must find nothing.
fn with_file_system(served: &Served, fs: &str, format: bool, work: &dyn Fn(&Path)) {
    let attached = Attached::new(served);
    let device = attached.device.clone();
    let dir = served.path("mnt");
    std::fs::create_dir_all(&dir).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if format {
            match fs {
                "xfs" => tool("mkfs.xfs", &["-q", "-f", &device]),
                _ => tool("mkfs.ext4", &["-q", &device]),
            };
        }
        tool("mount", &[&device, &dir.display().to_string()]);
        let inner = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&dir)));
        tool("umount", &[&dir.display().to_string()]);
        if let Err(p) = inner {
            std::panic::resume_unwind(p);
        }
        let check = match fs {
            "xfs" => Command::new("xfs_repair").args(["-n", &device]).output(),
            _ => Command::new("e2fsck").args(["-fn", &device]).output(),
        }
        .unwrap();
        assert!(
            check.status.success(),
            "{fs} check: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }));
    attached.detach();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

/// Whether this run can mount file systems (root, nbdfuse, losetup); skipped otherwise
/// outside CI.
fn can_mount(test: &str, fs_tool: &str) -> bool {
    if !(have("nbdfuse", test) && have("losetup", test) && have(fs_tool, test)) {
        return false;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        assert!(std::env::var_os("CI").is_none(), "{test}: CI runs as root");
        eprintln!("SKIP {test}: not root (loop devices and mount)");
        return false;
    }
    true
}

/// Files of random sizes, named.
fn some_files(seed: u64, count: u64) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let len = 1 + (noise(seed + i, 4)[0] as usize * 997) % 300_000;
            (format!("f{seed}-{i}.bin"), noise(seed * 1000 + i, len))
        })
        .collect()
}

/// Starts the server again on the same members (the socket file is replaced).
fn restart(served: &mut Served) {
    let mut args = vec!["serve".to_string(), "--unix".to_string()];
    args.push(served.socket.display().to_string());
    args.extend(served.members.iter().cloned());
    let _ = std::fs::remove_file(&served.socket);
    served.child = Some(
        Command::new(RAIDCTL)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_until("the restarted server did not start", || {
        served.socket.exists()
    });
}

/// ext4 on the export: made, mounted, written with files of random sizes, unmounted and
/// checked; after the server stops and starts again on the same members, a new
/// connection finds every file with its bytes.
#[test]
fn ext4_on_the_export_through_nbdfuse() {
    if !can_mount("ext4_on_the_export_through_nbdfuse", "mkfs.ext4") {
        return;
    }
    let mut served = Served::start(&[]);
    let files = some_files(1, 40);
    with_file_system(&served, "ext4", true, &|dir| {
        for (name, data) in &files {
            std::fs::write(dir.join(name), data).unwrap();
        }
    });
    served.stop_ok();
    restart(&mut served);
    with_file_system(&served, "ext4", false, &|dir| {
        for (name, data) in &files {
            assert!(std::fs::read(dir.join(name)).unwrap() == *data, "{name}");
        }
    });
    served.stop_ok();
}

/// XFS and ext4 while a member fails and a hot spare is rebuilt underneath, the file
/// system mounted and being written: the check is clean, and after a restart every file
/// written before, during and after the rebuild has its bytes.
#[test]
fn file_systems_survive_a_rebuild_while_mounted() {
    let test = "file_systems_survive_a_rebuild_while_mounted";
    for (fs, tool_name) in [("xfs", "mkfs.xfs"), ("ext4", "mkfs.ext4")] {
        if !can_mount(test, tool_name) {
            return;
        }
        // XFS needs 300 MB at least.
        let mut served = Served::start_sized(&[], "200M");
        let members = served.members.clone();
        let spare = served.blank("spare.img", 200 << 20);
        let before = some_files(10, 120);
        let during = some_files(20, 120);
        let after = some_files(30, 60);
        with_file_system(&served, fs, true, &|dir| {
            for (name, data) in &before {
                std::fs::write(dir.join(name), data).unwrap();
            }
            let out = run(&with_members(&["add", "--spare", &spare], &members));
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let out = run(&with_members(&["fail", "--member", &members[2]], &members));
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            for (name, data) in &during {
                std::fs::write(dir.join(name), data).unwrap();
            }
            wait_status(&members, &|v| v["state"] == "clean");
            for (name, data) in &after {
                std::fs::write(dir.join(name), data).unwrap();
            }
        });
        let (status, stderr) = served.stop();
        assert!(status.success(), "{fs}: {stderr}");
        // The spare now holds role 2: serve it with the spare, without the failed member.
        served.members[2] = spare.clone();
        restart(&mut served);
        with_file_system(&served, fs, false, &|dir| {
            for (name, data) in before.iter().chain(&during).chain(&after) {
                assert!(
                    std::fs::read(dir.join(name)).unwrap() == *data,
                    "{fs}: {name}"
                );
            }
        });
        let (status, stderr) = served.stop();
        assert!(status.success(), "{fs}: {stderr}");
    }
}

fn with_members<'a>(prefix: &[&'a str], members: &'a [String]) -> Vec<&'a str> {
    let mut v = prefix.to_vec();
    v.extend(members.iter().map(|s| s.as_str()));
    v
}

/// Waits until `raidctl status --json` of the served array satisfies `done`.
fn wait_status(members: &[String], done: &dyn Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let out = run(&with_members(&["status", "--json"], members));
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if done(&value) {
            return value;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "status never got there: {value}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// While served, the usual commands given the same members act on the live array through
/// the server's control socket: status (with the server's address and the running
/// operation), add, fail (the spare takes over in the background), a background scrub,
/// monitor, stop; commands that need the members are refused naming the server.
#[test]
fn a_served_array_is_managed_through_its_control_socket() {
    let mut served = Served::start(&[]);
    let members = served.members.clone();
    let spare = served.blank("spare.img", 32 << 20);
    let status = wait_status(&members, &|v| v["served_at"].is_string());
    assert_eq!(status["served_at"], served.uri);
    let mut monitor = Command::new(RAIDCTL)
        .args(with_members(&["monitor"], &members))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = run(&with_members(&["add", "--spare", &spare], &members));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&with_members(&["fail", "--member", &members[1]], &members));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("takes over"), "{stderr}");
    let status = wait_status(&members, &|v| v["state"] == "clean");
    assert!(
        status["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["path"].as_str().unwrap().ends_with("spare.img") && m["role"] == 1),
        "{status}"
    );
    // Needs the members themselves: refused, naming the server.
    let out = run(&with_members(&["read", "--length", "4096"], &members));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&served.uri),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&with_members(&["scrub", "--repair"], &members));
    assert!(String::from_utf8_lossy(&out.stderr).contains("background"));
    wait_status(&members, &|v| v["operation"].is_null());
    // A hot replace runs in the server's background too.
    let new = served.blank("new.img", 32 << 20);
    let out = run(&with_members(
        &["replace", "--old", &members[0], "--new", &new],
        &members,
    ));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("background"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = wait_status(&members, &|v| {
        v["operation"].is_null()
            && v["members"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["path"].as_str().unwrap().ends_with("new.img") && m["role"] == 0)
    });
    assert_eq!(status["state"], "clean", "{status}");
    let out = run(&with_members(&["stop"], &members));
    assert!(out.status.success());
    let (status, stderr) = served.stop_waited();
    assert!(status.success(), "{stderr}");
    let _ = monitor.kill();
    let out = monitor.wait_with_output().unwrap();
    let events = String::from_utf8_lossy(&out.stdout).to_string();
    for kind in [
        "spare_added",
        "member_failed",
        "spare_activated",
        "rebuild_started",
        "rebuild_finished",
        "scrub_finished",
    ] {
        assert!(
            events.contains(&format!("\"event\":\"{kind}\"")),
            "{kind}: {events}"
        );
    }
    // Not served any more: status runs here; the spare holds role 1, the new disk role 0.
    let out = run(&with_members(&["status", "--json"], &{
        let mut all = members[1..].to_vec();
        all.push(spare.clone());
        all.push(new.clone());
        all
    }));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(value["served_at"].is_null());
    assert_eq!(out.status.code(), Some(0), "{value}");
}

/// fio's own NBD engine with `verify=crc32c`: 4 KiB random writes at queue depth 32 and
/// 1 MiB sequential writes at depth 1, each read back and verified by fio.
#[test]
fn fio_verifies_what_it_wrote_at_depth_1_and_32() {
    let test = "fio_verifies_what_it_wrote_at_depth_1_and_32";
    if !have("fio", test) {
        return;
    }
    let mut served = Served::start(&[]);
    for (rw, bs, depth, offset) in [("randwrite", "4k", "32", "0"), ("write", "1M", "1", "24M")] {
        let out = Command::new("fio")
            // fio leaves files in its working folder: the test's own.
            .current_dir(served.path(""))
            .args([
                "--name=verify",
                "--ioengine=nbd",
                &format!("--uri={}", served.uri),
                &format!("--rw={rw}"),
                &format!("--bs={bs}"),
                &format!("--iodepth={depth}"),
                &format!("--offset={offset}"),
                "--size=16M",
                "--verify=crc32c",
                "--do_verify=1",
                "--verify_fatal=1",
                "--verify_state_save=0",
            ])
            .output()
            .unwrap();
        fio_ok(&out, &format!("{rw} {bs} depth {depth}"));
    }
    served.stop_ok();
}

/// Kill -9 the server while a client writes: every write flushed before the kill reads
/// back after a restart on the same members.
#[test]
fn a_killed_server_loses_nothing_that_was_flushed() {
    let test = "a_killed_server_loses_nothing_that_was_flushed";
    if !(have("qemu-io", test) && have("fio", test)) {
        return;
    }
    let mut served = Served::start(&[]);
    let out = Command::new("qemu-io")
        .args([
            "-f",
            "raw",
            "-c",
            "write -P 0x22 0 4M",
            "-c",
            "write -P 0x33 8M 1M",
            "-c",
            "flush",
            &served.uri,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    // Unflushed writes in flight elsewhere when the server dies.
    let mut writer = Command::new("fio")
        // fio leaves files in its working folder: the test's own.
        .current_dir(served.path(""))
        .args([
            "--name=busy",
            "--ioengine=nbd",
            &format!("--uri={}", served.uri),
            "--rw=randwrite",
            "--bs=64k",
            "--iodepth=16",
            "--offset=16M",
            "--size=16M",
            "--time_based",
            "--runtime=30",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let mut child = served.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = writer.kill();
    let _ = writer.wait();
    // Started again (the socket file it left is replaced).
    let mut args = vec!["serve".to_string(), "--unix".to_string()];
    args.push(served.socket.display().to_string());
    args.extend(served.members.iter().cloned());
    let started = Instant::now();
    served.child = Some(
        Command::new(RAIDCTL)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    loop {
        let out = Command::new("qemu-io")
            .args([
                "-f",
                "raw",
                "-c",
                "read -P 0x22 0 4M",
                "-c",
                "read -P 0x33 8M 1M",
            ])
            .arg(&served.uri)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && text.contains("read 4194304/4194304") {
            assert!(!text.contains("Pattern verification failed"), "{text}");
            assert!(text.contains("read 1048576/1048576"), "{text}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the restarted server never served: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    served.stop_ok();
}

/// TCP: `--listen PORT` binds loopback only and serves like the Unix socket; `--socket`
/// reaches the control socket without the members; `--read-only` refuses writes.
#[test]
fn tcp_listen_socket_option_and_read_only() {
    let test = "tcp_listen_socket_option_and_read_only";
    if !(have("nbdinfo", test) && have("qemu-io", test)) {
        return;
    }
    // A free port: bind one, note it, let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut served = Served::start(&["--listen", &port.to_string(), "--read-only"]);
    let uri = format!("nbd://127.0.0.1:{port}/disk");
    let started = Instant::now();
    let info = loop {
        let out = Command::new("nbdinfo")
            .args(["--json", &uri])
            .output()
            .unwrap();
        if out.status.success() {
            break serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no TCP server");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(info["exports"][0]["export-size"], served.size);
    assert_eq!(info["exports"][0]["is_read_only"], true);
    let out = Command::new("qemu-io")
        .args(["-f", "raw", "-c", "write -P 1 0 4k", &uri])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("wrote 4096"),
        "a read-only export took a write: {text}"
    );
    // Bound to loopback only: no other address of this host answers.
    let listening = Command::new("ss").args(["-ltn"]).output();
    if let Ok(out) = listening {
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.contains(&format!(":{port} ")));
        if let Some(line) = line {
            assert!(line.contains("127.0.0.1"), "{line}");
        }
    }
    // The control socket, named directly.
    let uuid = {
        let out = run(&["examine", "--json", &served.members[0]]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["uuid"].as_str().unwrap().to_string()
    };
    let control = runtime_dir().join(format!("raidctl-{uuid}.ctl"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&control).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "only the owner may manage the array");
    let control = control.display().to_string();
    let out = run(&["status", "--json", "--socket", &control]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["served_at"], format!("nbd://127.0.0.1:{port}/disk"));
    let out = run(&["stop", "--socket", &control]);
    assert!(out.status.success());
    let (status, stderr) = served.stop_waited();
    assert!(status.success(), "{stderr}");
    let out = run(&["status", "--socket", &control]);
    assert_eq!(out.status.code(), Some(1), "no server any more");
}

/// Where raidctl puts its sockets for this test process's environment (as cli.md says):
/// `$XDG_RUNTIME_DIR`, else `raidctl-UID` in the temporary folder.
fn runtime_dir() -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| {
            let uid = std::fs::metadata("/proc/self").unwrap().uid();
            std::env::temp_dir().join(format!("raidctl-{uid}"))
        })
}

/// Without `$XDG_RUNTIME_DIR`, the default NBD socket and the control socket live in a
/// folder private to the user (`$TMPDIR/raidctl-UID`, mode 0700), made when missing; a
/// folder of that name that others may enter, or that another user owns, is refused with
/// one line, and the members are left as they were.
#[test]
fn default_sockets_live_in_a_private_folder() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    let private = tmp.join(format!("raidctl-{uid}"));
    let members: Vec<String> = (0..3)
        .map(|i| dir.path().join(format!("m{i}.img")).display().to_string())
        .collect();
    let raidctl = |args: &[&str]| {
        Command::new(RAIDCTL)
            .args(args)
            .args(&members)
            .env_remove("XDG_RUNTIME_DIR")
            .env("TMPDIR", &tmp)
            .output()
            .unwrap()
    };
    assert!(
        raidctl(&["create", "--level", "5", "--size", "8M", "--name", "priv"])
            .status
            .success()
    );
    let before: Vec<Vec<u8>> = members.iter().map(|m| std::fs::read(m).unwrap()).collect();

    // Others may enter the folder: refused, nothing written.
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = raidctl(&["serve"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a private folder"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        std::fs::read_dir(&private).unwrap().next().is_none(),
        "no socket made"
    );
    for (member, bytes) in members.iter().zip(&before) {
        assert!(std::fs::read(member).unwrap() == *bytes, "{member} changed");
    }

    // Missing: made, mode 0700, and both sockets are in it.
    std::fs::remove_dir(&private).unwrap();
    let mut args = vec!["serve".to_string()];
    args.extend(members.iter().cloned());
    let mut child = Command::new(RAIDCTL)
        .args(&args)
        .env_remove("XDG_RUNTIME_DIR")
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = private.join("raidctl-priv.sock");
    wait_until("the server did not start", || socket.exists());
    let meta = std::fs::metadata(&private).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700);
    assert_eq!(meta.uid(), uid);
    let out = raidctl(&["status", "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        value["served_at"],
        format!("nbd+unix:///priv?socket={}", socket.display())
    );
    let controls = std::fs::read_dir(&private)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".ctl")
        })
        .count();
    assert_eq!(controls, 1, "the control socket is in the private folder");
    assert!(raidctl(&["stop"]).status.success());
    assert!(child.wait().unwrap().success());
}

/// fio verifying at queue depth 32 while, underneath, a member fails, a hot spare takes
/// over and another member is hot-replaced: every block fio wrote reads back as written.
#[test]
fn fio_verifies_while_members_fail_and_are_replaced() {
    let test = "fio_verifies_while_members_fail_and_are_replaced";
    if !have("fio", test) {
        return;
    }
    let mut served = Served::start_sized(&[], "64M");
    let members = served.members.clone();
    let spare = served.blank("spare.img", 64 << 20);
    let new = served.blank("new.img", 64 << 20);
    let out = run(&with_members(&["add", "--spare", &spare], &members));
    assert!(out.status.success());
    let mut fio = Command::new("fio")
        // fio leaves files in its working folder: the test's own.
        .current_dir(served.path(""))
        .args([
            "--name=underneath",
            "--ioengine=nbd",
            &format!("--uri={}", served.uri),
            "--rw=randwrite",
            "--bs=16k",
            "--iodepth=32",
            "--size=48M",
            "--loops=12",
            "--verify=crc32c",
            "--do_verify=1",
            "--verify_fatal=1",
            "--verify_state_save=0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = run(&with_members(&["fail", "--member", &members[1]], &members));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_status(&members, &|v| {
        v["state"] == "clean" && v["operation"].is_null()
    });
    let out = run(&with_members(
        &["replace", "--old", &members[3], "--new", &new],
        &members,
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_status(&members, &|v| v["operation"].is_null());
    assert!(
        fio.try_wait().unwrap().is_none(),
        "fio was still writing when the rebuild and the replace ended"
    );
    fio_ok(&fio.wait_with_output().unwrap(), "underneath");
    served.stop_ok();
}

/// QEMU's tools against a served array while a member fails and a hot spare is rebuilt at
/// a slow rate underneath (`serve --rate`): `status` shows the rebuild running with its
/// rate and ETA, and an image `qemu-img` writes during it compares equal afterwards.
#[test]
fn qemu_while_a_slow_rebuild_runs_underneath() {
    let test = "qemu_while_a_slow_rebuild_runs_underneath";
    if !(have("qemu-img", test) && have("qemu-io", test)) {
        return;
    }
    let mut served = Served::start_sized(&["--rate", "16M"], "64M");
    let members = served.members.clone();
    // Written everywhere first (with zeros, as data), so that the data map leaves the
    // rebuild nothing to skip.
    let everywhere = format!("write -P 0 0 {}", served.size);
    tool("qemu-io", &["-f", "raw", "-c", &everywhere, &served.uri]);
    let spare = served.blank("spare.img", 64 << 20);
    let out = run(&with_members(&["add", "--spare", &spare], &members));
    assert!(out.status.success());
    let out = run(&with_members(&["fail", "--member", &members[0]], &members));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let running = wait_status(&members, &|v| {
        v["operation"]["kind"] == "rebuild" && v["operation"]["eta_seconds"].is_number()
    });
    let op = &running["operation"];
    assert!(op["total"].as_u64().unwrap() > 0, "{running}");
    assert!(op["eta_seconds"].as_f64().is_some(), "{running}");
    let text = run(&with_members(&["status"], &members));
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains("running : rebuild") && text.contains("ETA"),
        "{text}"
    );
    let image = served.path("image.raw");
    std::fs::write(&image, noise(9, 24 << 20)).unwrap();
    let image = image.display().to_string();
    tool(
        "qemu-img",
        &[
            "convert",
            "-n",
            "-f",
            "raw",
            "-O",
            "raw",
            &image,
            &served.uri,
        ],
    );
    let during = run(&with_members(&["status", "--json"], &members));
    let during: serde_json::Value = serde_json::from_slice(&during.stdout).unwrap();
    assert_eq!(
        during["operation"]["kind"], "rebuild",
        "the image went in while the rebuild ran: {during}"
    );
    let status = wait_status(&members, &|v| v["state"] == "clean");
    assert!(status["operation"].is_null(), "{status}");
    tool(
        "qemu-img",
        &["compare", "-f", "raw", "-F", "raw", &image, &served.uri],
    );
    served.stop_ok();
}

/// Kill -9 of the server under a mounted ext4 that is being written: the mount is torn
/// down (lazily, as a dead disk leaves it), the server started again; ext4 mounts (its
/// journal replays), every file synced before the kill has its bytes, and `e2fsck -fn`
/// is clean afterwards.
#[test]
fn a_killed_server_under_a_mounted_file_system_loses_nothing_synced() {
    let test = "a_killed_server_under_a_mounted_file_system_loses_nothing_synced";
    if !can_mount(test, "mkfs.ext4") {
        return;
    }
    let mut served = Served::start_sized(&[], "64M");
    let synced = some_files(40, 30);
    let dir = served.path("mnt");
    std::fs::create_dir_all(&dir).unwrap();
    let attached = Attached::new(&served);
    let device = attached.device.clone();
    let dir_s = dir.display().to_string();
    tool("mkfs.ext4", &["-q", &device]);
    tool("mount", &[&device, &dir_s]);
    for (name, data) in &synced {
        let mut f = std::fs::File::create(dir.join(name)).unwrap();
        f.write_all(data).unwrap();
        f.sync_all().unwrap();
    }
    tool("sync", &[]);
    // More writes, not synced, while the server dies.
    let writing = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            for (name, data) in some_files(50, 100) {
                if std::fs::write(dir.join(name), data).is_err() {
                    break;
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let mut child = served.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // The disk is gone: tear the mount down the way one does then.
    let _ = Command::new("umount").args(["-l", &dir_s]).status();
    attached.detach();
    let _ = writing.join();
    restart(&mut served);
    with_file_system(&served, "ext4", false, &|dir| {
        for (name, data) in &synced {
            assert!(std::fs::read(dir.join(name)).unwrap() == *data, "{name}");
        }
    });
    served.stop_ok();
}
