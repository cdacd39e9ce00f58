//! Redis beyond one process, as real child processes: a Redis Cluster of three
//! primaries with a replica each ([`RedisCluster`], made with `redis-cli --cluster
//! create`), and a primary with one replica watched by three Sentinels
//! ([`RedisSentinels`]). Both can lose their primary ([`RedisCluster::kill_primary_of`],
//! [`RedisSentinels::kill_primary`]) and report when a replica has taken over.
//!
//! Every node is a [`RedisProcess`] (append-only file fsynced on every write), killed
//! when dropped. Starting takes a second or two (the Cluster's slots are assigned and
//! gossiped, the Sentinels discover each other); each step is polled with a deadline.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::free_port;
use crate::redis::{RedisProcess, Reply, Role};

/// How long a topology may take to form, or to fail over.
pub const SETTLE_DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` every 10 ms until it answers `Ok`; panics after [`SETTLE_DEADLINE`]
/// with what it saw last.
fn settle(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    loop {
        let seen = match check() {
            Ok(()) => return,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {SETTLE_DEADLINE:?} waiting for {what}; saw {seen}"
        );
        // The interval between polls (nothing unparks this thread).
        thread::park_timeout(Duration::from_millis(10));
    }
}

/// The text of a reply (bulk or simple), or what it was instead.
fn text(reply: Reply) -> Result<String, String> {
    reply
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{reply:?}"))
}

/// A Redis Cluster: three primaries and three replicas on loopback.
pub struct RedisCluster {
    nodes: Vec<RedisProcess>,
}

impl RedisCluster {
    /// Starts six nodes, joins them with `redis-cli --cluster create
    /// --cluster-replicas 1`, and waits until every node says `cluster_state:ok`.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisProcess> = (0..6)
            .map(|_| {
                RedisProcess::start_as(Role::With(vec![
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-port".into(),
                    free_port().to_string(),
                    "--cluster-node-timeout".into(),
                    "1000".into(),
                    // A replica whose link broke a moment ago may still be promoted.
                    "--cluster-replica-validity-factor".into(),
                    "0".into(),
                ]))
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = create.output().unwrap_or_else(|e| {
            panic!("could not run redis-cli (Debian package redis-tools, which redis-server installs): {e}")
        });
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_healthy();
        cluster.wait_replicated();
        cluster
    }

    /// `redis+cluster://127.0.0.1:P1,…` with every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// The nodes, in creation order.
    pub fn nodes(&self) -> &[RedisProcess] {
        &self.nodes
    }

    /// Waits until every running node reports `cluster_state:ok` and the cluster
    /// has three primaries serving all slots.
    pub fn wait_healthy(&self) {
        settle("the cluster to be healthy", || {
            for node in self.nodes.iter().filter(|n| n.is_running()) {
                let info = text(node.command(&["CLUSTER", "INFO"]))?;
                if !info.contains("cluster_state:ok") {
                    return Err(format!("port {}: {info}", node.port()));
                }
            }
            Ok(())
        });
    }

    /// Waits until every primary has a replica in step (link up), as after
    /// [`RedisCluster::start`] and [`RedisCluster::restart`]: only then can a write
    /// waiting for one replica be confirmed.
    pub fn wait_replicated(&self) {
        settle("every primary to have a replica in step", || {
            for node in &self.nodes {
                let info = text(node.command(&["INFO", "replication"]))?;
                let in_step = if info.contains("role:master") {
                    !info.contains("connected_slaves:0")
                } else {
                    info.contains("master_link_status:up")
                };
                if !in_step {
                    return Err(format!("port {}: {info}", node.port()));
                }
            }
            Ok(())
        });
    }

    /// The index of the node serving `key`'s slot as primary now.
    pub fn primary_of(&self, key: &str) -> usize {
        self.try_primary_of(key)
            .unwrap_or_else(|seen| panic!("{seen}"))
    }

    /// The node serving `key`'s slot as primary, as the running nodes see it; `Err`
    /// with what they say when none does (while a failover is under way).
    fn try_primary_of(&self, key: &str) -> Result<usize, String> {
        let any = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .ok_or("no running node")?;
        let Reply::Integer(slot) = any.command(&["CLUSTER", "KEYSLOT", key]) else {
            return Err(format!("CLUSTER KEYSLOT {key}"));
        };
        let nodes = text(any.command(&["CLUSTER", "NODES"]))?;
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (from, to) = range.split_once('-').unwrap_or((range, range));
                matches!((from.parse::<i64>(), to.parse::<i64>()), (Ok(from), Ok(to)) if (from..=to).contains(&slot))
            });
            if serves {
                let port: Option<u16> = fields[1]
                    .split(['@', ':'])
                    .nth(1)
                    .and_then(|p| p.parse().ok());
                return self
                    .nodes
                    .iter()
                    .position(|n| Some(n.port()) == port)
                    .ok_or_else(|| format!("slot {slot} served by a node not ours: {line}"));
            }
        }
        Err(format!("no primary serves slot {slot}:\n{nodes}"))
    }

    /// Kills (SIGKILL) the primary serving `key` and waits until its replica has
    /// taken over (after the one-second node timeout) and the cluster is healthy
    /// again. Returns the killed node's index.
    pub fn kill_primary_of(&mut self, key: &str) -> usize {
        let index = self.primary_of(key);
        self.nodes[index].stop();
        settle(
            "a replica to take over the killed primary's slots",
            || match self.try_primary_of(key) {
                Ok(now) if now != index => Ok(()),
                Ok(_) => Err("the killed primary still serves them".into()),
                Err(seen) => Err(seen),
            },
        );
        self.wait_healthy();
        index
    }
}

