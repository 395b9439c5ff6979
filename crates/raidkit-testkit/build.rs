//! Links Debian's ISA-L (`libisal-dev`) into the test kit (and so into the workspace's
//! tests and benches) when it is installed, so parity can be cross-checked and compared
//! against it; sets `cfg(have_isal)` here and, through `DEP_ISAL_FOUND`, in the packages
//! that depend on the test kit (their build scripts read it).
//! `.ci/run` installs it; without it, the ISA-L tests print a skip line and the bench
//! leaves ISA-L out.

use std::path::Path;

const CANDIDATES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/libisal.so",
    "/usr/lib/aarch64-linux-gnu/libisal.so",
    "/usr/lib64/libisal.so",
    "/usr/lib/libisal.so",
    "/usr/local/lib/libisal.so",
];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(have_isal)");
    println!("cargo::rerun-if-env-changed=RAIDKIT_NO_ISAL");
    for path in CANDIDATES {
        println!("cargo::rerun-if-changed={path}");
    }
    if std::env::var_os("RAIDKIT_NO_ISAL").is_some() {
        return;
    }
    if let Some(found) = CANDIDATES.iter().map(Path::new).find(|p| p.exists()) {
        let dir = found.parent().expect("library path has a parent");
        println!("cargo::rustc-link-search=native={}", dir.display());
        println!("cargo::rustc-link-lib=dylib=isal");
        println!("cargo::rustc-cfg=have_isal");
        println!("cargo::metadata=found=1");
    }
}
