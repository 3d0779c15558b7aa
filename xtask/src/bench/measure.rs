//! Timing child processes for the benchmark: wall time, peak RSS, bytes written, the CPU time
//! the whole machine spent meanwhile, and the CPU shares a backup reports per pipeline stage.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// What one timed child process did.
pub struct Timed {
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
    /// Peak resident set size (VmHWM), KiB.
    pub peak_kib: u64,
    /// Bytes the child wrote to stdout.
    pub written: u64,
    /// The first [`KEPT_STDOUT`] bytes of its stdout (a dump is a gigabyte: not kept whole).
    pub stdout: Vec<u8>,
    /// CPU time every process of the machine spent while it ran (`/proc/stat`): the child, and
    /// what it drives — pg_dump and the database server's backend. Zero where `/proc/stat`
    /// cannot be read.
    pub machine_cpu: Duration,
}

/// CPU time the machine has spent busy since boot (every CPU; not idle, not waiting for I/O,
/// not stolen by the hypervisor),
/// from the first line of `/proc/stat`, in clock ticks of 1/100 s (Linux's `USER_HZ`).
fn machine_busy_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal: busy is user, nice, system, irq and
    // softirq (guest time is already in user; steal is the hypervisor's, not ours).
    let busy = [0, 1, 2, 5, 6]
        .iter()
        .map(|&field| fields.get(field).copied());
    busy.sum()
}

/// How much of a child's stdout is kept (a backup's JSON report fits easily).
const KEPT_STDOUT: usize = 1 << 20;

/// Runs a command to completion, polling its VmHWM every 20 ms; fails if it fails.
pub fn timed(mut command: Command) -> anyhow::Result<Timed> {
    let busy_before = machine_busy_ticks();
    let started = Instant::now();
    let mut child = command.stdout(Stdio::piped()).spawn().context("spawning")?;
    let pid = child.id();
    let mut stdout = child.stdout.take().context("stdout")?;
    let reader = std::thread::spawn(move || -> std::io::Result<(u64, Vec<u8>)> {
        let mut kept = Vec::new();
        let mut buffer = vec![0u8; 256 * 1024];
        let mut written = 0u64;
        loop {
            let read = stdout.read(&mut buffer)?;
            if read == 0 {
                return Ok((written, kept));
            }
            written += read as u64;
            let room = KEPT_STDOUT.saturating_sub(kept.len()).min(read);
            kept.extend_from_slice(&buffer[..room]);
        }
    });
    let mut peak_kib = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        peak_kib = peak_kib.max(vm_hwm_kib(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let machine_cpu = match (busy_before, machine_busy_ticks()) {
        (Some(before), Some(after)) => Duration::from_millis(after.saturating_sub(before) * 10),
        _ => Duration::ZERO,
    };
    let (written, stdout) = match reader.join() {
        Ok(Ok(result)) => result,
        Ok(Err(error)) => bail!("reading the output of {command:?}: {error}"),
        Err(_) => bail!("the output reader of {command:?} panicked"),
    };
    if !status.success() {
        bail!(
            "{command:?} failed: {status}: {}",
            String::from_utf8_lossy(&stdout)
        );
    }
    Ok(Timed {
        elapsed,
        peak_kib,
        written,
        stdout,
        machine_cpu,
    })
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The middle value (the upper one of an even count).
pub fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Megabytes (10⁶ bytes) per second.
pub fn mbps(bytes: u64, duration: Duration) -> f64 {
    bytes as f64 / duration.as_secs_f64().max(0.001) / 1e6
}

/// CPU seconds per pipeline stage, summed over the backups that reported them.
#[derive(Default)]
pub struct StageTotals {
    stages: Vec<(String, f64)>,
    other: f64,
    total: f64,
    runs: usize,
}

impl StageTotals {
    /// Adds the `stageCpu` of one backup's JSON report (a build from before stage accounting
    /// has none: it is skipped).
    pub fn add(&mut self, report: &serde_json::Value) -> anyhow::Result<()> {
        let Some(cpu) = report.get("stageCpu") else {
            return Ok(());
        };
        let number = |value: &serde_json::Value, field: &str| {
            value
                .get(field)
                .and_then(serde_json::Value::as_f64)
                .with_context(|| format!("stageCpu without {field}"))
        };
        for stage in cpu
            .get("stages")
            .and_then(serde_json::Value::as_array)
            .context("stageCpu without stages")?
        {
            let name = stage
                .get("stage")
                .and_then(serde_json::Value::as_str)
                .context("a stage without a name")?;
            let seconds = number(stage, "seconds")?;
            match self.stages.iter_mut().find(|(known, _)| known == name) {
                Some((_, total)) => *total += seconds,
                None => self.stages.push((name.to_owned(), seconds)),
            }
        }
        self.other += number(cpu, "otherSeconds")?;
        self.total += number(cpu, "totalSeconds")?;
        self.runs += 1;
        Ok(())
    }

    /// `CPU x.x ms per raw MB: stage share%, …`, for runs of `raw_bytes` each.
    pub fn summary(&self, raw_bytes: u64) -> String {
        if self.runs == 0 || self.total <= 0.0 {
            return "no stage CPU reported".into();
        }
        let megabytes = raw_bytes as f64 / 1e6 * self.runs as f64;
        let mut shares: Vec<String> = self
            .stages
            .iter()
            .map(|(name, seconds)| format!("{name} {:.0}%", 100.0 * seconds / self.total))
            .collect();
        shares.push(format!("other {:.0}%", 100.0 * self.other / self.total));
        format!(
            "{:.2} ms CPU per raw MB: {}",
            1000.0 * self.total / megabytes.max(1e-9),
            shares.join(", ")
        )
    }
}
