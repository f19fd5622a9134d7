//! Realistic traffic for tests and benchmarks. The generator lives in
//! [`panopticon_model::workload`] so that `panopticon sample` can use it too; this module
//! re-exports it under its old path.

pub use panopticon_model::workload::*;
