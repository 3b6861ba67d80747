//! ktap-workload's parsing and workloads, in a library so they get the usual test harness (the binary enters at C `main`).

pub mod args;
pub mod work;
