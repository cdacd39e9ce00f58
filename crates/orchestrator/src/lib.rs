//! `switchyard-orchestrator`: the rollout orchestrator.
//!
//! Not built yet. It will run release plans that ramp a canary's traffic weight and a
//! flag's percentage together, analyse metrics between steps and roll back by
//! itself. It reaches the flag server only through the SDK's admin client.
