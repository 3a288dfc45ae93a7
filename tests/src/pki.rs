//! A throw-away PKI for TLS tests, made with the `openssl` command line tool: a CA, a broker
//! certificate for 127.0.0.1/localhost, an expired broker certificate, client certificates for
//! mutual TLS, and a second, untrusted CA.

use crate::peers::find_executable;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// Files of the test PKI (PEM), removed on drop.
#[derive(Debug)]
pub struct TestPki {
    dir: TempDir,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let exe = find_executable("openssl", "openssl")?;
    let out = Command::new(exe)
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl")?;
    if !out.status.success() {
        bail!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl TestPki {
    /// Generates everything (a second or so).
    pub fn generate() -> Result<TestPki> {
        let dir = tempfile::Builder::new()
            .prefix("coldaisle-pki-")
            .tempdir()?;
        let d = dir.path();
        for ca in ["ca", "other-ca"] {
            let mut args = vec!["req", "-x509"];
            args.extend(EC);
            let subject = format!("/CN=coldaisle test {ca}");
            let key = format!("{ca}.key");
            let pem = format!("{ca}.pem");
            args.extend([
                "-nodes", "-keyout", &key, "-out", &pem, "-days", "30", "-subj", &subject,
            ]);
            openssl(d, &args)?;
        }
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )?;
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n")?;
        let leaf = |name: &str, cn: &str, ext: &str, days: &str| -> Result<()> {
            let mut args = vec!["req"];
            args.extend(EC);
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let subject = format!("/CN={cn}");
            args.extend(["-nodes", "-keyout", &key, "-out", &csr, "-subj", &subject]);
            openssl(d, &args)?;
            let pem = format!("{name}.pem");
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &pem,
                    "-days",
                    days,
                    "-extfile",
                    ext,
                ],
            )
        };
        leaf("server", "localhost", "server.ext", "30")?;
        leaf("expired", "localhost", "server.ext", "-1")?;
        leaf("client-agent-a", "agent-a", "client.ext", "30")?;
        // mosquitto may run as another user: make the files readable.
        for entry in std::fs::read_dir(d)? {
            let path = entry?.path();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        }
        Ok(TestPki { dir })
    }

    /// Path of a file of the PKI, e.g. `ca.pem`, `server.key`, `client-agent-a.pem`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// mosquitto listener lines for TLS with `server` (or `expired`) as its certificate;
    /// `require_client_cert` turns on mutual TLS with the certificate's CN as user name.
    pub fn mosquitto_conf(&self, server: &str, require_client_cert: bool) -> String {
        let mut conf = format!(
            "cafile {}\ncertfile {}\nkeyfile {}\n",
            self.path("ca.pem").display(),
            self.path(&format!("{server}.pem")).display(),
            self.path(&format!("{server}.key")).display()
        );
        if require_client_cert {
            conf.push_str("require_certificate true\nuse_identity_as_username true\n");
        }
        conf
    }
}
