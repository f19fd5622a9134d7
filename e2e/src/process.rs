//! Running the `panopticon` binary as a real process in tests: start, signal, kill, RSS.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::ingest::{free_port, http_get, wait_until};

/// A running `panopticon <component>` process with its admin address.
pub struct Component {
    pub child: Child,
    pub admin: String,
    pub log: std::path::PathBuf,
}

impl Component {
    /// Starts `binary args… --admin-addr 127.0.0.1:<free>` with `env` added to the inherited
    /// environment, logging to a file; waits for `/health`.
    pub async fn start(
        binary: &Path,
        args: &[&str],
        env: &[(String, String)],
        name: &str,
    ) -> Result<Self> {
        let admin = format!("127.0.0.1:{}", free_port()?);
        let log = std::env::temp_dir().join(format!("{}.log", crate::unique_name(name)));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(binary)
            .args(args)
            .arg("--admin-addr")
            .arg(&admin)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let c = Self { child, admin, log };
        let url = format!("http://{}/health", c.admin);
        wait_until(
            "the admin server of the process",
            Duration::from_secs(30),
            || {
                let url = url.clone();
                async move { Ok(http_get(&url).await.is_ok()) }
            },
        )
        .await
        .with_context(|| c.log_tail())?;
        Ok(c)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn metrics(&self) -> Result<String> {
        Ok(http_get(&format!("http://{}/metrics", self.admin)).await?.1)
    }

    /// Resident set size in bytes (Linux).
    pub fn rss_bytes(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS")?;
        Ok(kb * 1024)
    }

    /// SIGKILL: no chance to flush or commit.
    pub fn kill_hard(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM, then waits up to `timeout` for the exit status.
    pub async fn terminate(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.pid());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "process did not exit within {timeout:?} of SIGTERM; {}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// [`Self::terminate`], failing unless the process exited successfully.
    pub async fn stop(&mut self, timeout: Duration) -> Result<()> {
        let status = self.terminate(timeout).await?;
        if !status.success() {
            bail!("exit status {status}; {}", self.log_tail());
        }
        Ok(())
    }

    /// The last lines of the process log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "last log lines of {}:\n{}",
            self.log.display(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _killed = self.child.kill();
            let _waited = self.child.wait();
        }
    }
}

/// A binary of the workspace next to the running test's executable (`target/<profile>/<name>`;
/// `cargo test --workspace` builds every binary before it runs any test). For tests of another
/// package than the binary's, where `CARGO_BIN_EXE_*` is not set.
pub fn workspace_binary(name: &str) -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join(name))
        .context("no target directory")?;
    if !path.exists() {
        bail!(
            "{} is missing: `cargo build -p {name}` (e2e/test builds the workspace)",
            path.display()
        );
    }
    Ok(path)
}

/// Runs `e2e/stack <args>` (to stop and start a server mid-test).
pub fn stack(args: &[&str]) -> Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("stack");
    let out = Command::new("bash").arg(&script).args(args).output()?;
    if !out.status.success() {
        bail!(
            "e2e/stack {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// CPU seconds (user + system) and peak RSS (VmHWM) of a process.
pub fn cpu_and_peak_rss(pid: u32) -> Result<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hwm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM")?;
    Ok((ticks / 100.0, hwm_kb * 1024))
}
