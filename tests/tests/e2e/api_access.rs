//! The collector API's access control over real HTTP: a real collector process with a tokens
//! file made by `coldaisle-collector token new`, requests with and without tokens, the CLI
//! sending its token, the body limit, and a SIGHUP that replaces the tokens.

use crate::support::{binary, free_port, wait_for, Daemon};
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `token new NAME --scopes SCOPES`: (token, tokens-file line).
pub(crate) fn new_token(name: &str, scopes: &str) -> Result<(String, String)> {
    let out = Command::new(binary("coldaisle-collector")?)
        .args(["token", "new", name, "--scopes", scopes])
        .output()?;
    anyhow::ensure!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout)?;
    let mut lines = text.lines();
    let token = lines.next().context("no token line")?.to_string();
    let line = lines.next().context("no tokens-file line")?.to_string();
    anyhow::ensure!(
        !line.contains(&token),
        "the tokens-file line holds the token"
    );
    Ok((token, line))
}

/// One request: (status, `WWW-Authenticate`, body).
fn request(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut response = match (method, body) {
        ("GET", None) => {
            let mut r = agent.get(url);
            if let Some(a) = &auth {
                r = r.header("authorization", a);
            }
            r.call()?
        }
        (_, body) => {
            let mut r = agent.post(url).header("content-type", "application/json");
            if let Some(a) = &auth {
                r = r.header("authorization", a);
            }
            r.send(body.unwrap_or("").to_string())?
        }
    };
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = response.body_mut().read_to_string()?;
    Ok((response.status().as_u16(), challenge, text))
}

fn error_of(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("not a JSON error: {body}"))
}

