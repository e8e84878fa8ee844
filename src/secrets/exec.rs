//! `exec` references: run a command (no shell, no stdin, the gateway's environment) and take
//! what it prints on stdout, trailing newline trimmed. Any vault's CLI fits (`vault kv get
//! -field=…`, `op read`, `aws secretsmanager get-secret-value …`, `gcloud secrets versions
//! access …`). A failure says how the command ended and the last line it wrote on stderr, with
//! anything it printed on stdout blanked out of it; stdout itself is never quoted.

use std::process::Stdio;

use super::FetchError;
use super::credential::{Fetched, redact};
use crate::config::Secret;

/// The most a command may print on either stream: a credential is short, so more is refused as
/// a mistake (the run itself is bounded by the fetch's time limit).
const MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// The most of stderr quoted in a failure.
const QUOTED_STDERR_CHARS: usize = 200;

pub async fn fetch(command: &[String]) -> Result<Fetched, FetchError> {
    let program = command.first().map(String::as_str).unwrap_or_default();
    let fail = |reason: String| FetchError::Exec {
        program: program.to_owned(),
        reason,
    };
    let output = tokio::process::Command::new(program)
        .args(command.iter().skip(1))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The fetch's time limit drops this future: the command is killed with it.
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if output.stdout.len() > MAX_OUTPUT_BYTES || output.stderr.len() > MAX_OUTPUT_BYTES {
        return Err(fail(format!(
            "it printed more than {MAX_OUTPUT_BYTES} bytes"
        )));
    }
    let stdout = String::from_utf8(output.stdout);
    if !output.status.success() {
        let printed = stdout.as_deref().unwrap_or_default().trim();
        let said = last_line(&String::from_utf8_lossy(&output.stderr), printed);
        return Err(fail(match said {
            Some(line) => format!("{}: {line}", output.status),
            None => output.status.to_string(),
        }));
    }
    let stdout = stdout.map_err(|_| fail("its output is not UTF-8".to_owned()))?;
    Ok(Fetched {
        value: Secret::new(stdout.trim_end_matches(['\r', '\n'])),
        version: None,
    })
}

/// The last non-empty line of `stderr`, clipped, with `printed` (what the command wrote on
/// stdout, possibly a secret) blanked out.
fn last_line(stderr: &str, printed: &str) -> Option<String> {
    let line = stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())?;
    let line = redact(line, printed);
    Some(line.chars().take(QUOTED_STDERR_CHARS).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn stdout_is_the_secret_and_a_failure_quotes_stderr_not_stdout() {
        let ok = fetch(&sh("printf 'sk-exec-1234\\n'")).await.unwrap();
        assert_eq!(ok.value.expose(), "sk-exec-1234");
        let e = fetch(&sh(
            "echo sk-half-5678; echo 'first' >&2; echo 'sk-half-5678 denied' >&2; exit 3",
        ))
        .await
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("command \"sh\": exit status: 3: *** denied"),
            "{e}"
        );
        let missing = fetch(&["/nonexistent/vault-cli".to_owned()])
            .await
            .unwrap_err()
            .to_string();
        assert!(missing.contains("cannot run it"), "{missing}");
    }
}
