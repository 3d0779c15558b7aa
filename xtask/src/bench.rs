//! `cargo xtask bench …`: benchmarks that print ratios against a baseline measured in the same run.
//!
//! `cargo xtask bench backup [--size-mb 1024]` starts its own PostgreSQL and S3 servers with
//! testkit (or uses a running PostgreSQL given by `--pg-port/--pg-host/--pg-user`, password in
//! `PGPASSWORD`, client tools on PATH or in `--pg-bin-dir`). It generates a database of high-entropy rows, then measures in one
//! run: (a) `pg_dump -Fc -Z0 > /dev/null`, (b) `vertice-backup backup` (release build, zstd 3,
//! AES-256-GCM) to the local store — and to S3 when `--s3-endpoint/--s3-bucket` are given, with
//! credentials in `AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY` — and (c) `pg_dump -Fc | gzip > file`;
//! prints MB/s of raw dump bytes for each, b/a and b/c, the backup's peak RSS (VmHWM of the child
//! process), and restore throughput.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

/// Arguments of `cargo xtask bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Which benchmark to run (`backup`).
    pub which: String,
    /// Size of the generated database in MB (at least 1024 for the official figures).
    #[arg(long, default_value_t = 1024)]
    pub size_mb: u64,
    /// Rounds of (a) and (b)-local, alternating; the medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
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
}

/// Runs the chosen benchmark.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.which.as_str() {
        "backup" => with_servers(args),
        other => bail!("unknown benchmark {other:?} (known: backup)"),
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

