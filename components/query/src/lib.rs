//! The query component: the seed's /query HTTP API with a Redis cache. Built in issue #5.
//!
//! Nothing here yet: this crate holds a place in the workspace layout of DESIGN.md §3.
