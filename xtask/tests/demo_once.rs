//! `cargo xtask demo --once` end to end: the real control plane, PostgreSQL, S3 server, kubelet
//! stand-in and backup operator process, with `examples/backup/` applied. It must end with the
//! on-demand and the first scheduled backup, the project backup (dump + bucket copy) and the
//! restore succeeded, the project backup holding every uploaded document its globs keep, and
//! the restored database's row counts equal to the source's (the demo counts both and fails
//! otherwise).

use std::process::Command;

#[test]
fn demo_once_backs_up_on_demand_and_on_schedule_and_restores_an_equal_database() {
    let state_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["demo", "--once", "--no-tools", "--timeout-seconds", "240"])
        .arg("--state-dir")
        .arg(state_dir.path())
        .output()
        .unwrap_or_else(|e| panic!("running xtask demo: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "`xtask demo --once` exited with {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    for expected in [
        "on-demand backup:",
        "BackupRequest/shop-before-migration -> backup ",
        "first scheduled backup:",
        "BackupRequest/shop-nightly-",
        "restore shop-restore-check:",
        "target: database shop_restored",
        "every table has the source's row count",
        "project backup (database dump + uploaded documents):",
        "BackupRequest/shop-production-full -> backup ",
        "every uploaded document the globs do not exclude is in the backup",
        "stopped",
    ] {
        assert!(
            stdout.contains(expected),
            "the demo's output lacks {expected:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
    }
    // Sizes and locations come from the runs' status, which the store backs.
    assert!(stdout.contains("location: "), "{stdout}");
    assert!(stdout.contains(" stored ("), "{stdout}");
    // The demo removes its kubeconfig when it stops (its CA is gone).
    assert!(!state_dir.path().join("kubeconfig").exists());
}
