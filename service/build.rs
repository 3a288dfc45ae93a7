//! Records the git revision the binaries are built from (`COLDAISLE_GIT_REV`), or `unknown`
//! when git or the repository is absent (a source tarball, a packaging chroot).

use std::process::Command;

fn main() {
    let rev = Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| !o.stdout.is_empty());
    let rev = if dirty && rev != "unknown" {
        format!("{rev}-modified")
    } else {
        rev
    };
    println!("cargo:rustc-env=COLDAISLE_GIT_REV={rev}");
    // Rebuild when HEAD moves (a commit, a checkout); not on every edit of the tree.
    for path in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-env-changed=COLDAISLE_GIT_REV");
}
