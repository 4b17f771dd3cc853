//! Certificates for TLS tests, made with Debian's `openssl` as an operator would: a
//! private CA, and a server certificate it signs for `127.0.0.1` (an IP SAN, since
//! rustls checks the name).

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use super::redis::Tls;

/// A P-256 key, as `openssl req` makes it alongside the request.
const NEW_KEY: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/// Writes `ca.crt`, `server.crt` and `server.key` into `dir`.
pub fn private_ca(dir: &Path) -> Tls {
    std::fs::create_dir_all(dir).expect("a directory for certificates");
    let file = |name: &str| dir.join(name);
    std::fs::write(file("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("write san.ext");
    openssl(
        &["req", "-x509", "-days", "2", "-subj", "/CN=Herald test CA"],
        [
            "-keyout".as_ref(),
            file("ca.key").as_os_str(),
            "-out".as_ref(),
            file("ca.crt").as_os_str(),
        ],
    );
    openssl(
        &["req", "-subj", "/CN=127.0.0.1"],
        [
            "-keyout".as_ref(),
            file("server.key").as_os_str(),
            "-out".as_ref(),
            file("server.csr").as_os_str(),
        ],
    );
    openssl(
        &["x509", "-req", "-days", "2", "-CAcreateserial"],
        [
            "-in".as_ref(),
            file("server.csr").as_os_str(),
            "-CA".as_ref(),
            file("ca.crt").as_os_str(),
            "-CAkey".as_ref(),
            file("ca.key").as_os_str(),
            "-extfile".as_ref(),
            file("san.ext").as_os_str(),
            "-out".as_ref(),
            file("server.crt").as_os_str(),
        ],
    );
    Tls { cert: file("server.crt"), key: file("server.key"), ca: file("ca.crt") }
}

/// Runs `openssl` with `args` and `files`; a `req` also makes a new key.
fn openssl<'a>(args: &[&str], files: impl IntoIterator<Item = &'a OsStr>) {
    let mut command = Command::new("openssl");
    command.args(args);
    if args[0] == "req" {
        command.args(NEW_KEY);
    }
    let output = command.args(files).output().expect("openssl on PATH (Debian package openssl)");
    assert!(output.status.success(), "openssl: {}", String::from_utf8_lossy(&output.stderr));
}
