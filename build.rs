//! Sets `cfg(have_isal)` for the workspace's tests and benches when the test kit found and
//! linked ISA-L (its build script says so through `DEP_ISAL_FOUND`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(have_isal)");
    println!("cargo::rerun-if-env-changed=DEP_ISAL_FOUND");
    if std::env::var_os("DEP_ISAL_FOUND").is_some() {
        println!("cargo::rustc-cfg=have_isal");
    }
}
