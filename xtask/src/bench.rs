//! `cargo xtask bench …`: benchmarks that print ratios against a baseline measured in the same run.
//!
//! `cargo xtask bench backup-operator [--policies 1000]` measures the backup operator at scale
//! (see `bench/operator/mod.rs`).
//!
//! `cargo xtask bench backup [--size-mb 1024]` starts its own PostgreSQL and S3 servers with
//! testkit (or uses a running PostgreSQL given by `--pg-port/--pg-host/--pg-user`, password in
//! `PGPASSWORD`, client tools on PATH or in `--pg-bin-dir`). It generates a database of
//! high-entropy rows, then measures in one run:
//!
//! - (a) `pg_dump -Fc -Z0 > /dev/null` alternating with (b) `vertice-backup backup` (release
//!   build, default zstd level, AES-256-GCM) to the local store, for `--rounds` rounds; then (b)
//!   to S3 once when `--s3-endpoint/--s3-bucket` are given (credentials in
//!   `AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY`), and (c) `pg_dump -Fc | gzip > file` once;
//! - (r) raw `pg_restore` of a `pg_dump -Fc -Z0` file of the same database into a new database,
//!   alternating with (R) `vertice-backup restore` of one of the (b) backups into a new
//!   database, for `--rounds` rounds.
//!
//! It prints MB/s of raw dump bytes for each, b/a, b/c and R/r with their goals, the peak RSS
//! (VmHWM) of the backup and restore processes, the CPU time per raw MB of the backups with
//! each pipeline stage's share (from the backups' `--output json` reports), and the whole
//! machine's CPU per raw MB during (a) and (b) with the cores (b) needs at (a)'s pace.

mod measure;
mod operator;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use measure::{StageTotals, mbps, median, timed};

/// Arguments of `cargo xtask bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Which benchmark to run (`backup`, `backup-operator`).
    pub which: String,
    /// Size of the generated database in MB (at least 1024 for the official figures).
    #[arg(long, default_value_t = 1024)]
    pub size_mb: u64,
    /// Rounds of (a) and (b)-local, alternating, and of (r) and (R); the medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// A vertice-backup binary to measure instead of building the release binary of this tree
    /// (to compare two builds against the same baselines).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// PostgreSQL host.
    #[arg(long, default_value = "127.0.0.1")]
    pub pg_host: String,
    /// Port of a running PostgreSQL to use; without it the benchmark starts its own PostgreSQL
    /// and S3 server (testkit), which is what the published figures use.
    #[arg(long)]
    pub pg_port: Option<u16>,
    /// PostgreSQL user (password in PGPASSWORD).
    #[arg(long, default_value = "postgres")]
    pub pg_user: String,
    /// Where pg_dump and psql live.
    #[arg(long)]
    pub pg_bin_dir: Option<PathBuf>,
    /// S3 endpoint for the S3 run.
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    /// S3 bucket for the S3 run.
    #[arg(long)]
    pub s3_bucket: Option<String>,
    /// The flags of `backup-operator`.
    #[command(flatten)]
    pub operator: operator::OperatorBenchArgs,
}

/// Runs the chosen benchmark.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.which.as_str() {
        "backup" => with_servers(args),
        "backup-operator" => operator::run(&args.operator, args.binary.clone()),
        other => bail!("unknown benchmark {other:?} (known: backup, backup-operator)"),
    }
}

