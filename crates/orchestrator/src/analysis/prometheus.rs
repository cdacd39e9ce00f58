//! Prometheus source (being written).
