//! Which Redis deployment a URL names.

use std::fmt::Write;
use std::str::FromStr;

use redis::{ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

/// The default port of a Sentinel.
const SENTINEL_PORT: u16 = 26379;

/// A Redis deployment:
///
/// - `redis://[user:password@]host:port[/db]` — one server;
/// - `redis+cluster://[user:password@]host:port,host:port,…` (or several `redis://`
///   URLs separated by commas) — a Redis Cluster, by some of its nodes (seeds);
/// - `redis+sentinel://[user:password@]host[:port],host[:port],…/MASTER[/db]` — the
///   primary that the Sentinels at those addresses (port 26379 unless given) name
///   `MASTER`; the credentials are the Redis nodes', the Sentinels take none.
#[derive(Debug, Clone)]
pub enum Target {
    /// One server.
    Single(ConnectionInfo),
    /// A Redis Cluster's seed nodes.
    Cluster(Vec<ConnectionInfo>),
    /// A Sentinel-managed primary.
    Sentinel {
        /// The Sentinels.
        sentinels: Vec<ConnectionInfo>,
        /// The name they know the primary by.
        master: String,
        /// Database and credentials for the primary.
        node: RedisConnectionInfo,
    },
}

/// A URL that names no Redis deployment, and why.
#[derive(Debug, thiserror::Error)]
#[error("bad Redis URL `{url}`: {reason}")]
pub struct BadUrl {
    /// The URL, password masked.
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

/// `url` with the password between `:` and `@` replaced by `***`.
fn masked(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((auth, hosts)) => match auth.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{hosts}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl FromStr for Target {
    type Err = BadUrl;

    fn from_str(url: &str) -> Result<Target, BadUrl> {
        let bad = |reason: String| BadUrl {
            url: masked(url),
            reason,
        };
        let one = |node: &str| -> Result<ConnectionInfo, BadUrl> {
            node.into_connection_info()
                .map_err(|e| bad(format!("`{}`: {e}", masked(node))))
        };
        if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            let (auth, rest) = match rest.rsplit_once('@') {
                Some((auth, rest)) => (Some(auth), rest),
                None => (None, rest),
            };
            let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
            let mut path = path.trim_end_matches('/').split('/');
            let master = path.next().unwrap_or_default();
            if master.is_empty() {
                return Err(bad(
                    "name the primary after the Sentinels: redis+sentinel://host:26379,…/MASTER"
                        .into(),
                ));
            }
            let db = path.next().unwrap_or("0");
            if path.next().is_some() {
                return Err(bad("the path is /MASTER or /MASTER/DB".into()));
            }
            let sentinels = nodes(hosts, SENTINEL_PORT)
                .map(|host| one(&format!("redis://{host}")))
                .collect::<Result<Vec<_>, _>>()?;
            let auth = auth.map(|a| format!("{a}@")).unwrap_or_default();
            let node = one(&format!("redis://{auth}localhost/{db}"))?.redis;
            if sentinels.is_empty() {
                return Err(bad("no Sentinel addresses".into()));
            }
            return Ok(Target::Sentinel {
                sentinels,
                master: master.to_owned(),
                node,
            });
        }
        let seeds = if let Some(rest) = url.strip_prefix("redis+cluster://") {
            let (auth, hosts) = match rest.rsplit_once('@') {
                Some((auth, hosts)) => (format!("{auth}@"), hosts),
                None => (String::new(), rest),
            };
            let hosts = hosts.trim_end_matches('/');
            if hosts.contains('/') {
                return Err(bad(
                    "a Cluster has no databases: no path after the nodes".into()
                ));
            }
            nodes(hosts, 6379)
                .map(|host| one(&format!("redis://{auth}{host}")))
                .collect::<Result<Vec<_>, _>>()?
        } else if url.contains(',') {
            url.split(',')
                .map(str::trim)
                .map(one)
                .collect::<Result<Vec<_>, _>>()?
        } else {
            return one(url).map(Target::Single);
        };
        if seeds.is_empty() {
            return Err(bad("no Cluster nodes".into()));
        }
        Ok(Target::Cluster(seeds))
    }
}

/// `host[:port]` items of a comma-separated list, with `default` as the port.
fn nodes(hosts: &str, default: u16) -> impl Iterator<Item = String> + '_ {
    hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(move |host| {
            let has_port = host
                .rsplit_once(':')
                .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
            if has_port {
                host.to_owned()
            } else {
                format!("{host}:{default}")
            }
        })
}

impl Target {
    /// What it is and where, for logs and errors (never a password).
    pub fn describe(&self) -> String {
        let list = |infos: &[ConnectionInfo]| {
            infos.iter().fold(String::new(), |mut out, info| {
                let sep = if out.is_empty() { "" } else { ", " };
                let _ = write!(out, "{sep}{}", info.addr);
                out
            })
        };
        match self {
            Target::Single(info) => format!("redis {} db {}", info.addr, info.redis.db),
            Target::Cluster(seeds) => format!("redis cluster (seeds {})", list(seeds)),
            Target::Sentinel {
                sentinels, master, ..
            } => format!("redis primary `{master}` of sentinels {}", list(sentinels)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Target {
        url.parse().unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn one_server() {
        let Target::Single(info) = parse("redis://127.0.0.1:6380/2") else {
            panic!("single")
        };
        assert_eq!(info.redis.db, 2);
        assert_eq!(info.addr.to_string(), "127.0.0.1:6380");
    }

    #[test]
    fn cluster_seeds_in_either_spelling() {
        for url in [
            "redis+cluster://u:secret@127.0.0.1:7000,127.0.0.1:7001/",
            "redis://u:secret@127.0.0.1:7000,redis://u:secret@127.0.0.1:7001",
        ] {
            let Target::Cluster(seeds) = parse(url) else {
                panic!("cluster: {url}")
            };
            assert_eq!(seeds.len(), 2, "{url}");
            assert_eq!(seeds[1].addr.to_string(), "127.0.0.1:7001");
            assert_eq!(seeds[0].redis.password.as_deref(), Some("secret"));
        }
        assert_eq!(
            parse("redis+cluster://a,b:7001").describe(),
            "redis cluster (seeds a:6379, b:7001)"
        );
    }

    #[test]
    fn sentinels_name_their_primary() {
        let Target::Sentinel {
            sentinels,
            master,
            node,
        } = parse("redis+sentinel://:pw@10.0.0.1,10.0.0.2:5000/mymaster/3")
        else {
            panic!("sentinel")
        };
        assert_eq!(master, "mymaster");
        assert_eq!(node.db, 3);
        assert_eq!(node.password.as_deref(), Some("pw"));
        let addrs: Vec<String> = sentinels.iter().map(|s| s.addr.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.1:26379", "10.0.0.2:5000"]);
        assert!(sentinels.iter().all(|s| s.redis.password.is_none()));
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_the_password() {
        for (url, says) in [
            ("redis+sentinel://u:hunter2@h1,h2", "name the primary"),
            ("redis+sentinel://h1/m/0/x", "/MASTER or /MASTER/DB"),
            ("redis+cluster://h1,h2/3", "no databases"),
            ("redis+cluster://", "no Cluster nodes"),
            ("http://u:hunter2@h1", "http"),
        ] {
            let error = url.parse::<Target>().expect_err(url).to_string();
            assert!(error.contains(says), "{url}: {error}");
            assert!(!error.contains("hunter2"), "{url}: {error}");
        }
    }
}
