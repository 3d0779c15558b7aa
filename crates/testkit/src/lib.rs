//! Dev-only test kit: starts REAL processes for tests, each on free ports in a temporary
//! directory, and stops them when dropped. No mock stands in for any of them.

pub mod chart;
pub mod control_plane;
pub mod crds;
pub mod kubelet;
pub mod log_capture;
pub mod monitoring;
pub mod namespace;
pub mod ports;
pub mod process;
pub mod services;
pub mod shared;
pub mod tools;
pub mod wait;
