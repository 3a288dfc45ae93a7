//! Which configured device a notification came from: a [`SourceTable`] maps source IP
//! addresses to SNMP devices, built (pure, [`SourceTable::build`]) from the devices and the
//! addresses their host names resolved to ([`resolve_sources`], DNS via
//! `tokio::net::lookup_host`, one timeout per name).
//!
//! Invariants:
//! - A device whose host is an IP literal (`10.0.0.5:161`, `[fd00::5]:161`) is matched by
//!   that address without any lookup. A device configured by host name is matched by every
//!   address the name resolved to.
//! - A name that does not resolve (error, no address, or no answer within the timeout) is
//!   logged with the device id and host; that device gets no notifications until a later
//!   lookup succeeds, and no other device is affected. A name that resolved before keeps its
//!   last addresses while a later lookup fails (a DNS hiccup drops nothing).
//! - Sources are compared canonically: an IPv4-mapped IPv6 source (`::ffff:10.0.0.5`, seen
//!   on a dual-stack socket) matches the IPv4 device.
//! - When two devices share an address, the first in configuration order gets the
//!   notifications.
//! - The table holds indices into the device list it was built from; it travels with that
//!   list in [`TrapContext`] and is replaced together with it.
//!
//! The agent's listener task (`traps.rs`) builds the IP-literal table at start and on reload,
//! then resolves host names at once, after every reload and every [`REFRESH_EVERY`], so a DNS
//! change is picked up without a restart.

use super::trap::TrapContext;
use coldaisle_config::{Device, Protocol};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;

/// How long one host name may take to resolve.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often host names are resolved again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);

/// Source address → configured SNMP device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceTable {
    /// Each known source address: index of its device in the list the table was built from,
    /// and the device's id (checked on lookup, so a table never names another list's device).
    by_ip: HashMap<IpAddr, (usize, String)>,
    /// The addresses each host name resolved to, kept for the next build in case a lookup
    /// then fails.
    names: BTreeMap<String, Vec<IpAddr>>,
    /// Devices left without an address: (device id, host).
    unresolved: Vec<(String, String)>,
}