impl RedisCluster {
    /// Starts node `index` again (same port and directory): it rejoins the cluster,
    /// as a replica if another node took over its slots meanwhile.
    pub fn restart(&mut self, index: usize) {
        self.nodes[index].restart();
        self.wait_healthy();
        self.wait_replicated();
    }
}

/// A primary, one replica and three Sentinels naming it [`RedisSentinels::MASTER`].
pub struct RedisSentinels {
    servers: Vec<RedisProcess>,
    sentinels: Vec<RedisProcess>,
}

impl RedisSentinels {
    /// The name the Sentinels know the primary by.
    pub const MASTER: &'static str = "sy";

    /// Starts the primary, its replica (waiting for the link) and three Sentinels
    /// (quorum 2, down after one second), and waits until each Sentinel sees the
    /// replica and the two other Sentinels.
    pub fn start() -> RedisSentinels {
        let primary = RedisProcess::start();
        let replica = RedisProcess::start_as(Role::With(vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port().to_string(),
        ]));
        settle("the replica to follow the primary", || {
            let info = text(replica.command(&["INFO", "replication"]))?;
            info.contains("master_link_status:up")
                .then_some(())
                .ok_or(info)
        });
        let config = format!(
            "sentinel monitor {m} 127.0.0.1 {port} 2\n\
             sentinel down-after-milliseconds {m} 1000\n\
             sentinel failover-timeout {m} 5000\n\
             sentinel parallel-syncs {m} 1\n",
            m = Self::MASTER,
            port = primary.port()
        );
        let sentinels: Vec<RedisProcess> = (0..3)
            .map(|_| RedisProcess::start_as(Role::Sentinel(config.clone())))
            .collect();
        let topology = RedisSentinels {
            servers: vec![primary, replica],
            sentinels,
        };
        for sentinel in &topology.sentinels {
            settle("each Sentinel to see the replica and the others", || {
                let Reply::Array(Some(fields)) =
                    sentinel.command(&["SENTINEL", "MASTER", Self::MASTER])
                else {
                    return Err("no master".into());
                };
                let fields: Vec<String> = fields.into_iter().filter_map(|f| text(f).ok()).collect();
                let field = |name: &str| {
                    fields
                        .iter()
                        .position(|f| f == name)
                        .and_then(|i| fields.get(i + 1))
                        .cloned()
                        .unwrap_or_default()
                };
                (field("num-slaves") == "1" && field("num-other-sentinels") == "2")
                    .then_some(())
                    .ok_or_else(|| fields.join(" "))
            });
        }
        topology
    }

    /// `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/sy`
    pub fn url(&self) -> String {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        format!("redis+sentinel://{}/{}", sentinels.join(","), Self::MASTER)
    }

    /// The port of the primary a running Sentinel names now.
    pub fn primary_port(&self) -> u16 {
        let sentinel = self
            .sentinels
            .iter()
            .find(|s| s.is_running())
            .expect("a running Sentinel");
        let Reply::Array(Some(addr)) =
            sentinel.command(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::MASTER])
        else {
            panic!("the Sentinels name no primary")
        };
        addr.into_iter()
            .nth(1)
            .and_then(|p| text(p).ok())
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }

    /// The two data nodes (primary and replica, in starting order).
    pub fn servers(&self) -> &[RedisProcess] {
        &self.servers
    }

    /// Starts every stopped data node again; the Sentinels make it a replica of the
    /// current primary. Waits until the primary has a replica in step again. The
    /// primary is asked of the Sentinels on every poll: they may fail over once more
    /// while the restarted node rejoins (a loaded machine can miss their deadline).
    pub fn restart_stopped(&mut self) {
        for server in self.servers.iter_mut().filter(|s| !s.is_running()) {
            server.restart();
        }
        settle("the primary to have a replica again", || {
            let port = self.primary_port();
            let primary = self
                .servers
                .iter()
                .find(|s| s.port() == port)
                .ok_or_else(|| format!("the Sentinels name {port}, not one of ours"))?;
            let info = text(primary.command(&["INFO", "replication"]))?;
            (info.contains("role:master") && info.contains("connected_slaves:1"))
                .then_some(())
                .ok_or(info)
        });
    }

    /// Kills (SIGKILL) the current primary and waits until the Sentinels name the
    /// replica and it answers as a primary. Returns the new primary's port.
    pub fn kill_primary(&mut self) -> u16 {
        let old = self.primary_port();
        let index = self
            .servers
            .iter()
            .position(|s| s.port() == old)
            .expect("the primary is ours");
        self.servers[index].stop();
        let mut new = old;
        settle("the Sentinels to promote the replica", || {
            new = self.primary_port();
            if new == old {
                return Err(format!("still {old}"));
            }
            let promoted = self
                .servers
                .iter()
                .find(|s| s.port() == new)
                .ok_or_else(|| format!("unknown primary {new}"))?;
            let info = text(promoted.command(&["INFO", "replication"]))?;
            info.contains("role:master").then_some(()).ok_or(info)
        });
        new
    }
}

/// Runs each async test function `$name(url: &str)` once per Redis deployment, each
/// started for it: as tests `$name::one_server` ([`RedisProcess`]), `$name::cluster`
/// ([`RedisCluster`]) and `$name::sentinels` ([`RedisSentinels`]). The functions must
/// be in scope where the macro is invoked.
#[macro_export]
macro_rules! on_every_redis {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn one_server() {
                let redis = $crate::redis::RedisProcess::start();
                super::$name(&redis.url()).await;
            }

            #[tokio::test]
            async fn cluster() {
                let redis = $crate::redis_ha::RedisCluster::start();
                super::$name(&redis.url()).await;
            }

            #[tokio::test]
            async fn sentinels() {
                let redis = $crate::redis_ha::RedisSentinels::start();
                super::$name(&redis.url()).await;
            }
        }
    )*};
}
