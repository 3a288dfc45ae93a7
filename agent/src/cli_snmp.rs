//! `coldaisle-agent snmp get|walk|probe`: SNMP commands for operators, with net-snmp's flags so
//! the commands they already know work unchanged, run through the agent's own SNMP client (so a
//! command that works here works in the daemon).
//!
//! ```text
//! coldaisle-agent snmp get -v 2c -c public 10.20.0.5 1.3.6.1.2.1.1.1.0
//! coldaisle-agent snmp walk -v 3 -u ops -l authPriv -a SHA-256 -A … -x AES -X … 10.20.0.5:161 1.3.6.1.2.1.47.1.1.1.1.7
//! coldaisle-agent snmp probe -v 3 -u ops --auth-passphrase-env A --priv-passphrase-file /etc/p 10.20.0.5
//! ```
//!
//! Output is one `OID = TYPE: value` line per varbind (net-snmp's numeric form); every failure
//! (timeout, unknown user, wrong passphrase, missing object) exits non-zero with the reason.

use anyhow::{anyhow, bail, Context as _};
use coldaisle_agent::snmp::row::{decode, find_row};
use coldaisle_agent::snmp::session::{error_status_name, SnmpClient, Target};
use coldaisle_agent::snmp::value::{format_oid, VarValue};
use coldaisle_agent::snmp::walk::walk;
use coldaisle_config::agent::parse_oid;
use coldaisle_config::error::KeyPath;
use coldaisle_config::profile::{ProfilePoint, Profiles};
use coldaisle_config::snmp::{
    point_spec, read_secret, AuthProtocol, PrivProtocol, RawSnmpPoint, RowSelector, SecurityLevel,
    SnmpSettings, SnmpVersion, UsmUser,
};
use coldaisle_config::Protocol;
use snmp2::Oid;
use std::path::PathBuf;
use std::time::Duration;

/// sysDescr.0.
const SYS_DESCR: &str = "1.3.6.1.2.1.1.1.0";
/// sysObjectID.0.
const SYS_OBJECT_ID: &str = "1.3.6.1.2.1.1.2.0";
/// sysName.0.
const SYS_NAME: &str = "1.3.6.1.2.1.1.5.0";

/// SNMP operator commands.
#[derive(Debug, clap::Subcommand)]
pub enum SnmpCommand {
    /// GET the given OIDs (like snmpget).
    Get(OidArgs),
    /// Walk each given subtree with GETBULK (GETNEXT for v1), like snmpbulkwalk.
    Walk(OidArgs),
    /// Identify the device (sysDescr, sysObjectID), try the matching profiles and print a
    /// ready-to-paste device config with the sensors found and their current values.
    Probe(ProbeArgs),
}

/// Connection flags, as net-snmp spells them.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnArgs {
    /// SNMP version: 1, 2c or 3.
    #[arg(short = 'v', default_value = "2c")]
    version: SnmpVersion,
    /// Community (v1, v2c).
    #[arg(short = 'c', default_value = "public")]
    community: String,
    /// SNMPv3 user.
    #[arg(short = 'u')]
    user: Option<String>,
    /// Security level: noAuthNoPriv, authNoPriv or authPriv (default: from the passphrases).
    #[arg(short = 'l')]
    level: Option<SecurityLevel>,
    /// Auth protocol: MD5, SHA, SHA-224, SHA-256, SHA-384, SHA-512.
    #[arg(short = 'a', default_value = "SHA")]
    auth_protocol: AuthProtocol,
    /// Auth passphrase (prefer --auth-passphrase-file or --auth-passphrase-env).
    #[arg(short = 'A')]
    auth_passphrase: Option<String>,
    /// File whose first line is the auth passphrase.
    #[arg(long)]
    auth_passphrase_file: Option<PathBuf>,
    /// Environment variable holding the auth passphrase.
    #[arg(long)]
    auth_passphrase_env: Option<String>,
    /// Privacy protocol: DES, AES, AES-192, AES-256.
    #[arg(short = 'x', default_value = "AES")]
    priv_protocol: PrivProtocol,
    /// Privacy passphrase (prefer --priv-passphrase-file or --priv-passphrase-env).
    #[arg(short = 'X')]
    priv_passphrase: Option<String>,
    /// File whose first line is the privacy passphrase.
    #[arg(long)]
    priv_passphrase_file: Option<PathBuf>,
    /// Environment variable holding the privacy passphrase.
    #[arg(long)]
    priv_passphrase_env: Option<String>,
    /// SNMPv3 context name.
    #[arg(short = 'n', default_value = "")]
    context: String,
    /// Timeout of one request in seconds.
    #[arg(short = 't', default_value_t = 1.0)]
    timeout: f64,
    /// Retries after a timeout.
    #[arg(short = 'r', default_value_t = 5)]
    retries: u32,
    /// GETBULK max-repetitions of walks (net-snmp's -Cr).
    #[arg(long = "max-repetitions", alias = "Cr", default_value_t = 10)]
    max_repetitions: u32,
}