fn cli(args: &[&str], token_file: Option<&Path>) -> Result<(bool, String, String)> {
    let mut command = Command::new(binary("coldaisle-collector")?);
    command
        .args(args)
        .env_remove("COLDAISLE_API_TOKEN")
        .env_remove("COLDAISLE_API_TOKEN_FILE")
        .env("USER", "ops");
    if let Some(file) = token_file {
        command.arg("--token-file").arg(file);
    }
    let out = command.output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn api_tokens_scopes_actor_limit_and_reload_over_real_http() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (ann, ann_line) = new_token("ann", "read,operate")?;
    let (graf, graf_line) = new_token("graf", "read")?;
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("# api tokens\n{ann_line}\n{graf_line}\n"))?;
    let ann_file = dir.path().join("ann.token");
    std::fs::write(&ann_file, format!("{ann}\n"))?;
    let http = free_port()?;
    let api = format!("http://127.0.0.1:{http}");
    let toml = dir.path().join("collector.toml");
    // No broker: the API serves while the MQTT link retries.
    std::fs::write(
        &toml,
        format!(
            "collector_id = \"api\"\nstate_dir = \"{}\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\n\
             [http]\nlisten = \"127.0.0.1:{http}\"\ntokens_file = \"{}\"\nmax_body_bytes = 4096\n",
            dir.path().join("state").display(),
            free_port()?,
            tokens.display()
        ),
    )?;
    let mut daemon = Daemon::start("coldaisle-collector", &toml, &dir.path().join("c.log"))?;
    wait_for(
        "the API to answer /healthz",
        Duration::from_secs(20),
        || {
            request("GET", &format!("{api}/healthz"), None, None)
                .ok()
                .filter(|(status, _, body)| *status == 200 && body == "ok")
        },
    )?;
    daemon.check_alive()?;

    // No token, a wrong token: 401 with a challenge and a JSON error.
    let (status, challenge, body) = request("GET", &format!("{api}/api/v1/zones"), None, None)?;
    assert_eq!(
        (status, challenge.as_str()),
        (401, "Bearer realm=\"coldaisle\"")
    );
    assert!(error_of(&body).contains("missing bearer token"), "{body}");
    let (status, _, body) = request("GET", &format!("{api}/api/v1/stats"), Some("x"), None)?;
    assert_eq!(status, 401, "{body}");
    // A read token reads and cannot act.
    let (status, _, body) = request("GET", &format!("{api}/api/v1/stats"), Some(&graf), None)?;
    assert_eq!(status, 200, "{body}");
    let silences = format!("{api}/api/v1/silences");
    let (status, _, body) = request("POST", &silences, Some(&graf), Some(r#"{"duration":"1h"}"#))?;
    assert_eq!(status, 403, "{body}");
    assert!(
        error_of(&body).contains("lacks the operate scope"),
        "{body}"
    );
    // A body above the limit.
    let big = format!(r#"{{"duration":"1h","comment":"{}"}}"#, "x".repeat(8192));
    let (status, _, body) = request("POST", &silences, Some(&ann), Some(&big))?;
    assert_eq!(status, 413, "{body}");

    // The CLI: the token's name is the actor, a different --actor is refused.
    let base = ["--url", api.as_str()];
    let add = [&["silence", "add", "--duration", "1h"][..], &base[..]].concat();
    let (ok, _, err) = cli(&[&add[..], &["--actor", "root"]].concat(), Some(&ann_file))?;
    assert!(
        !ok && err.contains("403") && err.contains("token's name"),
        "{err}"
    );
    let (ok, out, err) = cli(&add, Some(&ann_file))?;
    assert!(ok, "{err}");
    let silence: Value = serde_json::from_str(&out)?;
    assert_eq!(silence["created_by"], "ann");
    let (ok, _, err) = cli(&add, None)?;
    assert!(
        !ok && err.contains("401") && err.contains("--token-file"),
        "{err}"
    );
    let report = [&["report", "--zone", "Z9"][..], &base[..]].concat();
    let (ok, _, err) = cli(&report, Some(&ann_file))?;
    assert!(
        !ok && err.contains("404") && err.contains("unknown zone Z9"),
        "{err}"
    );

    // SIGHUP re-reads the tokens: graf's token stops working.
    std::fs::write(&tokens, format!("{ann_line}\n"))?;
    daemon.signal("HUP")?;
    wait_for(
        "graf's token to be revoked",
        Duration::from_secs(20),
        || {
            let (status, _, _) =
                request("GET", &format!("{api}/api/v1/stats"), Some(&graf), None).ok()?;
            (status == 401).then_some(())
        },
    )?;
    let (status, _, _) = request("GET", &format!("{api}/api/v1/stats"), Some(&ann), None)?;
    assert_eq!(status, 200);
    daemon.check_alive()?;
    let log = daemon.log();
    assert!(log.contains("HTTP API requires bearer tokens"), "{log}");
    assert!(
        !log.contains(&ann) && !log.contains(&graf),
        "a token leaked into the log"
    );
    daemon.terminate()
}

#[test]
fn an_api_without_tokens_refuses_a_public_address() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let toml = dir.path().join("collector.toml");
    std::fs::write(
        &toml,
        "collector_id = \"api\"\nstate_dir = \"/tmp/x\"\n[mqtt]\nhost = \"b\"\n\
         [http]\nlisten = \"0.0.0.0:8080\"\n",
    )?;
    for command in ["check-config", "run"] {
        let out = Command::new(binary("coldaisle-collector")?)
            .args([command, "--config"])
            .arg(&toml)
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{command}: {err}");
        assert!(
            err.contains("http.listen") && err.contains("tokens_file"),
            "{err}"
        );
    }
    Ok(())
}

#[test]
fn check_config_warns_about_inline_secrets_and_a_missing_trap_community() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = dir.path().join("collector.toml");
    std::fs::write(
        &collector,
        "collector_id = \"c\"\nstate_dir = \"/tmp/c\"\n[mqtt]\nhost = \"b\"\npassword = \"pw\"\n\
         [[notify.receivers]]\nname = \"chat\"\nkind = \"slack\"\n\
         url = \"https://hooks.slack.com/services/T0/B0/XXXXsecretXXXX\"\n",
    )?;
    let agent = dir.path().join("agent.toml");
    std::fs::write(
        &agent,
        "agent_id = \"a\"\nsite = \"s\"\nstate_dir = \"/tmp/a\"\n[mqtt]\nhost = \"b\"\n\
         [snmp_traps]\nlisten = \"127.0.0.1:1162\"\n",
    )?;
    for (binary_name, file, needles) in [
        (
            "coldaisle-collector",
            &collector,
            &[
                "mqtt.password: secret written inline",
                "notify.receivers[0].url",
            ][..],
        ),
        (
            "coldaisle-agent",
            &agent,
            &["snmp_traps.communities", "v1/v2c traps are refused"][..],
        ),
    ] {
        let out = Command::new(binary(binary_name)?)
            .args(["check-config", "--config"])
            .arg(file)
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{binary_name}: {err}");
        for needle in needles {
            assert!(err.contains(needle), "{binary_name}: {needle:?} in {err}");
        }
        assert!(!err.contains("XXXX"), "the secret itself is printed: {err}");
    }
    Ok(())
}

