//! The AWS credentials file the backup CLI and runner read (`--aws-credentials-file`): one
//! `AWS_ACCESS_KEY_ID=` and one `AWS_SECRET_ACCESS_KEY=` line, for the S3 emulators' keys.

/// The file's text for these keys.
pub fn aws_credentials_file(access_key_id: &str, secret_access_key: &str) -> String {
    format!("AWS_ACCESS_KEY_ID={access_key_id}\nAWS_SECRET_ACCESS_KEY={secret_access_key}\n")
}