/// `HOST[:PORT]` and OIDs.
#[derive(Debug, clap::Args)]
pub struct OidArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Agent address, HOST[:PORT] (port 161 by default).
    host: String,
    /// Numeric OIDs (a leading dot is accepted).
    #[arg(required = true)]
    oids: Vec<String>,
}

/// `HOST[:PORT]`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Agent address, HOST[:PORT] (port 161 by default).
    host: String,
}

/// Runs an SNMP command.
pub fn run(command: SnmpCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match command {
            SnmpCommand::Get(args) => get(args).await,
            SnmpCommand::Walk(args) => walk_cmd(args).await,
            SnmpCommand::Probe(args) => probe(args).await,
        }
    })
}

fn address(host: &str) -> String {
    let host = host.trim().trim_start_matches("udp:");
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && !h.ends_with(':') && p.parse::<u16>().is_ok());
    if has_port {
        host.to_string()
    } else if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:161")
    } else {
        format!("{host}:161")
    }
}

fn client(conn: &ConnArgs, host: &str) -> anyhow::Result<SnmpClient> {
    if !(conn.timeout > 0.0 && conn.timeout <= 600.0) {
        bail!("-t {}: want seconds above 0 and at most 600", conn.timeout);
    }
    let mut settings = SnmpSettings::defaults(Duration::from_secs(1));
    settings.version = conn.version;
    settings.request_timeout = Duration::from_secs_f64(conn.timeout);
    settings.retries = conn.retries;
    settings.max_repetitions = conn.max_repetitions.clamp(1, 200);
    if conn.version == SnmpVersion::V3 {
        let user = conn
            .user
            .clone()
            .ok_or_else(|| anyhow!("-v 3 needs a user (-u USER)"))?;
        let auth = read_secret(
            conn.auth_passphrase.as_deref(),
            conn.auth_passphrase_file.as_deref(),
            conn.auth_passphrase_env.as_deref(),
        )
        .map_err(|e| anyhow!("auth passphrase: {e}"))?;
        let privacy = read_secret(
            conn.priv_passphrase.as_deref(),
            conn.priv_passphrase_file.as_deref(),
            conn.priv_passphrase_env.as_deref(),
        )
        .map_err(|e| anyhow!("priv passphrase: {e}"))?;
        let level = conn.level.unwrap_or(match (&auth, &privacy) {
            (Some(_), Some(_)) => SecurityLevel::AuthPriv,
            (Some(_), None) => SecurityLevel::AuthNoPriv,
            _ => SecurityLevel::NoAuthNoPriv,
        });
        if level != SecurityLevel::NoAuthNoPriv && auth.is_none() {
            bail!("-l {} needs an auth passphrase (-A, --auth-passphrase-file or --auth-passphrase-env)", level.name());
        }
        if level == SecurityLevel::AuthPriv && privacy.is_none() {
            bail!("-l authPriv needs a priv passphrase (-X, --priv-passphrase-file or --priv-passphrase-env)");
        }
        settings.usm = Some(UsmUser {
            user,
            level,
            auth_protocol: conn.auth_protocol,
            auth_passphrase: auth,
            priv_protocol: conn.priv_protocol,
            priv_passphrase: privacy,
            context: conn.context.clone(),
        });
    }
    Ok(SnmpClient::new(Target {
        address: address(host),
        community: conn.community.clone(),
        settings,
    }))
}

