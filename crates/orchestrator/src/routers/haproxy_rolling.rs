//! The HAProxy rolling router: a backend with N servers of the old version and N of
//! the new; weight `w` means the first `round(w·N/100)` new servers are `ready` and as
//! many old ones `drain`, the rest of the new ones in `maint` and of the old ones
//! `ready` (`set server <backend>/<server> state …` through the runtime API).
//!
//! The states are read first and only the servers that change are set, in an order
//! `max_unavailable` bounds: at most that many of the N serving places are ever out of
//! service. With 0 (the default) the servers that become ready are set first and the
//! ones that leave afterwards, so a batch adds capacity before it removes any (a
//! rollback brings the old servers back before the new ones go); with more, up to that
//! many old servers drain first, then the new ones come up, then the rest drain.
//! Absolute like every router: the same weight ends in the same states, whatever the
//! states were (a change cut short is finished by setting the weight again). Confirmed
//! by reading the backend's states back (`show servers state`).

use async_trait::async_trait;

use super::haproxy::Haproxy;
use super::{RouterError, TrafficRouter};
use crate::plan::{Batch, HaproxyCanary};

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
    max_unavailable: u32,
}

impl HaproxyRolling {
    /// A router for the servers `config` names (as many canary servers as stable),
    /// which never has more than `max_unavailable` of them out of service.
    pub fn new(config: HaproxyCanary, max_unavailable: Batch) -> Self {
        let servers = config.canary.0.len() as u32;
        HaproxyRolling {
            api: Haproxy::new(config.clone()),
            config,
            max_unavailable: max_unavailable.unavailable(servers),
        }
    }

