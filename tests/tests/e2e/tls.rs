//! Broker security against a real mosquitto: TLS with server verification, mutual TLS, and the
//! errors an operator sees for a wrong CA, an expired certificate, a missing client certificate
//! and a wrong password; an ACL keeps an agent off another agent's topics.

use anyhow::Result;
use coldaisle_config::{MqttConfig, TlsMaterial};
use coldaisle_mqtt::{LinkEvent, LinkOptions, MqttLink, Qos};
use coldaisle_testkit::peers::Mosquitto;
use coldaisle_testkit::pki::TestPki;
use std::time::Duration;

fn config(port: u16, user: &str, password: &str) -> MqttConfig {
    let text = format!(
        "host = \"127.0.0.1\"\nport = {port}\nusername = \"{user}\"\npassword = \"{password}\"\n"
    );
    toml::from_str(&text).expect("valid mqtt table")
}

fn material(pki: &TestPki, ca: &str, client: bool) -> TlsMaterial {
    let read = |name: &str| std::fs::read(pki.path(name)).expect("pki file");
    TlsMaterial {
        ca: read(ca),
        client: client.then(|| (read("client-agent-a.pem"), read("client-agent-a.key"))),
    }
}

/// The first connection outcome: `Ok(())` when connected, `Err(reason)` on failure.
async fn first_outcome(options: LinkOptions) -> Result<(MqttLink, Result<(), String>)> {
    let mut link = MqttLink::open(options);
    let outcome = tokio::time::timeout(Duration::from_secs(10), link.events.recv()).await?;
    let result = match outcome {
        Some(LinkEvent::Connected) => Ok(()),
        Some(LinkEvent::Disconnected(reason)) => Err(reason),
        other => Err(format!("unexpected {other:?}")),
    };
    Ok((link, result))
}

fn options(config: MqttConfig, tls: Option<TlsMaterial>, id: &str) -> LinkOptions {
    LinkOptions {
        client_id: id.to_string(),
        config,
        password: None,
        will: None,
        tls,
    }
}

#[tokio::test]
async fn tls_server_verification_and_clear_errors() -> Result<()> {
    let pki = TestPki::generate()?;
    let broker = Mosquitto::start_with(
        &[("agent-a", "secret-a")],
        &pki.mosquitto_conf("server", false),
        true,
    )?;
    let mut good = config(broker.port(), "agent-a", "secret-a");
    let password = good.password.clone();
    let mut opts = options(
        good.clone(),
        Some(material(&pki, "ca.pem", false)),
        "tls-ok",
    );
    opts.password = password.clone().map(Into::into);
    let (link, outcome) = first_outcome(opts).await?;
    assert_eq!(outcome, Ok(()), "TLS with the right CA connects");
    link.close().await;

    let mut opts = options(
        good.clone(),
        Some(material(&pki, "other-ca.pem", false)),
        "tls-wrong-ca",
    );
    opts.password = password.clone().map(Into::into);
    let (_, outcome) = first_outcome(opts).await?;
    let reason = outcome.expect_err("a broker signed by another CA is refused");
    assert!(
        reason.contains("not signed by the CA in mqtt.tls.ca_file"),
        "{reason}"
    );

    good.password = Some("wrong".into());
    let mut opts = options(
        good,
        Some(material(&pki, "ca.pem", false)),
        "tls-wrong-password",
    );
    opts.password = Some("wrong".into());
    let (_, outcome) = first_outcome(opts).await?;
    let reason = outcome.expect_err("wrong password is refused");
    assert!(
        reason.contains("refused the username or password"),
        "{reason}"
    );

    let expired = Mosquitto::start_with(
        &[("agent-a", "secret-a")],
        &pki.mosquitto_conf("expired", false),
        true,
    )?;
    let mut opts = options(
        config(expired.port(), "agent-a", "secret-a"),
        Some(material(&pki, "ca.pem", false)),
        "tls-expired",
    );
    opts.password = password.map(Into::into);
    let (_, outcome) = first_outcome(opts).await?;
    let reason = outcome.expect_err("an expired broker certificate is refused");
    assert!(reason.contains("expired"), "{reason}");
    Ok(())
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate() -> Result<()> {
    let pki = TestPki::generate()?;
    let broker = Mosquitto::start_with(&[], &pki.mosquitto_conf("server", true), true)?;
    let mut cfg = config(broker.port(), "ignored", "ignored");
    cfg.username = None;
    cfg.password = None;
    let (link, outcome) = first_outcome(options(
        cfg.clone(),
        Some(material(&pki, "ca.pem", true)),
        "mtls-ok",
    ))
    .await?;
    assert_eq!(outcome, Ok(()), "client certificate accepted");
    link.close().await;
    let (_, outcome) = first_outcome(options(
        cfg,
        Some(material(&pki, "ca.pem", false)),
        "mtls-none",
    ))
    .await?;
    assert!(outcome.is_err(), "no client certificate, no connection");
    Ok(())
}

#[tokio::test]
async fn acl_keeps_an_agent_off_other_agents_topics() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let acl = dir.path().join("acl");
    std::fs::write(
        &acl,
        "user collector\ntopic read coldaisle/v1/#\n\npattern readwrite coldaisle/v1/+/%u/#\n",
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(&acl, std::fs::Permissions::from_mode(0o644))?;
    let broker = Mosquitto::start_with(
        &[("agent-a", "pa"), ("collector", "pc")],
        &format!("acl_file {}\n", acl.display()),
        false,
    )?;
    let mut collector_opts = options(
        config(broker.port(), "collector", "pc"),
        None,
        "acl-collector",
    );
    collector_opts.password = Some("pc".into());
    let (mut collector, outcome) = first_outcome(collector_opts).await?;
    assert_eq!(outcome, Ok(()));
    collector
        .client
        .subscribe("coldaisle/v1/#", Qos::AtLeastOnce)
        .await?;
    let mut agent_opts = options(config(broker.port(), "agent-a", "pa"), None, "acl-agent-a");
    agent_opts.password = Some("pa".into());
    let (agent, outcome) = first_outcome(agent_opts).await?;
    assert_eq!(outcome, Ok(()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent
        .client
        .publish(
            "coldaisle/v1/s1/agent-b/events",
            Qos::AtLeastOnce,
            false,
            b"forged".to_vec(),
        )
        .await?;
    agent
        .client
        .publish(
            "coldaisle/v1/s1/agent-a/events",
            Qos::AtLeastOnce,
            false,
            b"mine".to_vec(),
        )
        .await?;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, collector.events.recv()).await {
        if let LinkEvent::Message { topic, .. } = event {
            seen.push(topic);
        }
    }
    assert_eq!(
        seen,
        vec!["coldaisle/v1/s1/agent-a/events".to_string()],
        "the forged publish is dropped by the ACL"
    );
    Ok(())
}