fn oid(text: &str) -> anyhow::Result<(Vec<u64>, Oid<'static>)> {
    let arcs = parse_oid(text)
        .ok_or_else(|| anyhow!("`{text}` is not a numeric OID like 1.3.6.1.2.1.1.1.0"))?;
    let encoded = Oid::from(&arcs).map_err(|e| anyhow!("OID {text} cannot be encoded: {e:?}"))?;
    Ok((arcs, encoded))
}

/// Prints one output line; a closed stdout (`| head`) ends the command with an error, not a panic.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    writeln!(std::io::stdout().lock(), "{text}").context("writing to stdout")
}

fn line(oid: &[u64], value: &VarValue) -> String {
    format!(".{} = {value}", format_oid(oid))
}

async fn get(args: OidArgs) -> anyhow::Result<()> {
    let mut client = client(&args.conn, &args.host)?;
    let mut oids = Vec::new();
    for text in &args.oids {
        oids.push(oid(text)?.1);
    }
    let response = client.get(&oids).await?;
    if response.error_status != 0 {
        let which = usize::try_from(response.error_index)
            .ok()
            .and_then(|i| args.oids.get(i.wrapping_sub(1)))
            .map_or(String::new(), |o| format!(" (failed object: {o})"));
        bail!(
            "error in packet: {}{which}",
            error_status_name(response.error_status)
        );
    }
    let mut missing = 0;
    for (oid, value) in &response.varbinds {
        emit(&line(oid, value))?;
        missing += usize::from(value.is_exception());
    }
    if missing > 0 {
        bail!(
            "{missing} of {} OIDs have no value on the agent",
            oids.len()
        );
    }
    Ok(())
}

async fn walk_cmd(args: OidArgs) -> anyhow::Result<()> {
    let mut client = client(&args.conn, &args.host)?;
    for text in &args.oids {
        let (root, _) = oid(text)?;
        let rows = walk(&mut client, &root).await?;
        if rows.is_empty() {
            println!(
                ".{} = No Such Object available on this agent at this OID",
                format_oid(&root)
            );
        }
        for (oid, value) in &rows {
            println!("{}", line(oid, value));
        }
    }
    Ok(())
}

