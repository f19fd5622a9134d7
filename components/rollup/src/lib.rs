//! The rollup component: closed minutes of spans → per-service and per-endpoint metrics. Built in issue #4.
//!
//! Nothing here yet: this crate holds a place in the workspace layout of DESIGN.md §3.