/// The host part of a device address: `host:port` → `host`, `[v6]:port` → `v6`, and an
/// address without a port as it is.
pub fn host_of(address: &str) -> &str {
    let host = match address.rsplit_once(':') {
        // A bare IPv6 literal has more than one ':' and no brackets: no port to strip.
        Some((host, _)) if !host.contains(':') || host.starts_with('[') => host,
        _ => address,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

fn literal(host: &str) -> Option<IpAddr> {
    host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

fn snmp_hosts(devices: &[Device]) -> impl Iterator<Item = (usize, &Device, &str)> {
    devices
        .iter()
        .enumerate()
        .filter(|(_, d)| d.protocol == Protocol::Snmp)
        .map(|(i, d)| (i, d, host_of(&d.address)))
}

impl SourceTable {
    /// The host names (not IP literals) of the SNMP devices, each once, sorted.
    pub fn names(devices: &[Device]) -> Vec<String> {
        snmp_hosts(devices)
            .filter(|(_, _, host)| literal(host).is_none())
            .map(|(_, _, host)| host.to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// The table of `devices`: IP literals as they are, host names by `resolved` (name →
    /// addresses), or else by `previous`'s addresses of the same name.
    pub fn build(
        devices: &[Device],
        resolved: &HashMap<String, Vec<IpAddr>>,
        previous: Option<&SourceTable>,
    ) -> SourceTable {
        let mut table = SourceTable::default();
        for (index, device, host) in snmp_hosts(devices) {
            let addresses = match literal(host) {
                Some(ip) => vec![ip],
                None => {
                    let known = resolved
                        .get(host)
                        .filter(|ips| !ips.is_empty())
                        .or_else(|| previous.and_then(|p| p.names.get(host)));
                    let Some(ips) = known else {
                        table.unresolved.push((device.id.clone(), host.to_string()));
                        continue;
                    };
                    let ips: Vec<IpAddr> = ips.iter().map(IpAddr::to_canonical).collect();
                    table.names.insert(host.to_string(), ips.clone());
                    ips
                }
            };
            for ip in addresses {
                table
                    .by_ip
                    .entry(ip)
                    .or_insert_with(|| (index, device.id.clone()));
            }
        }
        table
    }

    /// The device of `devices` (the list the table was built from) that `source` belongs to.
    pub fn device<'a>(&self, source: IpAddr, devices: &'a [Device]) -> Option<&'a Device> {
        let (index, id) = self.by_ip.get(&source.to_canonical())?;
        devices.get(*index).filter(|d| &d.id == id)
    }

    /// Devices without any address: (device id, host).
    pub fn unresolved(&self) -> &[(String, String)] {
        &self.unresolved
    }

    /// How many source addresses the table knows.
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    /// True when no address is known.
    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }
}

impl TrapContext {
    /// The configured device a notification from `source` belongs to.
    pub fn device(&self, source: IpAddr) -> Option<&Device> {
        self.sources.device(source, &self.devices)
    }
}

/// Resolves the host names of `devices` (all at once, each within `timeout`) and builds their
/// table; a name that fails keeps `previous`'s addresses when it had some. Every failure is
/// logged with the device id and host.
pub async fn resolve_sources(
    devices: &[Device],
    previous: Option<&SourceTable>,
    timeout: Duration,
) -> SourceTable {
    let mut lookups = tokio::task::JoinSet::new();
    for name in SourceTable::names(devices) {
        lookups.spawn(async move {
            let result = tokio::time::timeout(timeout, tokio::net::lookup_host((name.as_str(), 0)))
                .await
                .map_err(|_| format!("no answer within {timeout:?}"))
                .and_then(|r| r.map_err(|e| e.to_string()))
                .map(|addresses| {
                    let mut ips: Vec<IpAddr> = addresses.map(|a| a.ip().to_canonical()).collect();
                    ips.sort();
                    ips.dedup();
                    ips
                })
                .and_then(|ips| match ips.is_empty() {
                    true => Err("no address".to_string()),
                    false => Ok(ips),
                });
            (name, result)
        });
    }
    let mut resolved = HashMap::new();
    let mut failed = HashMap::new();
    while let Some(joined) = lookups.join_next().await {
        match joined {
            Ok((name, Ok(ips))) => {
                resolved.insert(name, ips);
            }
            Ok((name, Err(error))) => {
                failed.insert(name, error);
            }
            Err(e) => tracing::error!(error = %e, "host name lookup task failed"),
        }
    }
    let table = SourceTable::build(devices, &resolved, previous);
    for (_, device, host) in snmp_hosts(devices) {
        let Some(error) = failed.get(host) else {
            continue;
        };
        let kept = table.names.get(host).map(Vec::len).unwrap_or(0);
        tracing::warn!(
            device = %device.id,
            host,
            error = %error,
            kept_addresses = kept,
            "SNMP device host name does not resolve: its notifications are dropped until it does"
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices(text: &str) -> Vec<Device> {
        let config = coldaisle_config::AgentConfig::from_str(
            &format!(
                "agent_id = \"t\"\nsite = \"lab\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"h\"\n{text}"
            ),
            std::path::Path::new("sources.toml"),
        )
        .unwrap();
        config.devices
    }

    fn snmp(id: &str, address: &str) -> String {
        format!(
            "[[devices]]\nid = \"{id}\"\nprotocol = \"snmp\"\naddress = \"{address}\"\nzone = \"Z1\"\n\
             [[devices.points]]\nsensor = \"{id}-t\"\nkind = \"inlet_temp\"\noid = \"1.3.6.1.2.1.1.3.0\"\n"
        )
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn host_part_of_addresses() {
        assert_eq!(host_of("10.0.0.5:161"), "10.0.0.5");
        assert_eq!(host_of("[fd00::5]:161"), "fd00::5");
        assert_eq!(host_of("pdu-7.dc1:1161"), "pdu-7.dc1");
        assert_eq!(host_of("localhost"), "localhost");
        assert_eq!(host_of("fd00::5"), "fd00::5");
    }

    #[test]
    fn literals_and_resolved_names_map_to_their_device_and_others_do_not() {
        let devices = devices(&format!(
            "{}{}{}{}",
            snmp("pdu-1", "10.0.0.5:161"),
            snmp("pdu-2", "localhost:1161"),
            snmp("pdu-3", "nowhere.invalid"),
            snmp("pdu-4", "[fd00::4]:161"),
        ));
        assert_eq!(
            SourceTable::names(&devices),
            vec!["localhost".to_string(), "nowhere.invalid".to_string()]
        );
        let resolved = HashMap::from([("localhost".to_string(), vec![ip("127.0.0.1"), ip("::1")])]);
        let table = SourceTable::build(&devices, &resolved, None);
        let id = |source: &str| table.device(ip(source), &devices).map(|d| d.id.as_str());
        assert_eq!(id("10.0.0.5"), Some("pdu-1"));
        assert_eq!(id("::ffff:10.0.0.5"), Some("pdu-1"), "IPv4-mapped source");
        assert_eq!(id("127.0.0.1"), Some("pdu-2"));
        assert_eq!(id("::1"), Some("pdu-2"));
        assert_eq!(id("fd00::4"), Some("pdu-4"));
        assert_eq!(id("10.0.0.6"), None);
        assert_eq!(
            table.unresolved(),
            &[("pdu-3".to_string(), "nowhere.invalid".to_string())]
        );
        assert_eq!(table.len(), 4);

        // A later failed lookup keeps the addresses the name had; a new name has none yet.
        let again = SourceTable::build(&devices, &HashMap::new(), Some(&table));
        assert_eq!(again, table);
        assert!(SourceTable::build(&devices, &HashMap::new(), None)
            .device(ip("127.0.0.1"), &devices)
            .is_none());
    }

    #[test]
    fn first_device_wins_a_shared_address_and_a_table_never_names_another_list() {
        let devices = devices(&format!(
            "{}{}",
            snmp("a", "10.0.0.9:161"),
            snmp("b", "10.0.0.9:1161")
        ));
        let table = SourceTable::build(&devices, &HashMap::new(), None);
        assert_eq!(
            table
                .device(ip("10.0.0.9"), &devices)
                .map(|d| d.id.as_str()),
            Some("a")
        );
        let others = self::devices(&snmp("c", "10.0.0.9:161"));
        assert!(table.device(ip("10.0.0.9"), &others).is_none());
    }

    #[tokio::test]
    async fn localhost_resolves_and_an_unknown_name_is_only_that_device_s_loss() {
        let devices = devices(&format!(
            "{}{}{}",
            snmp("pdu-1", "10.0.0.5:161"),
            snmp("pdu-2", "localhost:1161"),
            snmp("pdu-3", "nowhere.invalid:161"),
        ));
        let table = resolve_sources(&devices, None, Duration::from_secs(3)).await;
        let id = |source: &str| table.device(ip(source), &devices).map(|d| d.id.as_str());
        assert_eq!(id("127.0.0.1"), Some("pdu-2"));
        assert_eq!(id("10.0.0.5"), Some("pdu-1"));
        assert_eq!(
            table.unresolved(),
            &[("pdu-3".to_string(), "nowhere.invalid".to_string())]
        );
    }
}