    /// Each server with the state weight `weight` gives it (in the configuration's
    /// order, each new server next to the old one it replaces).
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
        states
    }

    /// The changes that take the servers from `current` (each server's
    /// `srv_admin_state`) to `wanted`, in the order they are made.
    fn changes<'w>(
        &self,
        current: &[(String, u32)],
        wanted: &[(&'w str, Wanted)],
    ) -> Vec<(&'w str, Wanted)> {
        let servers = self.config.canary.0.len() as u32;
        order(current, wanted, servers, self.max_unavailable)
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
        let before = self.states().await?;
        for (server, wanted) in self.changes(&before, &plan) {
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

/// The changes from `current` to `wanted` (servers already where they should be are
/// left alone), ordered so that the ready servers never fall below `servers −
/// max_unavailable` on their account: first as many servers leave as that allows, then
/// every server that becomes ready does, then the rest leave (a server that leaves
/// without having been ready, e.g. `drain` → `maint`, last). With `max_unavailable` 0
/// every server comes up before any goes.
fn order<'w>(
    current: &[(String, u32)],
    wanted: &[(&'w str, Wanted)],
    servers: u32,
    max_unavailable: u32,
) -> Vec<(&'w str, Wanted)> {
    let admin = |server: &str| {
        current
            .iter()
            .find(|(name, _)| name == server)
            .map(|(_, admin)| *admin)
    };
    // A server not in the answer is set anyway; reading the states back reports it.
    let is_ready = |server: &str| admin(server).is_some_and(|a| Wanted::Ready.is(a));
    let changed = wanted
        .iter()
        .filter(|(server, w)| admin(server).is_none_or(|a| !w.is(a)));
    let (up, leaving): (Vec<_>, Vec<_>) = changed.partition(|(_, w)| *w == Wanted::Ready);
    let (taken_down, quiet): (Vec<_>, Vec<_>) = leaving
        .into_iter()
        .partition(|(server, _)| is_ready(server));
    let ready = wanted.iter().filter(|(server, _)| is_ready(server)).count() as u32;
    let floor = servers.saturating_sub(max_unavailable);
    let first = (ready.saturating_sub(floor) as usize).min(taken_down.len());
    taken_down[..first]
        .iter()
        .chain(&up)
        .chain(&taken_down[first..])
        .chain(&quiet)
        .copied()
        .collect()
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

    fn rolling(servers: usize, max_unavailable: Batch) -> HaproxyRolling {
        let names = |prefix: &str| Servers((1..=servers).map(|i| format!("{prefix}{i}")).collect());
        HaproxyRolling::new(
            HaproxyCanary {
                address: "127.0.0.1:1".into(),
                backend: "web".into(),
                stable: names("old"),
                canary: names("new"),
            },
            max_unavailable,
        )
    }

    fn admin(wanted: Wanted) -> u32 {
        match wanted {
            Wanted::Ready => 0,
            Wanted::Drain => 8,
            Wanted::Maint => 1,
        }
    }

    /// The backend as configured: old servers ready, new ones `disabled` (5).
    fn configured(servers: usize) -> Vec<(String, u32)> {
        (1..=servers)
            .flat_map(|i| [(format!("old{i}"), 0), (format!("new{i}"), 5)])
            .collect()
    }

    /// Takes `states` to `weight` one change at a time: the changes made, and the
    /// fewest servers ready along the way.
    fn roll(
        router: &HaproxyRolling,
        states: &mut [(String, u32)],
        weight: u32,
    ) -> (Vec<String>, usize) {
        let wanted = router.plan(weight);
        let changes: Vec<(String, Wanted)> = router
            .changes(states, &wanted)
            .into_iter()
            .map(|(s, w)| (s.to_owned(), w))
            .collect();
        let ready =
            |states: &[(String, u32)]| states.iter().filter(|(_, a)| Wanted::Ready.is(*a)).count();
        let mut fewest = ready(states);
        let mut made = Vec::new();
        for (server, w) in changes {
            let slot = states.iter_mut().find(|(n, _)| *n == server).unwrap();
            slot.1 = admin(w);
            fewest = fewest.min(ready(states));
            made.push(format!("{server} {}", w.word()));
        }
        for (server, w) in wanted {
            let (_, a) = states.iter().find(|(n, _)| n == server).unwrap();
            assert!(w.is(*a), "{server} is {a}, not {}", w.word());
        }
        (made, fewest)
    }

    #[test]
    fn without_max_unavailable_a_batch_brings_new_servers_up_before_draining_old_ones() {
        let router = rolling(4, Batch::Count(0));
        let mut states = configured(4);
        let (made, fewest) = roll(&router, &mut states, 25);
        assert_eq!(made, ["new1 ready", "old1 drain"]);
        assert_eq!(fewest, 4);
        let (made, fewest) = roll(&router, &mut states, 75);
        assert_eq!(
            made,
            ["new2 ready", "new3 ready", "old2 drain", "old3 drain"]
        );
        assert_eq!(fewest, 4);
        // The same weight again changes nothing.
        assert_eq!(roll(&router, &mut states, 75).0, Vec::<String>::new());
        // A rollback brings the old servers back before the new ones go.
        let (made, fewest) = roll(&router, &mut states, 0);
        assert_eq!(
            made,
            [
                "old1 ready",
                "old2 ready",
                "old3 ready",
                "new1 maint",
                "new2 maint",
                "new3 maint"
            ]
        );
        assert_eq!(fewest, 4);
    }

    #[test]
    fn max_unavailable_lets_old_servers_drain_first_and_bounds_the_servers_out() {
        // At least a batch: the batch's old servers drain before its new ones come up.
        let router = rolling(4, Batch::Count(2));
        let mut states = configured(4);
        let (made, fewest) = roll(&router, &mut states, 50);
        assert_eq!(
            made,
            ["old1 drain", "old2 drain", "new1 ready", "new2 ready"]
        );
        assert_eq!(fewest, 2);
        // And back: the new ones leave first, within the same bound.
        let (made, fewest) = roll(&router, &mut states, 0);
        assert_eq!(
            made,
            ["new1 maint", "new2 maint", "old1 ready", "old2 ready"]
        );
        assert_eq!(fewest, 2);

        // Less than a batch: that many first, then the new ones, then the rest.
        let router = rolling(4, Batch::Percent(25));
        let mut states = configured(4);
        let (made, fewest) = roll(&router, &mut states, 75);
        assert_eq!(
            made,
            [
                "old1 drain",
                "new1 ready",
                "new2 ready",
                "new3 ready",
                "old2 drain",
                "old3 drain"
            ]
        );
        assert_eq!(fewest, 3);

        // Whatever the states before (a change cut short), never more than allowed out.
        for unavailable in 0..=4u32 {
            let router = rolling(4, Batch::Count(unavailable));
            for from in [0, 25, 50, 75, 100] {
                for to in [0, 25, 50, 75, 100] {
                    let mut states = configured(4);
                    roll(&router, &mut states, from);
                    let (_, fewest) = roll(&router, &mut states, to);
                    assert!(
                        fewest as u32 >= 4 - unavailable,
                        "{from} → {to} with max_unavailable {unavailable}: {fewest} ready"
                    );
                }
            }
        }
        // A share rounds down: 30 % of 4 servers is 1.
        assert_eq!(rolling(4, Batch::Percent(30)).max_unavailable, 1);
        assert_eq!(rolling(4, Batch::Count(9)).max_unavailable, 4);
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