/// Starts PostgreSQL and an S3 server unless a PostgreSQL port was given, then runs the backup
/// benchmark against them. The servers are stopped when this returns.
fn with_servers(mut args: BenchArgs) -> anyhow::Result<()> {
    if args.pg_port.is_some() {
        return backup(&args);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let (postgres, s3) = runtime.block_on(async {
        let postgres = vertice_testkit::services::Postgres::start().await?;
        let s3 = vertice_testkit::services::S3Server::start().await?;
        anyhow::Ok((postgres, s3))
    })?;
    s3.create_bucket("bench")?;
    args.pg_host = postgres.host().to_owned();
    args.pg_port = Some(postgres.port());
    args.pg_user = postgres.superuser().to_owned();
    args.pg_bin_dir = Some(postgres.bin_dir().to_path_buf());
    args.s3_endpoint = Some(s3.endpoint());
    args.s3_bucket = Some("bench".to_owned());
    // Credentials of the throwaway servers reach the children through their environment,
    // never their argv.
    let env = [
        ("PGPASSWORD", postgres.password().to_owned()),
        ("AWS_ACCESS_KEY_ID", s3.access_key().to_owned()),
        ("AWS_SECRET_ACCESS_KEY", s3.secret_key().to_owned()),
        ("AWS_REGION", s3.region().to_owned()),
    ];
    let result = backup_with_env(&args, &env);
    drop(postgres);
    drop(s3);
    result
}

/// Runs the benchmark with `env` added to every child process.
fn backup_with_env(args: &BenchArgs, env: &[(&str, String)]) -> anyhow::Result<()> {
    CHILD_ENV.with(|cell| {
        *cell.borrow_mut() = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    });
    backup(args)
}

thread_local! {
    /// Environment added to every child the benchmark starts (credentials of testkit servers).
    static CHILD_ENV: std::cell::RefCell<Vec<(String, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A command with the benchmark's child environment.
fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    CHILD_ENV.with(|cell| {
        for (key, value) in cell.borrow().iter() {
            command.env(key, value);
        }
    });
    command
}

const DATABASE: &str = "vertice_bench";

/// A PostgreSQL client tool (from `--pg-bin-dir` when given) aimed at the benchmark's server.
fn tool(args: &BenchArgs, name: &str) -> Command {
    let program = args
        .pg_bin_dir
        .as_ref()
        .map_or_else(|| PathBuf::from(name), |dir| dir.join(name));
    with_pg_env(args, command(program))
}

/// Adds the server's address to a command's environment (libpq reads PGHOST, PGPORT, PGUSER).
fn with_pg_env(args: &BenchArgs, mut command: Command) -> Command {
    command
        .env("PGHOST", &args.pg_host)
        .env("PGPORT", args.pg_port.unwrap_or(5432).to_string())
        .env("PGUSER", &args.pg_user);
    command
}

fn psql(args: &BenchArgs, database: &str, sql: &str) -> anyhow::Result<String> {
    let output = tool(args, "psql")
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database,
            "-c",
            sql,
        ])
        .output()
        .context("running psql")?;
    if !output.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Creates the database with realistic high-entropy rows until it reaches the size.
fn generate(args: &BenchArgs) -> anyhow::Result<()> {
    let exists = psql(
        args,
        "postgres",
        &format!("SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"),
    )?;
    if exists.is_empty() {
        psql(args, "postgres", &format!("CREATE DATABASE {DATABASE}"))?;
        psql(
            args,
            DATABASE,
            "CREATE TABLE events (id bigserial PRIMARY KEY, account uuid, amount numeric(12,2), \
             at timestamptz, kind text, payload text)",
        )?;
    }
    let target = args.size_mb * 1_000_000;
    loop {
        let size: u64 = psql(
            args,
            DATABASE,
            "SELECT pg_database_size(current_database())",
        )?
        .parse()
        .context("database size")?;
        eprintln!(
            "bench: database is {} MB of {}",
            size / 1_000_000,
            args.size_mb
        );
        if size >= target {
            return Ok(());
        }
        psql(
            args,
            DATABASE,
            "INSERT INTO events (account, amount, at, kind, payload) \
             SELECT md5(random()::text)::uuid, (random() * 100000)::numeric(12,2), \
                    now() - random() * interval '900 days', \
                    (ARRAY['deposit','withdrawal','transfer','fee'])[1 + (random() * 3)::int], \
                    encode(sha256(random()::text::bytea), 'base64') || ' ' || md5(random()::text) \
                    || ' ' || encode(sha256(random()::text::bytea), 'hex') \
             FROM generate_series(1, 200000)",
        )?;
    }
}

fn release_binary() -> anyhow::Result<PathBuf> {
    let status = command(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "-p",
            "vertice-backup",
            "--bin",
            "vertice-backup",
        ])
        .status()?;
    if !status.success() {
        bail!("building the release binary failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"));
    Ok(target.join("release/vertice-backup"))
}

/// What the benchmark runs against: the binary, the server's port, the key and the local store.
struct Setup<'a> {
    args: &'a BenchArgs,
    binary: PathBuf,
    pg_port: String,
    key: PathBuf,
    store_path: String,
}

