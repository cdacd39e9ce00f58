//! End-to-end tests across the server, SDK and orchestrator live in `tests/`.