/// Runs a command, returning its duration, the peak RSS of the process (VmHWM, KiB) and how
/// many bytes it wrote to stdout (counted, not kept: a dump is a gigabyte).
fn timed(mut command: Command) -> anyhow::Result<(Duration, u64, u64)> {
    let started = Instant::now();
    let mut child = command.stdout(Stdio::piped()).spawn().context("spawning")?;
    let pid = child.id();
    let mut stdout = child.stdout.take().context("stdout")?;
    let reader = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for line in text.lines().filter(|line| line.starts_with("VmHWM:")) {
                let kib: u64 = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(0);
                peak = peak.max(kib);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let written = match reader.join() {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(error)) => bail!("reading the output of {command:?}: {error}"),
        Err(_) => bail!("the output reader of {command:?} panicked"),
    };
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok((elapsed, peak, written))
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

/// The middle value (the upper one of an even count).
fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn mbps(bytes: u64, duration: Duration) -> f64 {
    bytes as f64 / duration.as_secs_f64().max(0.001) / 1e6
}

fn backup(args: &BenchArgs) -> anyhow::Result<()> {
    let binary = release_binary()?;
    let pg_port = args.pg_port.unwrap_or(5432).to_string();
    generate(args)?;
    let work = std::env::temp_dir().join(format!("vertice-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let key = work.join("key");
    std::fs::write(&key, "11".repeat(32))?;

    // (b) our backup, to the local store and optionally to S3.
    let run_backup = |store_args: &[&str], name: &str| -> anyhow::Result<(Duration, u64)> {
        let mut command = command(&binary);
        command
            .args([
                "backup",
                "--name",
                name,
                "--engine",
                "postgres",
                "--host",
                &args.pg_host,
            ])
            .args(["--port", &pg_port, "--user", &args.pg_user])
            .args(["--database", DATABASE, "--password-env", "PGPASSWORD"])
            .arg("--encryption-key-file")
            .arg(&key)
            .args(store_args);
        if let Some(dir) = &args.pg_bin_dir {
            command.arg("--bin-dir").arg(dir);
        }
        let (time, peak, _) = timed(command)?;
        Ok((time, peak))
    };
    let store_dir = work.join("store");
    let store_path = store_dir.to_string_lossy().to_string();
    // (a) pg_dump -Fc -Z0 > /dev/null (bytes counted through a pipe), alternating with (b) to
    // the local store for several rounds; each reports its median, so one run slowed by the
    // database server (it shares the cores) does not decide the ratio.
    let mut a_times = Vec::new();
    let mut b_times = Vec::new();
    let mut b_peak = 0;
    let mut raw_bytes = 0;
    let rounds = args.rounds.max(1);
    for round in 0..rounds {
        let mut dump = tool(args, "pg_dump");
        dump.args(["-Fc", "-Z0", "-d", DATABASE]);
        let (time, _, bytes) = timed(dump)?;
        a_times.push(time);
        raw_bytes = bytes;
        let name = format!("bench-local-{round}");
        let (time, peak) = run_backup(&["--store", "local", "--path", &store_path], &name)?;
        b_times.push(time);
        b_peak = b_peak.max(peak);
    }
    let a_time = median(&mut a_times);
    let local = (median(&mut b_times), b_peak);
    let restored_name = format!("bench-local-{}", rounds - 1);
    let s3 = match (&args.s3_endpoint, &args.s3_bucket) {
        (Some(endpoint), Some(bucket)) => Some(run_backup(
            &[
                "--store",
                "s3",
                "--endpoint",
                endpoint,
                "--bucket",
                bucket,
                "--prefix",
                "bench",
            ],
            &format!("bench-s3-{}", std::process::id()),
        )?),
        _ => None,
    };

    // (c) pg_dump -Fc | gzip > file.
    let gz = work.join("dump.gz");
    let bin = args
        .pg_bin_dir
        .as_ref()
        .map_or_else(String::new, |dir| format!("{}/", dir.display()));
    let mut naive = with_pg_env(args, command("sh"));
    naive.args([
        "-c",
        &format!("{bin}pg_dump -Fc -d {DATABASE} | gzip > '{}'", gz.display()),
    ]);
    let (c_time, _, _) = timed(naive)?;

    // Restore throughput.
    psql(
        args,
        "postgres",
        &format!("DROP DATABASE IF EXISTS {DATABASE}_restored"),
    )?;
    let mut restore = command(&binary);
    restore
        .args([
            "restore",
            "--name",
            &restored_name,
            "--store",
            "local",
            "--path",
            &store_path,
        ])
        .args([
            "--engine",
            "postgres",
            "--host",
            &args.pg_host,
            "--port",
            &pg_port,
        ])
        .args([
            "--user",
            &args.pg_user,
            "--database",
            DATABASE,
            "--password-env",
            "PGPASSWORD",
        ])
        .args(["--target-database", &format!("{DATABASE}_restored")])
        .arg("--encryption-key-file")
        .arg(&key);
    let (restore_time, restore_peak, _) = timed(restore)?;
    psql(
        args,
        "postgres",
        &format!("DROP DATABASE IF EXISTS {DATABASE}_restored"),
    )?;

    let a = mbps(raw_bytes, a_time);
    let b = mbps(raw_bytes, local.0);
    let c = mbps(raw_bytes, c_time);
    println!(
        "raw dump: {:.0} MB; (a) and (b) local: medians of {rounds} alternating rounds",
        raw_bytes as f64 / 1e6
    );
    println!(
        "(a) pg_dump -Fc -Z0 > /dev/null      {a:8.1} MB/s  {:.1} s",
        a_time.as_secs_f64()
    );
    println!(
        "(b) vertice-backup → local store     {b:8.1} MB/s  {:.1} s  peak RSS {} MiB",
        local.0.as_secs_f64(),
        local.1 / 1024
    );
    if let Some((time, peak)) = s3 {
        println!(
            "(b) vertice-backup → S3              {:8.1} MB/s  {:.1} s  peak RSS {} MiB",
            mbps(raw_bytes, time),
            time.as_secs_f64(),
            peak / 1024
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
        "restore (verify pass + pg_restore)   {:8.1} MB/s  {:.1} s  peak RSS {} MiB",
        mbps(raw_bytes, restore_time),
        restore_time.as_secs_f64(),
        restore_peak / 1024
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