/// The vendor of an enterprise OID (`1.3.6.1.4.1.<n>…`) and the profiles worth trying first.
fn vendor(sys_object_id: &[u64]) -> (&'static str, &'static [&'static str]) {
    match sys_object_id {
        [1, 3, 6, 1, 4, 1, 318, ..] => (
            "APC / Schneider Electric",
            &["apc-rpdu2", "apc-env-probe", "apc-inrow-snmp", "ups-mib"],
        ),
        [1, 3, 6, 1, 4, 1, 13742, ..] => ("Raritan", &["raritan-px2", "entity-sensor"]),
        [1, 3, 6, 1, 4, 1, 534, ..] => ("Eaton", &["eaton-xups", "ups-mib"]),
        [1, 3, 6, 1, 4, 1, 476, ..] => ("Liebert / Vertiv", &["liebert-env", "ups-mib"]),
        [1, 3, 6, 1, 4, 1, 8072, ..] => ("net-snmp", &[]),
        [1, 3, 6, 1, 4, 1, 9, ..] => ("Cisco", &["entity-sensor"]),
        _ => ("unknown vendor", &[]),
    }
}

async fn probe(args: ProbeArgs) -> anyhow::Result<()> {
    let mut client = client(&args.conn, &args.host)?;
    let system: Vec<Oid<'static>> = [SYS_DESCR, SYS_OBJECT_ID, SYS_NAME]
        .iter()
        .map(|t| oid(t).map(|o| o.1))
        .collect::<anyhow::Result<_>>()?;
    let response = client.get(&system).await?;
    let value = |i: usize| response.varbinds.get(i).map(|(_, v)| v.clone());
    let descr = value(0).map_or_else(String::new, |v| v.text());
    let object_id = match value(1) {
        Some(VarValue::ObjectIdentifier(arcs)) => arcs,
        _ => Vec::new(),
    };
    let name = value(2).map_or_else(String::new, |v| v.text());
    let (vendor_name, preferred) = vendor(&object_id);
    println!("# {} ({vendor_name})", client.target().address);
    println!("# sysDescr:    {descr}");
    println!("# sysObjectID: .{}", format_oid(&object_id));
    println!("# sysName:     {name}");

    let profiles = Profiles::builtin().map_err(|p| anyhow!("built-in profiles: {}", p.message))?;
    let mut order: Vec<&str> = preferred.to_vec();
    for n in profiles.names() {
        if !order.contains(&n) {
            order.push(n);
        }
    }
    let mut best: Option<(&str, Vec<Found>)> = None;
    for profile_name in order {
        let Some(profile) = profiles.get(profile_name) else {
            continue;
        };
        if profile.protocol != Protocol::Snmp {
            continue;
        }
        let mut found = Vec::new();
        for point in &profile.points {
            found.extend(probe_point(&mut client, point).await?);
        }
        println!(
            "# profile {profile_name}: {} of {} points answer",
            found.len(),
            profile.points.len()
        );
        if !found.is_empty() && best.as_ref().is_none_or(|(_, b)| found.len() > b.len()) {
            best = Some((profile_name, found));
        }
    }
    let Some((profile_name, points)) = best else {
        bail!(
            "no built-in profile matches {} ({vendor_name}); walk the vendor MIB with `coldaisle-agent snmp walk` and write the points by hand",
            client.target().address
        );
    };
    println!();
    print!(
        "{}",
        snippet(&args, client.target(), &name, profile_name, &points)
    );
    Ok(())
}

/// A profile point that answered: which point, which row (for tables), its OID and value.
struct Found {
    /// Profile point name.
    point: String,
    /// Row name (points chosen by a naming column).
    row: Option<String>,
    /// The value's OID.
    oid: String,
    /// Current value after the profile's decode, scale and offset.
    value: f64,
}

/// Rows of a naming column a probe reports at most per point.
const PROBE_MAX_ROWS: usize = 16;

fn slug(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches('-').to_string()
}

/// Reads one profile point: a scalar, a fixed row, or every named row of its naming column.
async fn probe_point(client: &mut SnmpClient, point: &ProfilePoint) -> anyhow::Result<Vec<Found>> {
    let Some(text) = &point.oid else {
        return Ok(Vec::new());
    };
    let (column, _) = oid(text)?;
    let base = point.snmp.clone().unwrap_or_default();
    let mut candidates: Vec<(Option<String>, RawSnmpPoint)> = Vec::new();
    match (&base.name_column, &base.index) {
        (Some(name_column), None) => {
            let (name_column, _) = oid(name_column)?;
            for (_, name) in walk(client, &name_column)
                .await?
                .iter()
                .take(PROBE_MAX_ROWS)
            {
                let name = name.text();
                let own = RawSnmpPoint {
                    row_name: Some(name.clone()),
                    ..RawSnmpPoint::default()
                };
                candidates.push((Some(name), own));
            }
        }
        _ => candidates.push((None, RawSnmpPoint::default())),
    }
    let mut found = Vec::new();
    for (row_name, own) in candidates {
        let spec = point_spec(&column, own, base.clone(), &KeyPath::default())
            .map_err(|p| anyhow!("profile point {}: {}", point.name, p.message))?;
        let index = match &spec.row {
            RowSelector::Instance => Vec::new(),
            RowSelector::Index(index) => index.clone(),
            RowSelector::Name {
                column: names,
                name,
            } => {
                let rows = walk(client, names).await?;
                match find_row(&rows, names, name) {
                    Ok(index) => index,
                    Err(_) => continue,
                }
            }
        };
        let mut oids = Vec::new();
        for c in std::iter::once(&column).chain(&spec.extra_columns) {
            let mut arcs = c.clone();
            arcs.extend_from_slice(&index);
            oids.push(oid(&format_oid(&arcs))?.1);
        }
        let answer = client.get(&oids).await?;
        if answer.error_status != 0 || answer.varbinds.len() != oids.len() {
            continue;
        }
        let values: Vec<VarValue> = answer.varbinds.iter().map(|(_, v)| v.clone()).collect();
        let Some((value, extras)) = values.split_first() else {
            continue;
        };
        if let Ok(raw) = decode(spec.decode, value, extras) {
            let mut arcs = column.clone();
            arcs.extend_from_slice(&index);
            found.push(Found {
                point: point.name.clone(),
                row: row_name,
                oid: format_oid(&arcs),
                value: raw * point.scale.unwrap_or(1.0) + point.offset.unwrap_or(0.0),
            });
        }
    }
    Ok(found)
}

/// A `[[devices]]` block for the agent config; secrets are never printed, only where to put them.
fn snippet(
    args: &ProbeArgs,
    target: &Target,
    sys_name: &str,
    profile: &str,
    points: &[Found],
) -> String {
    let id: String = sys_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let id = if id.is_empty() {
        "device-1".to_string()
    } else {
        id
    };
    let mut out = format!(
        "[[devices]]\nid = \"{id}\"\nprotocol = \"snmp\"\naddress = \"{}\"\nzone = \"CHANGE-ME\"\nprofile = \"{profile}\"\n",
        target.address
    );
    match (&target.settings.version, &target.settings.usm) {
        (SnmpVersion::V3, Some(usm)) => {
            out.push_str(&format!(
                "[devices.snmp]\nversion = \"3\"\nuser = \"{}\"\nlevel = \"{}\"\n",
                usm.user,
                usm.level.name()
            ));
            if usm.level != SecurityLevel::NoAuthNoPriv {
                out.push_str(&format!(
                    "auth_protocol = \"{}\"\nauth_passphrase_file = \"/etc/coldaisle/snmp-auth\"   # or auth_passphrase_env\n",
                    usm.auth_protocol.name()
                ));
            }
            if usm.level == SecurityLevel::AuthPriv {
                out.push_str(&format!(
                    "priv_protocol = \"{}\"\npriv_passphrase_file = \"/etc/coldaisle/snmp-priv\"   # or priv_passphrase_env\n",
                    usm.priv_protocol.name()
                ));
            }
        }
        (version, _) => {
            out.push_str(&format!("community = \"{}\"\n", args.conn.community));
            if *version == SnmpVersion::V1 {
                out.push_str("[devices.snmp]\nversion = \"1\"\n");
            }
        }
    }
    for found in points {
        let suffix = found
            .row
            .as_ref()
            .map_or(String::new(), |r| format!("-{}", slug(r)));
        out.push_str(&format!(
            "[[devices.points]]\nsensor = \"{id}-{}{suffix}\"\nprofile_point = \"{}\"   # .{} = {} now\n",
            found.point.replace('_', "-"),
            found.point,
            found.oid,
            found.value
        ));
        if let Some(row) = &found.row {
            out.push_str(&format!("snmp = {{ row_name = {row:?} }}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_defaults_like_net_snmp() {
        assert_eq!(address("10.0.0.5"), "10.0.0.5:161");
        assert_eq!(address("10.0.0.5:1161"), "10.0.0.5:1161");
        assert_eq!(address("udp:pdu1:162"), "pdu1:162");
        assert_eq!(address("::1"), "[::1]:161");
    }

    #[test]
    fn vendors_by_enterprise() {
        assert_eq!(
            vendor(&[1, 3, 6, 1, 4, 1, 318, 1, 3, 4, 5]).0,
            "APC / Schneider Electric"
        );
        assert_eq!(vendor(&[1, 3, 6, 1, 4, 1, 13742, 6]).0, "Raritan");
        assert_eq!(vendor(&[1, 3, 6]).0, "unknown vendor");
    }
}
