//! The HAProxy rolling router: a backend with N servers of the old version and N of
//! the new; weight `w` means the first `round(w·N/100)` new servers are `ready` and as
//! many old ones `drain`, the rest of the new ones in `maint` and of the old ones
//! `ready` (`set server <backend>/<server> state …` through the runtime API).
//!
//! Servers that become ready are set first and servers that leave afterwards, so a
//! batch adds capacity before it removes any (a rollback brings the old servers back
//! before the new ones go). Absolute like every router: the same weight sets the same
//! states. Confirmed by reading the backend's states back (`show servers state`).

use async_trait::async_trait;

use super::haproxy::Haproxy;
use super::{RouterError, TrafficRouter};
use crate::plan::HaproxyCanary;

/// Server administrative state bits in `show servers state` (HAProxy's `SRV_ADMF_*`):
/// forced, inherited, resolver and hostname maintenance; forced and inherited drain.
/// (`CMAINT`, 0x04, only records that the configuration said `disabled`: it stays set
/// once the server is made ready.)
const MAINT: u32 = 0x01 | 0x02 | 0x20 | 0x40;
const DRAIN: u32 = 0x08 | 0x10;

/// What a server is asked to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Ready,
    Drain,
    Maint,
}

impl Wanted {
    fn word(self) -> &'static str {
        match self {
            Wanted::Ready => "ready",
            Wanted::Drain => "drain",
            Wanted::Maint => "maint",
        }
    }

    /// Whether `admin` (a server's `srv_admin_state`) is this state.
    fn is(self, admin: u32) -> bool {
        match self {
            Wanted::Ready => admin & (MAINT | DRAIN) == 0,
            Wanted::Drain => admin & DRAIN != 0 && admin & MAINT == 0,
            Wanted::Maint => admin & MAINT != 0,
        }
    }
}

/// Replaces old servers by new ones, a batch at a time.
#[derive(Debug, Clone)]
pub struct HaproxyRolling {
    api: Haproxy,
    config: HaproxyCanary,
}

impl HaproxyRolling {
    /// A router for the servers `config` names (as many canary servers as stable).
    pub fn new(config: HaproxyCanary) -> Self {
        HaproxyRolling {
            api: Haproxy::new(config.clone()),
            config,
        }
    }

    /// Each server with the state weight `weight` gives it, the ones becoming ready
    /// first.
    fn plan(&self, weight: u32) -> Vec<(&str, Wanted)> {
        let servers = self.config.canary.0.len() as u32;
        let new = (weight * servers + 50) / 100;
        let mut states: Vec<(&str, Wanted)> = Vec::new();
        for (j, (old, fresh)) in self
            .config
            .stable
            .0
            .iter()
            .zip(&self.config.canary.0)
            .enumerate()
        {
            let replaced = (j as u32) < new;
            states.push((
                fresh,
                if replaced {
                    Wanted::Ready
                } else {
                    Wanted::Maint
                },
            ));
            states.push((
                old,
                if replaced {
                    Wanted::Drain
                } else {
                    Wanted::Ready
                },
            ));
        }
        states.sort_by_key(|(_, wanted)| *wanted != Wanted::Ready);
        states
    }

    /// Every server of the backend with its `srv_admin_state`.
    async fn states(&self) -> Result<Vec<(String, u32)>, RouterError> {
        let command = format!("show servers state {}", self.config.backend);
        let answer = self.api.command(&command).await?;
        parse_states(&answer).ok_or_else(|| self.api.rejected(command, answer))
    }

    async fn admin_state(
        &self,
        states: &[(String, u32)],
        server: &str,
    ) -> Result<u32, RouterError> {
        states
            .iter()
            .find(|(name, _)| name == server)
            .map(|(_, admin)| *admin)
            .ok_or_else(|| {
                self.api.rejected(
                    format!("show servers state {}", self.config.backend),
                    format!("no server `{server}` in backend `{}`", self.config.backend),
                )
            })
    }
}

