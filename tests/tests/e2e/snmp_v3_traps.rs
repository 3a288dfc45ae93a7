//! SNMPv3 notifications from net-snmp's `snmptrap` and `snmpinform` into the agent's listener:
//! traps under the sender's engine id and informs after engine discovery against ours, across
//! auth and priv protocols; a wrong passphrase or an unknown user is refused (an inform with it
//! is not acknowledged, so `snmpinform` fails) without disturbing the next good notification.

use super::support::net_snmp_async as net_snmp;
use anyhow::{Context, Result};
use coldaisle_agent::snmp::trap::{listen, TrapContext, TrapEvent};
use coldaisle_agent::snmp::trap_sources::SourceTable;
use coldaisle_agent::snmp::trap_v3::V3Settings;
use coldaisle_config::snmp::{AuthProtocol, PrivProtocol, SecurityLevel, UsmUser};
use coldaisle_config::AgentConfig;
use std::path::Path;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

fn user(name: &str, auth: AuthProtocol, privacy: PrivProtocol) -> UsmUser {
    UsmUser {
        user: name.into(),
        level: SecurityLevel::AuthPriv,
        auth_protocol: auth,
        auth_passphrase: Some("auth-pass-1".into()),
        priv_protocol: privacy,
        priv_passphrase: Some("priv-pass-1".into()),
        context: String::new(),
    }
}

async fn next(rx: &mut mpsc::Receiver<TrapEvent>, what: &str) -> Result<TrapEvent> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .with_context(|| format!("no event for {what}"))?
        .with_context(|| format!("listener ended before {what}"))
}

#[tokio::test]
async fn v3_traps_and_informs_from_net_snmp_are_authenticated_and_acknowledged() -> Result<()> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let to = format!("127.0.0.1:{}", socket.local_addr()?.port());
    let text =
        "agent_id = \"t\"\nsite = \"lab\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"h\"\n\
        [[devices]]\nid = \"crac-2\"\nprotocol = \"snmp\"\naddress = \"127.0.0.1\"\nzone = \"Z2\"\n\
        [[devices.points]]\nsensor = \"t2\"\nkind = \"inlet_temp\"\noid = \"1.3.6.1.2.1.1.3.0\"\n";
    let config = AgentConfig::from_str(text, Path::new("traps.toml"))?;
    let ours = b"\x80\x00\x00\x00\x04coldaisle-e2e".to_vec();
    let (tx, mut rx) = mpsc::channel(8);
    let (stop, stopped) = watch::channel(false);
    let (_context, context) = watch::channel(std::sync::Arc::new(TrapContext {
        sources: SourceTable::build(&config.devices, &Default::default(), None),
        devices: config.devices.clone(),
        communities: vec!["public".into()],
        v3: V3Settings {
            engine_id: ours,
            users: vec![
                user("ops", AuthProtocol::Sha256, PrivProtocol::Aes128),
                user("legacy", AuthProtocol::Md5, PrivProtocol::Des),
                user("strong", AuthProtocol::Sha512, PrivProtocol::Aes256),
            ],
        },
    }));
    let listener = tokio::spawn(listen(socket, context, tx, stopped));
    let sender_engine = "0x80001f8880aabbccdd";
    let creds = |u: &str, a: &str, x: &str| {
        format!("-v 3 -u {u} -l authPriv -a {a} -A auth-pass-1 -x {x} -X priv-pass-1")
    };

    // A trap under the sender's engine id, SHA-256 / AES-128.
    let ops = creds("ops", "SHA-256", "AES");
    assert!(
        net_snmp(format!(
            "snmptrap {ops} -e {sender_engine} {to} 0 1.3.6.1.4.1.318.0.58 1.3.6.1.4.1.318.1.1.26.10.2.2.1.8.1 i 315"
        ))
        .await?
    );
    let event = next(&mut rx, "the SHA-256/AES trap").await?;
    assert_eq!(event.device, "crac-2");
    assert_eq!(event.notification.version, "3");
    assert_eq!(event.notification.user.as_deref(), Some("ops"));
    assert_eq!(
        event.notification.trap_oid,
        vec![1, 3, 6, 1, 4, 1, 318, 0, 58]
    );

    // An inform: snmpinform discovers our engine id and time, and exits 0 only when our
    // encrypted Response arrived.
    assert!(
        net_snmp(format!(
            "snmpinform {ops} -t 3 -r 1 {to} 0 1.3.6.1.4.1.318.0.59"
        ))
        .await?,
        "snmpinform v3 was not acknowledged"
    );
    let event = next(&mut rx, "the SHA-256/AES inform").await?;
    assert_eq!(
        event.notification.trap_oid,
        vec![1, 3, 6, 1, 4, 1, 318, 0, 59]
    );

    // MD5 / DES inform and SHA-512 / AES-256 (net-snmp's key extension) trap.
    let legacy = creds("legacy", "MD5", "DES");
    assert!(
        net_snmp(format!(
            "snmpinform {legacy} -t 3 -r 1 {to} 0 1.3.6.1.4.1.318.0.60"
        ))
        .await?,
        "MD5/DES inform was not acknowledged"
    );
    assert_eq!(
        next(&mut rx, "the MD5/DES inform")
            .await?
            .notification
            .user
            .as_deref(),
        Some("legacy")
    );
    let strong = creds("strong", "SHA-512", "AES-256");
    assert!(
        net_snmp(format!(
            "snmptrap {strong} -e {sender_engine} {to} 0 1.3.6.1.4.1.318.0.61"
        ))
        .await?
    );
    assert_eq!(
        next(&mut rx, "the SHA-512/AES-256 trap")
            .await?
            .notification
            .trap_oid,
        vec![1, 3, 6, 1, 4, 1, 318, 0, 61]
    );

    // Wrong auth passphrase, wrong priv passphrase, unknown user: informs are not
    // acknowledged, traps vanish; the good trap after them is the next event.
    let wrong_auth = ops.replace("-A auth-pass-1", "-A auth-pass-2");
    assert!(
        !net_snmp(format!(
            "snmpinform {wrong_auth} -t 1 -r 0 {to} 0 1.3.6.1.4.1.318.0.62"
        ))
        .await?,
        "an inform with a wrong auth passphrase was acknowledged"
    );
    let wrong_priv = ops.replace("-X priv-pass-1", "-X priv-pass-2");
    assert!(
        net_snmp(format!(
            "snmptrap {wrong_priv} -e {sender_engine} {to} 0 1.3.6.1.4.1.318.0.63"
        ))
        .await?
    );
    let stranger = ops.replace("-u ops", "-u mallory");
    assert!(
        !net_snmp(format!(
            "snmpinform {stranger} -t 1 -r 0 {to} 0 1.3.6.1.4.1.318.0.64"
        ))
        .await?,
        "an inform from an unknown user was acknowledged"
    );
    assert!(
        net_snmp(format!(
            "snmptrap {ops} -e {sender_engine} {to} 0 1.3.6.1.4.1.318.0.65"
        ))
        .await?
    );
    assert_eq!(
        next(&mut rx, "the good trap after the bad ones")
            .await?
            .notification
            .trap_oid,
        vec![1, 3, 6, 1, 4, 1, 318, 0, 65]
    );

    stop.send(true)?;
    listener.await?;
    Ok(())
}