impl Setup<'_> {
    /// `vertice-backup <subcommand>` with the database flags and the key.
    fn vertice(&self, subcommand: &str, name: &str) -> Command {
        let args = self.args;
        let mut command = command(&self.binary);
        command
            .args([subcommand, "--name", name, "--engine", "postgres"])
            .args(["--host", &args.pg_host, "--port", &self.pg_port])
            .args(["--user", &args.pg_user, "--database", DATABASE])
            .args(["--password-env", "PGPASSWORD", "--output", "json"])
            .arg("--encryption-key-file")
            .arg(&self.key);
        if let Some(dir) = &args.pg_bin_dir {
            command.arg("--bin-dir").arg(dir);
        }
        command
    }

    fn local_store(&self) -> [&str; 4] {
        ["--store", "local", "--path", &self.store_path]
    }

    /// (b): one backup; its time, peak RSS (KiB) and JSON report.
    fn backup(&self, store_args: &[&str], name: &str) -> anyhow::Result<measure::Timed> {
        let mut command = self.vertice("backup", name);
        command.args(store_args);
        timed(command)
    }

    /// `DROP DATABASE IF EXISTS` the restore target.
    fn drop_target(&self) -> anyhow::Result<()> {
        psql(
            self.args,
            "postgres",
            &format!("DROP DATABASE IF EXISTS {RESTORED}"),
        )
        .map(drop)
    }
}

/// The database every restore goes into (dropped before and after each).
const RESTORED: &str = "vertice_bench_restored";

