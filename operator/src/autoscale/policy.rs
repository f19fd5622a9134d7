//! The scaling decision (pure). Being written.