/// An HTTPS client trusting only the PEM CA at `ca`.
fn https_agent(ca: &Path) -> Result<ureq::Agent> {
    use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};
    let pem = std::fs::read(ca)?;
    let roots: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::Specific(std::sync::Arc::new(roots)))
        .unversioned_rustls_crypto_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .build();
    Ok(ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .build()
        .into())
}

#[test]
fn https_api_with_tokens_and_a_certificate_replaced_on_sighup() -> Result<()> {
    let pki = coldaisle_testkit::pki::TestPki::generate()?;
    let dir = tempfile::tempdir()?;
    let (cert, key) = (dir.path().join("api.pem"), dir.path().join("api.key"));
    // Start with an expired certificate: clients refuse it until the reload.
    std::fs::copy(pki.path("expired.pem"), &cert)?;
    std::fs::copy(pki.path("expired.key"), &key)?;
    let (token, line) = new_token("ann", "read")?;
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{line}\n"))?;
    let http = free_port()?;
    let toml = dir.path().join("collector.toml");
    std::fs::write(
        &toml,
        format!(
            "collector_id = \"tls\"\nstate_dir = \"{}\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\n\
             [http]\nlisten = \"127.0.0.1:{http}\"\ntokens_file = \"{}\"\n\
             [http.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            dir.path().join("state").display(),
            free_port()?,
            tokens.display(),
            cert.display(),
            key.display()
        ),
    )?;
    let mut daemon = Daemon::start("coldaisle-collector", &toml, &dir.path().join("c.log"))?;
    let client = https_agent(&pki.path("ca.pem"))?;
    let base = format!("https://127.0.0.1:{http}");
    let handshake_error = wait_for(
        "the API to refuse the expired certificate",
        Duration::from_secs(20),
        || {
            match client.get(&format!("{base}/healthz")).call() {
                // Refused: not listening yet.
                Err(e) if !e.to_string().contains("refused") => Some(e.to_string()),
                _ => None,
            }
        },
    )?;
    assert!(
        handshake_error.to_lowercase().contains("expired"),
        "{handshake_error}"
    );
    // Plain HTTP on the TLS port gets no answer.
    assert!(request(
        "GET",
        &format!("http://127.0.0.1:{http}/healthz"),
        None,
        None
    )
    .is_err());
    daemon.check_alive()?;

    std::fs::copy(pki.path("server.pem"), &cert)?;
    std::fs::copy(pki.path("server.key"), &key)?;
    daemon.signal("HUP")?;
    let mut response = wait_for("the reloaded certificate", Duration::from_secs(20), || {
        client.get(&format!("{base}/healthz")).call().ok()
    })?;
    assert_eq!(response.body_mut().read_to_string()?, "ok");
    // Tokens still apply over TLS.
    let status = client.get(&format!("{base}/api/v1/stats")).call()?.status();
    assert_eq!(status.as_u16(), 401);
    let status = client
        .get(&format!("{base}/api/v1/stats"))
        .header("authorization", &format!("Bearer {token}"))
        .call()?
        .status();
    assert_eq!(status.as_u16(), 200);
    // The CLI finds the HTTPS address in the config and trusts the private CA of --ca-file;
    // without it the certificate is refused.
    let token_file = dir.path().join("ann.token");
    std::fs::write(&token_file, format!("{token}\n"))?;
    let config = toml.to_str().context("utf-8 path")?;
    let ca = pki.path("ca.pem");
    let ca = ca.to_str().context("utf-8 path")?;
    let (ok, out, err) = cli(
        &["status", "--config", config, "--ca-file", ca],
        Some(&token_file),
    )?;
    assert!(ok, "status over HTTPS with --ca-file failed: {out}{err}");
    let (ok, out, err) = cli(&["status", "--config", config], Some(&token_file))?;
    assert!(!ok, "a private CA was trusted without --ca-file: {out}");
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
    daemon.check_alive()?;
    daemon.terminate()
}
