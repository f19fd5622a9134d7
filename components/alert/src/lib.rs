//! The alert component: live error logs over Socket.IO and WebSocket. Built in issue #6.
//!
//! Nothing here yet: this crate holds a place in the workspace layout of DESIGN.md §3.
