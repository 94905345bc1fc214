//! `volley serve` settings: the file, `VOLLEY_*` variables and flags merge
//! in that order of precedence, and a bad value stops the start with the key
//! named. Runs the real binary; `--print-config` exits before binding.

use std::path::Path;
use std::process::{Command, Output};

fn volley(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_volley"));
    command.args(args).current_dir(dir).env("RUST_BACKTRACE", "0");
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("VOLLEY_")) {
        command.env_remove(key);
    }
    command.envs(env.iter().copied());
    command.output().expect("run volley")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn flags_override_environment_which_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("volley.toml");
    std::fs::write(
        &file,
        "max_text_bytes = 100\nmessage_burst = 5.0\noutbound_queue = 7\n[game]\npellets = 10\ntick_hz = 20\n",
    )
    .unwrap();
    let out = volley(
        &[
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--max-text-bytes",
            "300",
            "--game-tick-hz",
            "60",
            "--print-config",
        ],
        &[("VOLLEY_MAX_TEXT_BYTES", "200"), ("VOLLEY_MESSAGE_BURST", "9")],
        dir.path(),
    );
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("max_text_bytes = 300\n"), "flag wins: {shown}");
    assert!(shown.contains("message_burst = 9.0\n"), "variable beats file: {shown}");
    assert!(shown.contains("outbound_queue = 7\n"), "file beats default: {shown}");
    assert!(
        shown.contains("tick_hz = 60\n") && shown.contains("pellets = 10\n"),
        "{shown}"
    );
    assert!(shown.contains("messages_per_sec = 10.0\n"), "default kept: {shown}");
}

#[test]
fn secrets_are_hidden_when_printed() {
    let dir = tempfile::tempdir().unwrap();
    let out = volley(
        &["serve", "--jwt-algorithm", "HS256", "--print-config"],
        &[("VOLLEY_JWT_SECRET", "a-very-secret-shared-key")],
        dir.path(),
    );
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("algorithm = \"HS256\""), "{shown}");
    assert!(!shown.contains("a-very-secret-shared-key"), "{shown}");
    assert!(shown.contains("# set but not shown: jwt.secret"), "{shown}");
    assert!(
        !shown.contains("secret ="),
        "no placeholder a saved copy would use: {shown}"
    );
    let out = volley(
        &[
            "serve",
            "--store",
            "postgres://volley:hunter22@db:5432/chat",
            "--print-config",
        ],
        &[],
        dir.path(),
    );
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("store = \"postgres://volley@db:5432/chat\""), "{shown}");
    assert!(!shown.contains("hunter22"), "{shown}");
}

/// Flags, environment, and the words the error must hold.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);

/// Each source of a bad value: the error names the key (or flag) and the value.
#[test]
fn a_bad_value_fails_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad_file = dir.path().join("bad.toml");
    std::fs::write(&bad_file, "sqlite_sync = \"fast\"\n").unwrap();
    let typo_file = dir.path().join("typo.toml");
    std::fs::write(&typo_file, "[game]\ntick_rate = 30\n").unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let cases: &[Case] = &[
        (
            &["--config", bad_file.to_str().unwrap()],
            &[],
            &["sqlite_sync", "fast", "full"],
        ),
        (&["--config", typo_file.to_str().unwrap()], &[], &["tick_rate"]),
        (
            &["--sqlite-sync", "sometimes"],
            &[],
            &["--sqlite-sync", "sometimes", "full, normal"],
        ),
        (
            &[],
            &[("VOLLEY_JWT_ALGORITHM", "none")],
            &["--jwt-algorithm", "none", "HS256"],
        ),
        (
            &["--max-text-bytes", "0"],
            &[],
            &["max_text_bytes", "0", "1 to max_frame_bytes"],
        ),
        (&["--jwt-algorithm", "RS256"], &[], &["jwt.public_key_file", "RS256"]),
        (&["--game-tick-hz", "500"], &[], &["game.tick_hz", "500", "1 to 120"]),
        (
            &["--message-burst", "0.5"],
            &[],
            &["message_burst", "0.5", "at least 1"],
        ),
    ];
    for (args, env, expected) in cases {
        // Not --print-config: these must stop a real start, before it binds.
        let mut all = vec!["serve", "--addr", "127.0.0.1:0", "--data-dir", data];
        all.extend_from_slice(args);
        let out = volley(&all, env, dir.path());
        let shown = text(&out);
        assert!(!out.status.success(), "{args:?} {env:?} started: {shown}");
        for word in *expected {
            assert!(shown.contains(word), "{args:?} {env:?}: {word:?} not in {shown}");
        }
        assert!(!shown.contains("listening") && !shown.contains("open http"), "{shown}");
        assert!(
            !Path::new(data).exists(),
            "{args:?} {env:?}: a refused start wrote the data directory"
        );
    }
}

/// On/off switches read from the environment take the usual spellings
/// (`1`, `true`, `yes` on; `0`, `false`, empty off), and the file's
/// `http3 = false` turns HTTP/3 off as `--no-http3` does.
#[test]
fn switches_from_the_environment_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = volley(
        &["serve", "--print-config"],
        &[("VOLLEY_NO_HTTP3", "1"), ("VOLLEY_H2C", "yes")],
        dir.path(),
    );
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("http3 = false\n") && shown.contains("h2c = true\n"),
        "{shown}"
    );
    let out = volley(
        &["serve", "--print-config"],
        &[("VOLLEY_NO_HTTP3", "0"), ("VOLLEY_H2C", "false")],
        dir.path(),
    );
    let shown = text(&out);
    assert!(
        shown.contains("http3 = true\n") && shown.contains("h2c = false\n"),
        "{shown}"
    );
    let file = dir.path().join("volley.toml");
    std::fs::write(&file, "http3 = false\n").unwrap();
    let out = volley(
        &["serve", "--config", file.to_str().unwrap(), "--print-config"],
        &[],
        dir.path(),
    );
    assert!(text(&out).contains("http3 = false\n"), "{}", text(&out));
}
