//! The CPU quota of this process's cgroup — a Kubernetes CPU limit on the runner Pod, `docker
//! --cpus` — and the CPU time the cgroup has used: what `cpu_idle.rs` needs to tell that the
//! dump tool and the encoders have used up their share although the host's cores are idle.
//!
//! Read from the cgroup filesystem under `/sys/fs/cgroup`, for the cgroup `/proc/self/cgroup`
//! names:
//! - cgroup v2 (`0::<path>`, with `cgroup.controllers` at the root): `cpu.max` (`<quota>
//!   <period>` in µs, or `max <period>` for none) and `usage_usec` in `cpu.stat`;
//! - cgroup v1: `cpu.cfs_quota_us` (−1 for none) and `cpu.cfs_period_us` in the `cpu`
//!   hierarchy, `cpuacct.usage` (ns) in the `cpuacct` one.
//!
//! A container sees its own cgroup as the root of the mount (cgroup namespaces, or Docker's
//! v1 mounts) while `/proc/self/cgroup` may still name the host's path: where that path does
//! not exist under the mount, the mount's root is the cgroup. No quota, or files that cannot
//! be read, give `None`: there is nothing to add to the host's idle share.

use std::path::{Path, PathBuf};

/// What the cgroup may use and has used, at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuotaSample {
    /// The quota in CPUs (quota ÷ period: 1.5 is one and a half cores' worth per period).
    pub cpus: f64,
    /// CPU time the cgroup has used since it was created, µs.
    pub used_micros: u64,
    /// The monotonic clock when it was read, µs.
    pub at_micros: u64,
}

/// The idle share (0.0–1.0) of the quota between two samples of the same cgroup: the part of
/// `cpus × elapsed` not used. `None` when no time passed or the quota changed between them.
pub fn idle_share(earlier: &QuotaSample, later: &QuotaSample) -> Option<f64> {
    let elapsed = later.at_micros.checked_sub(earlier.at_micros)?;
    if elapsed == 0 || earlier.cpus != later.cpus || later.cpus <= 0.0 {
        return None;
    }
    let used = later.used_micros.saturating_sub(earlier.used_micros);
    #[allow(clippy::cast_precision_loss)] // microseconds of one window
    let share = 1.0 - used as f64 / (later.cpus * elapsed as f64);
    Some(share.clamp(0.0, 1.0))
}

/// This process's quota and usage now; `None` without a quota.
pub fn sample() -> Option<QuotaSample> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let at_micros = monotonic_micros();
    read(Path::new("/sys/fs/cgroup"), &own, at_micros)
}

fn monotonic_micros() -> u64 {
    use rustix::time::{ClockId, clock_gettime};
    super::cpu::nanos(clock_gettime(ClockId::Monotonic)) / 1000
}

/// The quota and usage of the cgroup that `own` (the text of `/proc/self/cgroup`) names, under
/// the cgroup filesystem mounted at `root`.
pub(super) fn read(root: &Path, own: &str, at_micros: u64) -> Option<QuotaSample> {
    if root.join("cgroup.controllers").is_file() {
        let path = own.lines().find_map(|line| line.strip_prefix("0::"))?;
        return read_v2(&cgroup_dir(root, path), at_micros);
    }
    read_v1(root, own, at_micros)
}

/// `mount/path` when that directory exists, else `mount` (a container's own cgroup).
fn cgroup_dir(mount: &Path, path: &str) -> PathBuf {
    let nested = mount.join(path.trim_start_matches('/'));
    if nested.is_dir() {
        nested
    } else {
        mount.to_path_buf()
    }
}

fn read_v2(dir: &Path, at_micros: u64) -> Option<QuotaSample> {
    let max = std::fs::read_to_string(dir.join("cpu.max")).ok()?;
    let mut fields = max.split_whitespace();
    let (quota, period) = (fields.next()?, fields.next()?);
    let cpus = quota_cpus(quota.parse().ok()?, period.parse().ok()?)?;
    let stat = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
    let used_micros = stat
        .lines()
        .find_map(|line| line.strip_prefix("usage_usec "))?
        .trim()
        .parse()
        .ok()?;
    Some(QuotaSample {
        cpus,
        used_micros,
        at_micros,
    })
}

