//! The `switchboard` binary: configuration errors name the key, check-config
//! redacts secrets, `user add` and `token create` produce working
//! credentials, and unwired commands say so.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn switchboard(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let db = format!("sqlite://{}", dir.join("cli.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("SWITCHBOARD_DATABASE_URL", db)
        .env("SWITCHBOARD_LOG", "warn")
        .env("SWITCHBOARD_SIP_ADDR", "")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_bad_value_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["serve"][..],
        &[][..],
        &["check-config"][..],
        &["migrate"][..],
    ] {
        let out = switchboard(
            dir.path(),
            args,
            &[("SWITCHBOARD_HTTP_ADDR", "localhost-ish")],
            "",
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("`http_addr`") && err.contains("SWITCHBOARD_HTTP_ADDR"),
            "{err}"
        );
    }
    let out = switchboard(dir.path(), &[], &[("SWITCHBOARD_LOG_FORMAT", "xml")], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`log_format`"));
}

#[test]
fn check_config_prints_effective_values_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("switchboard.toml"),
        "[business]\nname = \"Acme Plumbing\"\n",
    )
    .unwrap();
    let out = switchboard(
        dir.path(),
        &["check-config"],
        &[("SWITCHBOARD_API_TOKEN", "s3cret-token")],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("\"Acme Plumbing\""), "{shown}");
    assert!(!shown.contains("s3cret-token"));
    assert!(shown
        .lines()
        .any(|l| l.starts_with("api_token") && l.contains("[redacted]")));
}

#[test]
fn user_add_and_token_create_write_usable_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let out = switchboard(
        dir.path(),
        &[
            "user",
            "add",
            "--email",
            "Ops@Example.org",
            "--role",
            "agent",
            "--password-stdin",
        ],
        &[],
        "a long password\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = switchboard(
        dir.path(),
        &[
            "user",
            "add",
            "--email",
            "x@example.org",
            "--role",
            "admin",
            "--password-stdin",
        ],
        &[],
        "short\n",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("at least 8"));

    let out = switchboard(dir.path(), &["token", "create", "--name", "ci"], &[], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_string();
    assert_eq!(token.len(), 64);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("cli.db").display());
        let store = switchboard::store::Store::open(&url, switchboard::events::Bus::new(), "n")
            .await
            .unwrap();
        let user = store
            .user_by_email("ops@example.org")
            .await
            .unwrap()
            .expect("user stored");
        assert!(switchboard::web::auth::verify_password(
            "a long password",
            &user.password_hash
        ));
        let hash = switchboard::web::auth::token_hash(&token);
        assert_eq!(
            store.api_token_by_hash(&hash).await.unwrap().unwrap().name,
            "ci"
        );
    });
}

#[test]
fn simulate_without_turns_exits_2_and_says_how() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["simulate", "--script", "x"][..], &["simulate"][..]] {
        let out = switchboard(dir.path(), args, &[], "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains("--wav PATH"),
            "{}",
            text(&out.stderr)
        );
    }
}

/// Starts `serve` on a free port, waits for it to listen, sends SIGTERM, and
/// returns the exit code and every log line (JSON).
#[cfg(unix)]
fn serve_until_sigterm(dir: &std::path::Path) -> (Option<i32>, Vec<serde_json::Value>) {
    use std::io::BufRead;
    use std::time::{Duration, Instant};
    let db = format!("sqlite://{}", dir.join("cli.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("SWITCHBOARD_DATABASE_URL", db)
        .env("SWITCHBOARD_HTTP_ADDR", "127.0.0.1:0")
        .env("SWITCHBOARD_SIP_ADDR", "")
        .env("SWITCHBOARD_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(wait)
            .expect("server logs `serving HTTP` in time");
        let listening = line.contains("serving HTTP");
        lines.push(line);
        if listening {
            break;
        }
    }
    let kill = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    let json = lines
        .iter()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect();
    (status.code(), json)
}

#[cfg(unix)]
#[test]
fn serve_prints_the_first_admin_password_once_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (code, logs) = serve_until_sigterm(dir.path());
    assert_eq!(code, Some(0), "{logs:?}");
    let with_password: Vec<_> = logs
        .iter()
        .filter(|l| l.get("password").is_some())
        .collect();
    assert_eq!(with_password.len(), 1, "{logs:?}");
    assert_eq!(with_password[0]["email"], "admin");
    assert!(logs.iter().any(|l| l["message"] == "stopped"), "{logs:?}");

    let (code, logs) = serve_until_sigterm(dir.path());
    assert_eq!(code, Some(0));
    assert!(
        logs.iter().all(|l| l.get("password").is_none()),
        "never again: {logs:?}"
    );
}
