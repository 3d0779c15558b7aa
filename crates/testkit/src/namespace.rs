//! A fresh namespace per test, so tests sharing one control plane never see each other's objects.

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::control_plane::ControlPlane;

/// The label on every test namespace, so a person looking at a demo cluster can tell them apart.
pub const TEST_NAMESPACE_LABEL: &str = "vertice.dev/test-namespace";

/// A namespace named `<prefix>-<random suffix>`, deleted (best effort) when dropped.
pub struct TestNamespace {
    name: String,
    client: kube::Client,
}

impl TestNamespace {
    /// Creates the namespace. `prefix` is lower-cased and cut to fit a DNS label.
    pub async fn create(client: &kube::Client, prefix: &str) -> anyhow::Result<Self> {
        let mut prefix: String = prefix
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(50)
            .collect();
        prefix = prefix.trim_matches('-').to_owned();
        if prefix.is_empty() {
            prefix = "test".to_owned();
        }
        let suffix: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(6)
            .map(|c| char::from(c).to_ascii_lowercase())
            .collect();
        let name = format!("{prefix}-{suffix}");
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(TEST_NAMESPACE_LABEL.to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating test namespace {name}"))?;
        Ok(Self {
            name,
            client: client.clone(),
        })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        // A task spawned on the test's runtime would rarely run: `#[tokio::test]` drops its
        // runtime right after the test body, and with it every pending task. So when the shared
        // control plane is in use, delete through a client of our own on a short-lived thread
        // and wait for the request (a few milliseconds); the namespace controller finishes the
        // job in the background.
        if let Some(control_plane) = ControlPlane::shared_if_started() {
            let deleted = std::thread::Builder::new()
                .name("test-namespace-drop".to_owned())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(async {
                        let client = control_plane.admin_client().await?;
                        tokio::time::timeout(Duration::from_secs(10), delete(client, &name))
                            .await??;
                        anyhow::Ok(())
                    })
                })
                .map(|thread| thread.join());
            if let Ok(Ok(Err(error))) = deleted {
                tracing::warn!("deleting a test namespace failed: {error:#}");
            }
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            runtime.spawn(async move {
                if let Err(error) = delete(client, &name).await {
                    tracing::warn!("deleting test namespace {name} failed: {error:#}");
                }
            });
        }
    }
}

async fn delete(client: kube::Client, name: &str) -> anyhow::Result<()> {
    match Api::<Namespace>::all(client)
        .delete(name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}