fn read_v1(root: &Path, own: &str, at_micros: u64) -> Option<QuotaSample> {
    // Lines are `<id>:<controllers>:<path>`, e.g. `4:cpu,cpuacct:/kubepods/pod1/c2`.
    let hierarchy = |controller: &str| {
        own.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|name| name == controller)
                .then(|| v1_mount(root, controllers, controller))
                .map(|mount| cgroup_dir(&mount, path))
        })
    };
    let cpu = hierarchy("cpu")?;
    let quota: i64 = read_number(&cpu.join("cpu.cfs_quota_us"))?;
    let period: i64 = read_number(&cpu.join("cpu.cfs_period_us"))?;
    let cpus = quota_cpus(u64::try_from(quota).ok()?, u64::try_from(period).ok()?)?;
    let usage_nanos: u64 = read_number(&hierarchy("cpuacct")?.join("cpuacct.usage"))?;
    Some(QuotaSample {
        cpus,
        used_micros: usage_nanos / 1000,
        at_micros,
    })
}

/// Where a v1 hierarchy is mounted: `root/cpu,cpuacct` for co-mounted controllers (with
/// `root/cpu` as a link to it on most systems), else `root/<controller>`.
fn v1_mount(root: &Path, controllers: &str, controller: &str) -> PathBuf {
    let joint = root.join(controllers);
    if joint.is_dir() {
        joint
    } else {
        root.join(controller)
    }
}

fn read_number<T: std::str::FromStr>(path: &Path) -> Option<T> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `quota ÷ period` in CPUs; `None` for a zero period or quota (no quota is −1 or `max`,
/// which do not parse as unsigned numbers).
fn quota_cpus(quota: u64, period: u64) -> Option<f64> {
    if quota == 0 || period == 0 {
        return None;
    }
    #[allow(clippy::cast_precision_loss)] // microseconds of one period
    Some(quota as f64 / period as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn cgroup_v2_quota_and_usage_of_the_named_cgroup() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "cgroup.controllers", "cpu memory\n");
        let pod = root.path().join("kubepods/pod1/c2");
        write(&pod, "cpu.max", "150000 100000\n");
        write(&pod, "cpu.stat", "usage_usec 4200\nuser_usec 4000\n");
        let sample = read(root.path(), "0::/kubepods/pod1/c2\n", 7).unwrap();
        assert_eq!(
            sample,
            QuotaSample {
                cpus: 1.5,
                used_micros: 4200,
                at_micros: 7
            }
        );
        write(&pod, "cpu.max", "max 100000\n");
        assert_eq!(read(root.path(), "0::/kubepods/pod1/c2\n", 7), None);
    }

    #[test]
    fn a_container_reads_its_own_cgroup_at_the_mount_root() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "cgroup.controllers", "cpu\n");
        write(root.path(), "cpu.max", "50000 100000\n");
        write(root.path(), "cpu.stat", "usage_usec 10\n");
        let sample = read(root.path(), "0::/host/path/not/mounted\n", 0).unwrap();
        assert_eq!(sample.cpus, 0.5);
    }

    #[test]
    fn cgroup_v1_with_separate_and_joint_hierarchies() {
        let root = tempfile::tempdir().unwrap();
        let cpu = root.path().join("cpu/docker/abc");
        write(&cpu, "cpu.cfs_quota_us", "200000\n");
        write(&cpu, "cpu.cfs_period_us", "100000\n");
        write(&root.path().join("cpuacct"), "cpuacct.usage", "9000000\n");
        let own = "5:cpuacct:/docker/abc\n4:cpu:/docker/abc\n0::/\n";
        let sample = read(root.path(), own, 1).unwrap();
        assert_eq!((sample.cpus, sample.used_micros), (2.0, 9000));

        let joint = tempfile::tempdir().unwrap();
        let both = joint.path().join("cpu,cpuacct");
        write(&both, "cpu.cfs_quota_us", "-1\n");
        write(&both, "cpu.cfs_period_us", "100000\n");
        write(&both, "cpuacct.usage", "1\n");
        let own = "3:cpu,cpuacct:/\n";
        assert_eq!(read(joint.path(), own, 1), None, "-1 is no quota");
        write(&both, "cpu.cfs_quota_us", "25000\n");
        assert_eq!(read(joint.path(), own, 1).map(|s| s.cpus), Some(0.25));
    }

    #[test]
    fn the_idle_share_is_the_unused_part_of_the_quota() {
        let at = |used_micros, at_micros| QuotaSample {
            cpus: 2.0,
            used_micros,
            at_micros,
        };
        // 2 CPUs for 100 ms: 200 ms allowed, 150 used.
        assert_eq!(idle_share(&at(0, 0), &at(150_000, 100_000)), Some(0.25));
        // Bursting past the quota within a window is not a negative share.
        assert_eq!(idle_share(&at(0, 0), &at(300_000, 100_000)), Some(0.0));
        assert_eq!(idle_share(&at(0, 5), &at(10, 5)), None);
        let changed = QuotaSample {
            cpus: 1.0,
            ..at(10, 10)
        };
        assert_eq!(idle_share(&at(0, 0), &changed), None);
    }
}
