//! The reverse-proxy recipes of `deploy/` (Debian's nginx and Caddy), started in front
//! of a node on loopback ports, as a deployment runs them.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::redis::free_port;

/// Which recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `deploy/nginx.conf`, plain HTTP.
    Nginx,
    /// `deploy/Caddyfile`, plain HTTP.
    Caddy,
    /// `deploy/Caddyfile` with `tls internal`: HTTPS and HTTP/2 to the client.
    CaddyTls,
    /// `deploy/Caddyfile`, plain HTTP, reaching Herald over h2c (`h2c://` upstream).
    CaddyH2c,
}

/// A running proxy, killed when dropped.
pub struct Proxy {
    /// `http://127.0.0.1:PORT` or `https://…`.
    pub base: String,
    child: Child,
    dir: PathBuf,
}

/// The recipe in `deploy/`, as a deployment would copy it.
fn recipe(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

impl Proxy {
    /// Starts `kind` in front of the node at `upstream` (`127.0.0.1:PORT`), with a read
    /// timeout (seconds) towards it; waits until it listens.
    pub async fn start(kind: Kind, upstream: &str, read_timeout_secs: u32) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("herald-proxy-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a work dir");
        let child = match kind {
            Kind::Nginx => nginx(&dir, port, upstream, read_timeout_secs),
            Kind::Caddy | Kind::CaddyTls => {
                caddy(&dir, port, upstream, read_timeout_secs, kind == Kind::CaddyTls)
            }
            Kind::CaddyH2c => {
                caddy(&dir, port, &format!("h2c://{upstream}"), read_timeout_secs, false)
            }
        };
        let scheme = if kind == Kind::CaddyTls { "https" } else { "http" };
        let proxy = Self { base: format!("{scheme}://127.0.0.1:{port}"), child, dir };
        super::eventually(|| async {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
        proxy
    }
}

fn nginx(dir: &Path, port: u16, upstream: &str, read_timeout_secs: u32) -> Child {
    let server = recipe("nginx.conf")
        .replace("@HERALD@", upstream)
        .replace("@LISTEN@", &format!("127.0.0.1:{port}"))
        .replace("@READ_TIMEOUT@", &format!("{read_timeout_secs}s"));
    std::fs::write(dir.join("herald.conf"), server).expect("write the server block");
    let d = dir.display();
    // The recipe is a server block; this is the least of an nginx.conf around it.
    let main = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
         proxy_temp_path {d}/proxy;\n  include {d}/herald.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).expect("write nginx.conf");
    Command::new("nginx")
        .args(["-c", &dir.join("nginx.conf").display().to_string(), "-p", &d.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start nginx (Debian's nginx package)")
}

fn caddy(dir: &Path, port: u16, upstream: &str, read_timeout_secs: u32, tls: bool) -> Child {
    let d = dir.display();
    let (site, tls_line) = if tls {
        (format!("https://127.0.0.1:{port}"), "bind 127.0.0.1\n\ttls internal")
    } else {
        (format!("http://127.0.0.1:{port}"), "bind 127.0.0.1")
    };
    let global = format!(
        "skip_install_trust\n\tstorage file_system {d}/data\n\thttp_port {}\n\thttps_port {}",
        free_port(),
        if tls { port } else { free_port() }
    );
    let config = recipe("Caddyfile")
        .replace("@GLOBAL@", &global)
        .replace("@SITE@", &site)
        .replace("@TLS@", tls_line)
        .replace("@HERALD@", upstream)
        .replace("@READ_TIMEOUT@", &format!("{read_timeout_secs}s"));
    std::fs::write(dir.join("Caddyfile"), config).expect("write the Caddyfile");
    Command::new("caddy")
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.join("Caddyfile"))
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start caddy (Debian's caddy package)")
}

impl Drop for Proxy {
    /// SIGTERM, not SIGKILL: nginx's master stops its worker on SIGTERM, and a killed
    /// master would leave the worker running (holding the test's files and ports).
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            for _ in 0..50 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
