//! The operator's snapshot part against moto (testkit's real server): an RDS client for the
//! test's own checks, a DB instance to snapshot, and a run's snapshot part. Shared by
//! `operator_snapshots.rs`, `operator_dashboards.rs` (which needs a snapshot's series) and
//! `operator_snapshot_retention.rs`.
#![allow(dead_code)]

use aws_sdk_rds::Client;
use aws_sdk_rds::config::{BehaviorVersion, Credentials, Region};
use serde_json::{Value, json};
use vertice_testkit::services::Moto;

pub const REGION: &str = "eu-west-1";

pub fn rds(moto: &Moto) -> Client {
    Client::from_conf(
        aws_sdk_rds::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                moto.access_key_id(),
                moto.secret_access_key(),
                None,
                None,
                "test",
            ))
            .endpoint_url(moto.endpoint())
            .build(),
    )
}

pub async fn instance(rds: &Client) -> String {
    let id = format!("db-{:08x}", rand::random::<u32>());
    rds.create_db_instance()
        .db_instance_identifier(&id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .engine_version("16.2")
        .allocated_storage(20)
        .master_username("app")
        .master_user_password("not-a-real-password")
        .send()
        .await
        .unwrap();
    id
}

pub fn snapshot_part(moto: &Moto, instance: &str, secret: &str) -> Value {
    json!({
        "provider": "aws",
        "instanceId": instance,
        "region": REGION,
        "credentialsSecretRef": {"name": secret},
        "endpoint": moto.endpoint(),
        "tags": {"team": "shop"},
        "timeoutSeconds": 120,
    })
}