fn backup(args: &BenchArgs) -> anyhow::Result<()> {
    let binary = match &args.binary {
        Some(binary) => binary.clone(),
        None => release_binary()?,
    };
    generate(args)?;
    let work = std::env::temp_dir().join(format!("vertice-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let key = work.join("key");
    std::fs::write(&key, "11".repeat(32))?;
    let setup = Setup {
        args,
        binary,
        pg_port: args.pg_port.unwrap_or(5432).to_string(),
        key,
        store_path: work.join("store").to_string_lossy().to_string(),
    };
    let result = measure_all(&setup, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn measure_all(setup: &Setup, work: &std::path::Path) -> anyhow::Result<()> {
    let args = setup.args;
    // (a) pg_dump -Fc -Z0 > /dev/null (bytes counted through a pipe), alternating with (b) to
    // the local store for several rounds; each reports its median, so one run slowed by the
    // database server (it shares the cores) does not decide the ratio.
    let mut a_times = Vec::new();
    let mut a2_times = Vec::new();
    let mut b_times = Vec::new();
    let mut b_peak = 0;
    let mut raw_bytes = 0;
    let mut machine_cpu = MachineCpu::default();
    let mut stages = StageTotals::default();
    let mut b_last_report = serde_json::Value::Null;
    let rounds = args.rounds.max(1);
    for round in 0..rounds {
        let mut dump = tool(args, "pg_dump");
        dump.args(["-Fc", "-Z0", "-d", DATABASE]);
        let dumped = timed(dump)?;
        a_times.push(dumped.elapsed);
        raw_bytes = dumped.written;
        machine_cpu.dump += dumped.machine_cpu;
        a2_times.push(dump_to_store_folder(setup)?);
        let backed_up = setup.backup(&setup.local_store(), &format!("bench-local-{round}"))?;
        b_times.push(backed_up.elapsed);
        machine_cpu.backup += backed_up.machine_cpu;
        b_peak = b_peak.max(backed_up.peak_kib);
        let report: serde_json::Value =
            serde_json::from_slice(&backed_up.stdout).context("the backup's report")?;
        stages.add(&report)?;
        b_last_report = report;
    }
    let paired = paired_ratio(&a_times, &b_times);
    let a_time = median(&mut a_times);
    let a2_time = median(&mut a2_times);
    let b_time = median(&mut b_times);
    let b_stored = stored_size(&b_last_report);
    // (b1) the same backup at the fixed default level, once: what adaptation buys and costs.
    let fixed_store = [&setup.local_store()[..], &["--fixed-compression-level"]].concat();
    let fixed = setup.backup(&fixed_store, "bench-local-fixed")?;
    let fixed_stored = stored_size(&serde_json::from_slice(&fixed.stdout).context("the report")?);
    let s3 = match (&args.s3_endpoint, &args.s3_bucket) {
        (Some(endpoint), Some(bucket)) => {
            let store = ["--store", "s3", "--endpoint", endpoint, "--bucket", bucket];
            let store = [&store[..], &["--prefix", "bench"]].concat();
            Some(setup.backup(&store, &format!("bench-s3-{}", std::process::id()))?)
        }
        _ => None,
    };

    // (c) pg_dump -Fc | gzip > file.
    let gz = work.join("dump.gz");
    let mut naive = with_pg_env(args, command("sh"));
    naive.args([
        "-c",
        &format!(
            "{}pg_dump -Fc -d {DATABASE} | gzip > '{}'",
            bin_prefix(args),
            gz.display()
        ),
    ]);
    let c_time = timed(naive)?.elapsed;
    let _ = std::fs::remove_file(&gz);

    let restores = measure_restores(setup, work, &format!("bench-local-{}", rounds - 1))?;

    let a = mbps(raw_bytes, a_time);
    let a2 = mbps(raw_bytes, a2_time);
    let b = mbps(raw_bytes, b_time);
    let c = mbps(raw_bytes, c_time);
    println!(
        "raw dump: {:.0} MB; (a)/(b) and (r)/(R): medians of {rounds} alternating rounds",
        raw_bytes as f64 / 1e6
    );
    println!(
        "(a) pg_dump -Fc -Z0 > /dev/null      {a:8.1} MB/s  {:.1} s",
        a_time.as_secs_f64()
    );
    println!(
        "(a2) pg_dump -Fc -Z0 > file in the store's folder {a2:8.1} MB/s  {:.1} s",
        a2_time.as_secs_f64()
    );
    println!(
        "(b) vertice-backup → local store     {b:8.1} MB/s  {:.1} s  peak RSS {} MiB",
        b_time.as_secs_f64(),
        b_peak / 1024
    );
    println!(
        "(b1) the same, --fixed-compression-level {:8.1} MB/s  {:.1} s",
        mbps(raw_bytes, fixed.elapsed),
        fixed.elapsed.as_secs_f64()
    );
    println!(
        "stored/raw: (b) adaptive {:.2}, (b1) fixed level {:.2}",
        b_stored as f64 / raw_bytes.max(1) as f64,
        fixed_stored as f64 / raw_bytes.max(1) as f64
    );
    if let Some(s3) = s3 {
        println!(
            "(b) vertice-backup → S3              {:8.1} MB/s  {:.1} s  peak RSS {} MiB",
            mbps(raw_bytes, s3.elapsed),
            s3.elapsed.as_secs_f64(),
            s3.peak_kib / 1024
        );
    }
    println!(
        "(c) pg_dump -Fc | gzip > file        {c:8.1} MB/s  {:.1} s",
        c_time.as_secs_f64()
    );
    println!(
        "b/a = {:.2} (target ≥ 0.9)   b/c = {:.2} (target ≥ 3)",
        b / a,
        b / c
    );
    println!(
        "b/a per round (a and b back to back), median = {paired:.2}   b/a2 = {:.2}",
        b / a2
    );
    println!("(b) {}", stages.summary(raw_bytes));
    machine_cpu.print(raw_bytes * rounds as u64, a);
    let r = mbps(raw_bytes, restores.raw);
    let restore = mbps(raw_bytes, restores.ours);
    println!(
        "(r) pg_restore < dump file           {r:8.1} MB/s  {:.1} s",
        restores.raw.as_secs_f64()
    );
    println!(
        "(R) vertice-backup restore           {restore:8.1} MB/s  {:.1} s  peak RSS {} MiB (target ≤ 128)",
        restores.ours.as_secs_f64(),
        restores.peak_kib / 1024
    );
    println!("R/r = {:.2} (target ≥ 0.9)", restore / r);
    Ok(())
}

/// CPU time the whole machine spent during the (a) and (b) rounds: what a backup costs in
/// CPU, pg_dump's and the server's included, apart from how fast this machine's pg_dump is.
#[derive(Default)]
struct MachineCpu {
    dump: Duration,
    backup: Duration,
}

impl MachineCpu {
    /// Prints CPU per raw MB of (a) and (b), for `megabytes_total` raw bytes per kind over all
    /// rounds, and how many cores (b) needs to keep (a)'s pace `a` (MB/s). Where the CPU is what
    /// binds (pg_dump and the server already use most of it), `cores / needed` bounds b/a; the
    /// figure carries to other machines as far as pg_dump's pace scales with their CPU.
    fn print(&self, raw_bytes_total: u64, a: f64) {
        let megabytes = (raw_bytes_total as f64 / 1e6).max(1e-9);
        let per_mb = |time: Duration| time.as_secs_f64() * 1000.0 / megabytes;
        let (dump, backup) = (per_mb(self.dump), per_mb(self.backup));
        if backup <= 0.0 {
            println!("machine CPU: /proc/stat cannot be read here");
            return;
        }
        let needed = backup * a / 1000.0;
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        println!(
            "machine CPU per raw MB, every process: (a) {dump:.2} ms, (b) {backup:.2} ms; (b) at \
             (a)'s pace needs {needed:.2} cores: on {cores} cores, where the CPU binds, \
             b/a ≤ {:.2}",
            cores / needed
        );
    }
}

/// (a2): the raw dump written to a file beside the local store, so the cost of writing that
/// many bytes to this filesystem shows apart from the pipeline's own; the file is removed.
fn dump_to_store_folder(setup: &Setup) -> anyhow::Result<std::time::Duration> {
    let file = std::path::Path::new(&setup.store_path).join("raw.dump");
    std::fs::create_dir_all(&setup.store_path)?;
    let mut dump = tool(setup.args, "pg_dump");
    dump.args(["-Fc", "-Z0", "-d", DATABASE, "-f"]).arg(&file);
    let elapsed = timed(dump)?.elapsed;
    std::fs::remove_file(&file)?;
    Ok(elapsed)
}

/// The median of each round's (a) time over its (b) time: both ran back to back, so a machine
/// that slows down or speeds up between rounds moves both.
fn paired_ratio(a_times: &[std::time::Duration], b_times: &[std::time::Duration]) -> f64 {
    let mut ratios: Vec<f64> = a_times
        .iter()
        .zip(b_times)
        .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64().max(1e-9))
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios.get(ratios.len() / 2).copied().unwrap_or_default()
}

/// The `storedSize` of a backup's JSON report (0 when absent).
fn stored_size(report: &serde_json::Value) -> u64 {
    report
        .get("storedSize")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

/// Median restore times of the raw baseline and of ours, and our peak RSS.
struct Restores {
    raw: Duration,
    ours: Duration,
    peak_kib: u64,
}

/// (r) raw `pg_restore` of a `-Fc -Z0` dump file into a new database, alternating with (R) our
/// restore of backup `name` into a new database; both read their input through stdin.
fn measure_restores(setup: &Setup, work: &std::path::Path, name: &str) -> anyhow::Result<Restores> {
    let args = setup.args;
    let dump_file = work.join("raw.dump");
    let mut dump = tool(args, "pg_dump");
    dump.args(["-Fc", "-Z0", "-d", DATABASE, "-f"])
        .arg(&dump_file);
    timed(dump)?;
    let mut raw_times = Vec::new();
    let mut our_times = Vec::new();
    let mut peak_kib = 0;
    for _ in 0..args.rounds.max(1) {
        setup.drop_target()?;
        // The same flags as our restore's pg_restore; creating the database is part of both.
        let mut raw = with_pg_env(args, command("sh"));
        raw.args([
            "-c",
            &format!(
                "{bin}createdb {RESTORED} && {bin}pg_restore --exit-on-error --no-password \
                 -d {RESTORED} < '{}'",
                dump_file.display(),
                bin = bin_prefix(args),
            ),
        ]);
        raw_times.push(timed(raw)?.elapsed);
        setup.drop_target()?;
        let mut restore = setup.vertice("restore", name);
        restore
            .args(setup.local_store())
            .args(["--target-database", RESTORED]);
        let restored = timed(restore)?;
        our_times.push(restored.elapsed);
        peak_kib = peak_kib.max(restored.peak_kib);
        setup.drop_target()?;
    }
    let _ = std::fs::remove_file(&dump_file);
    Ok(Restores {
        raw: median(&mut raw_times),
        ours: median(&mut our_times),
        peak_kib,
    })
}

/// `--pg-bin-dir` as a prefix for tool names in a shell command (empty: tools on PATH).
fn bin_prefix(args: &BenchArgs) -> String {
    args.pg_bin_dir
        .as_ref()
        .map_or_else(String::new, |dir| format!("{}/", dir.display()))
}
