//! A real Prometheus 2.x server (Debian `prometheus`) in a temporary directory, scraping
//! itself and the given targets every second (fast enough for scaler tests).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use super::HOST;
use super::lifecycle::{ManagedProcess, lifecycle_methods, start_on_free_port};
use crate::tools::system_binary;

/// How to start a [`Prometheus`].
#[derive(Clone, Debug)]
pub struct PrometheusOptions {
    /// `host:port` targets scraped under job [`Self::job_name`] at `/metrics`.
    pub scrape_targets: Vec<String>,
    /// The job label of those targets.
    pub job_name: String,
    /// Scrape and rule evaluation interval.
    pub interval: Duration,
    /// Rule files (recording or alerting rules) to load.
    pub rule_files: Vec<PathBuf>,
}

impl Default for PrometheusOptions {
    fn default() -> Self {
        Self {
            scrape_targets: Vec::new(),
            job_name: "targets".to_owned(),
            interval: Duration::from_secs(1),
            rule_files: Vec::new(),
        }
    }
}

/// A running Prometheus; stopped and its directory removed on drop.
pub struct Prometheus {
    process: ManagedProcess,
    port: u16,
    binary: PathBuf,
    options: PrometheusOptions,
}

lifecycle_methods!(Prometheus);

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`) under job `targets`, and itself under
    /// job `prometheus`, every second.
    pub async fn start(targets: &[&str]) -> anyhow::Result<Self> {
        Self::start_with(PrometheusOptions {
            scrape_targets: targets.iter().map(|t| (*t).to_owned()).collect(),
            ..PrometheusOptions::default()
        })
        .await
    }

    /// Starts Prometheus as `options` say.
    pub async fn start_with(options: PrometheusOptions) -> anyhow::Result<Self> {
        let binary = system_binary("prometheus", &[], "prometheus")?;
        let mut prometheus = Self {
            process: ManagedProcess::new("prometheus", "prometheus")?,
            port: 0,
            binary,
            options,
        };
        start_on_free_port(async |port| {
            prometheus.port = port;
            prometheus.spawn_and_wait().await
        })
        .await?;
        Ok(prometheus)
    }

    fn write_config(&self) -> anyhow::Result<PathBuf> {
        let interval = format!("{}ms", self.options.interval.as_millis().max(1));
        let mut scrape_configs = vec![serde_json::json!({
            "job_name": "prometheus",
            "static_configs": [{ "targets": [format!("{HOST}:{}", self.port)] }],
        })];
        if !self.options.scrape_targets.is_empty() {
            scrape_configs.push(serde_json::json!({
                "job_name": self.options.job_name,
                "static_configs": [{ "targets": self.options.scrape_targets }],
            }));
        }
        let config = serde_json::json!({
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": interval,
            },
            "rule_files": self.options.rule_files,
            "scrape_configs": scrape_configs,
        });
        let path = self.process.dir().join("prometheus.yml");
        std::fs::write(&path, serde_yaml::to_string(&config)?).context("writing prometheus.yml")?;
        Ok(path)
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let config = self.write_config()?;
        let dir = self.process.dir();
        let mut command = Command::new(&self.binary);
        command
            .current_dir(dir)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={HOST}:{}", self.port))
            // Lets tests reload a changed rule file without a restart.
            .arg("--web.enable-lifecycle");
        let ready = format!("{}/-/ready", self.url());
        let process = self
            .process
            .spawn_ready(command, "/-/ready", || async {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(2))
                    .build()?;
                let response = client.get(&ready).send().await;
                // Up only once it says ready: it answers earlier, while it replays its WAL.
                Ok(response.is_ok_and(|r| r.status().is_success()))
            })
            .await?;
        self.process.adopt(process);
        Ok(())
    }

    /// The base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{HOST}:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs an instant query and returns `data.result` (a JSON array of series).
    pub async fn query(&self, promql: &str) -> anyhow::Result<serde_json::Value> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let response: serde_json::Value = client
            .get(format!("{}/api/v1/query", self.url()))
            .query(&[("query", promql)])
            .send()
            .await
            .context("querying prometheus")?
            .json()
            .await
            .context("reading the prometheus answer")?;
        if response["status"] != "success" {
            bail!("prometheus query `{promql}` failed: {response}");
        }
        Ok(response["data"]["result"].clone())
    }

    /// Waits until `promql` returns at least one series, and returns them.
    pub async fn wait_for_series(
        &self,
        promql: &str,
        timeout: Duration,
    ) -> anyhow::Result<serde_json::Value> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let last = self.query(promql).await;
            if let Ok(result) = &last
                && result.as_array().is_some_and(|a| !a.is_empty())
            {
                return Ok(result.clone());
            }
            if std::time::Instant::now() >= deadline {
                let detail = match last {
                    Ok(result) => format!("last answer: {result}"),
                    Err(error) => format!("last error: {error:#}"),
                };
                bail!("timed out after {timeout:?} waiting for series for `{promql}`; {detail}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Asks it to reload its configuration and rule files (`POST /-/reload`).
    pub async fn reload(&self) -> anyhow::Result<()> {
        let response = reqwest::Client::new()
            .post(format!("{}/-/reload", self.url()))
            .send()
            .await
            .context("reloading prometheus")?;
        if !response.status().is_success() {
            bail!("prometheus reload failed: {}", response.status());
        }
        Ok(())
    }
}
