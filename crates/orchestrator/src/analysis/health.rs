//! Health checks (being written).