#[async_trait]
impl TrafficRouter for HaproxyRolling {
    async fn set_weight(&self, weight: u32) -> Result<(), RouterError> {
        if weight > 100 {
            return Err(RouterError::InvalidWeight { weight });
        }
        let plan = self.plan(weight);
        for (server, wanted) in &plan {
            let command = format!(
                "set server {}/{server} state {}",
                self.config.backend,
                wanted.word()
            );
            let answer = self.api.command(&command).await?;
            if !answer.is_empty() {
                return Err(self.api.rejected(command, answer));
            }
        }
        let states = self.states().await?;
        for (server, wanted) in plan {
            let admin = self.admin_state(&states, server).await?;
            if !wanted.is(admin) {
                return Err(self.api.rejected(
                    format!("show servers state {}", self.config.backend),
                    format!(
                        "server `{server}` has admin state {admin:#x}, not {}",
                        wanted.word()
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn weight(&self) -> Result<u32, RouterError> {
        let states = self.states().await?;
        let mut ready = 0;
        for server in &self.config.canary.0 {
            if Wanted::Ready.is(self.admin_state(&states, server).await?) {
                ready += 1;
            }
        }
        let servers = self.config.canary.0.len().max(1) as u32;
        Ok((ready * 100 + servers / 2) / servers)
    }
}

/// The servers and admin states of a `show servers state <backend>` answer: a version
/// line, a `#` header naming the columns, then one line per server. `None` when the
/// answer is not that (e.g. `Can't find backend.`).
fn parse_states(answer: &str) -> Option<Vec<(String, u32)>> {
    let mut lines = answer.lines();
    lines.next()?.trim().parse::<u32>().ok()?;
    let header: Vec<&str> = lines
        .next()?
        .strip_prefix('#')?
        .split_whitespace()
        .collect();
    let name = header.iter().position(|c| *c == "srv_name")?;
    let admin = header.iter().position(|c| *c == "srv_admin_state")?;
    lines
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some((
                (*fields.get(name)?).to_owned(),
                fields.get(admin)?.parse().ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Servers;

    fn router(servers: usize) -> HaproxyRolling {
        let names = |prefix: &str| Servers((1..=servers).map(|i| format!("{prefix}{i}")).collect());
        HaproxyRolling::new(HaproxyCanary {
            address: "127.0.0.1:1".into(),
            backend: "web".into(),
            stable: names("old"),
            canary: names("new"),
        })
    }

    #[test]
    fn a_batch_brings_new_servers_up_before_draining_old_ones() {
        let router = router(4);
        let plan = router.plan(50);
        let mut ready: Vec<&str> = plan
            .iter()
            .take_while(|(_, w)| *w == Wanted::Ready)
            .map(|(s, _)| *s)
            .collect();
        ready.sort();
        assert_eq!(ready, ["new1", "new2", "old3", "old4"]);
        assert!(plan.contains(&("new2", Wanted::Ready)));
        assert!(plan.contains(&("new3", Wanted::Maint)));
        assert!(plan.contains(&("old2", Wanted::Drain)));
        assert!(plan.contains(&("old3", Wanted::Ready)));
        assert!(plan[4..].iter().all(|(_, w)| *w != Wanted::Ready));
        // Weight 0 is the old set: every old server ready, every new one in maint.
        assert!(router
            .plan(0)
            .iter()
            .all(|(s, w)| (s.starts_with("old") && *w == Wanted::Ready) || *w == Wanted::Maint));
    }

    #[test]
    fn reads_server_states() {
        let answer = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight\n3 web 1 old1 127.0.0.1 2 0 1\n3 web 2 new1 127.0.0.1 0 1 1\n3 web 3 old2 127.0.0.1 2 8 1\n";
        assert_eq!(
            parse_states(answer).unwrap(),
            [("old1".into(), 0), ("new1".into(), 1), ("old2".into(), 8)]
        );
        assert!(parse_states("Can't find backend.").is_none());
        assert!(Wanted::Ready.is(0));
        assert!(Wanted::Drain.is(8) && !Wanted::Ready.is(8));
        // `disabled` in the configuration reads 5 (forced and configured maintenance);
        // made ready, 4 is left: ready.
        assert!(Wanted::Maint.is(5) && Wanted::Ready.is(4) && !Wanted::Drain.is(9));
    }
}
