//! The `troupe` command, run as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use troupe::System;

fn troupe(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_troupe"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run troupe")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_owned()
}

/// A private scratch directory (identity files are refused in shared ones).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("troupe-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    dir
}

#[test]
fn identities_are_created_once_shown_and_kept_private() {
    let dir = scratch("identity");
    let created = troupe(&dir, &["identity", "create", "node.key"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let id = stdout(&created);
    assert!(id.starts_with('I') && id.len() == 65, "{id}");
    let shown = troupe(&dir, &["identity", "show", "node.key"]);
    assert_eq!(stdout(&shown), id);
    let again = troupe(&dir, &["identity", "create", "node.key"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("never overwritten"), "{}", stderr(&again));
    assert_eq!(
        stdout(&troupe(&dir, &["identity", "show", "node.key"])),
        id,
        "unchanged"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("node.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn credentials_are_issued_shown_and_verified() {
    let dir = scratch("credential");
    let authority = stdout(&troupe(&dir, &["authority", "create", "authority.key"]));
    let node = stdout(&troupe(&dir, &["identity", "create", "node.key"]));
    let issued = troupe(
        &dir,
        &[
            "credential",
            "issue",
            "--authority",
            "authority.key",
            "--subject",
            &node,
            "--attr",
            "team=research",
            "--attr",
            "role=planner",
            "--ttl",
            "2h",
            "--out",
            "node.cred",
        ],
    );
    assert!(issued.status.success(), "{}", stderr(&issued));
    let shown = troupe(&dir, &["credential", "show", "node.cred", "--trust", &authority]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let text = stdout(&shown);
    assert!(text.contains(&format!("subject     {node}")), "{text}");
    assert!(text.contains("attribute   team=research"), "{text}");
    assert!(text.contains("verified    yes"), "{text}");
    // Trusting another authority: the same file does not verify.
    let stranger = stdout(&troupe(&dir, &["authority", "create", "other.key"]));
    let refused = troupe(&dir, &["credential", "show", "node.cred", "--trust", &stranger]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stdout(&refused).contains("not a trusted authority"),
        "{}",
        stdout(&refused)
    );
    // Reserved attributes are refused at issuance, and nothing is written.
    let reserved = troupe(
        &dir,
        &[
            "credential",
            "issue",
            "--authority",
            "authority.key",
            "--subject",
            &node,
            "--attr",
            "identifier=Ifake",
            "--out",
            "bad.cred",
        ],
    );
    assert_eq!(reserved.status.code(), Some(2));
    assert!(stderr(&reserved).contains("reserved"), "{}", stderr(&reserved));
    assert!(!dir.join("bad.cred").exists());
    let bad_ttl = troupe(
        &dir,
        &[
            "credential",
            "issue",
            "--authority",
            "authority.key",
            "--subject",
            &node,
            "--ttl",
            "5y",
            "--out",
            "x.cred",
        ],
    );
    assert!(!bad_ttl.status.success());
    assert!(stderr(&bad_ttl).contains("unknown unit"), "{}", stderr(&bad_ttl));
}

#[test]
fn policies_are_checked_with_the_decision_and_why() {
    let dir = scratch("policy");
    let policy = r#"(and (= subject.team "research") (>= subject.level 2))"#;
    let allow = troupe(
        &dir,
        &[
            "policy",
            "check",
            policy,
            "--attr",
            "subject.team=research",
            "--attr",
            "subject.level=3",
        ],
    );
    assert_eq!(allow.status.code(), Some(0));
    assert_eq!(stdout(&allow), "allow");
    let deny = troupe(
        &dir,
        &["policy", "check", policy, "--attr", "subject.team=research"],
    );
    assert_eq!(deny.status.code(), Some(1));
    assert_eq!(stdout(&deny), "deny: `subject.level` is not set");
    let invalid = troupe(&dir, &["policy", "check", "(= subject.team"]);
    assert_eq!(invalid.status.code(), Some(2));
    assert_eq!(stdout(&invalid), "invalid policy at byte 0: `(` is never closed");
}

/// The first line `troupe inlet` prints: `inlet <addr> -> outlet <name> at <peer>`.
async fn inlet_addr(child: &mut tokio::process::Child) -> std::net::SocketAddr {
    use tokio::io::AsyncBufReadExt as _;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("the inlet says where it listens within 30 s")
        .expect("stdout")
        .expect("a line");
    line.split_whitespace()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("an address in `{line}`"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inlet_reaches_an_outlet_its_credential_opens_and_says_when_it_is_denied() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use troupe::secure::{Identifier, Node, TrustPolicy};
    let dir = scratch("inlet");
    let id = |o: Output| {
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let operator = id(troupe(&dir, &["identity", "create", "operator.key"]));
    let stranger = id(troupe(&dir, &["identity", "create", "stranger.key"]));
    let authority = id(troupe(&dir, &["authority", "create", "authority.key"]));
    let issued = troupe(
        &dir,
        &[
            "credential",
            "issue",
            "--authority",
            "authority.key",
            "--subject",
            &operator,
            "--attr",
            "role=operator",
            "--out",
            "operator.cred",
        ],
    );
    assert!(issued.status.success(), "{}", stderr(&issued));
    assert!(!stranger.is_empty());

    // A service on loopback (echo), behind an outlet that only operators may open.
    let service = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service_addr = service.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = service.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let system = System::new();
    let node = Node::builder()
        .trust(TrustPolicy::any())
        .trust_authority(authority.parse::<Identifier>().unwrap())
        .start(&system)
        .await
        .unwrap();
    node.outlet_with_policy("echo", service_addr.to_string(), r#"role = "operator""#)
        .unwrap();
    let (node_id, node_addr) = (node.identifier().to_string(), node.addr().to_string());
    let inlet = |key: &str, credential: Option<&str>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_troupe"));
        cmd.current_dir(&dir)
            .args([
                "inlet",
                "--identity",
                key,
                "--peer-id",
                &node_id,
                "--peer",
                &node_addr,
            ])
            .args(["--outlet", "echo"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(c) = credential {
            cmd.args(["--credential", c]);
        }
        cmd.spawn().expect("run troupe inlet")
    };

    // The operator: bytes go through the portal and back.
    let mut child = inlet("operator.key", Some("operator.cred"));
    let addr = inlet_addr(&mut child).await;
    for round in 0..2 {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let sent = format!("hello {round} through the portal");
        conn.write_all(sent.as_bytes()).await.unwrap();
        let mut back = vec![0; sent.len()];
        tokio::time::timeout(std::time::Duration::from_secs(20), conn.read_exact(&mut back))
            .await
            .expect("an echo within 20 s")
            .unwrap();
        assert_eq!(back, sent.as_bytes());
    }
    child.kill().await.unwrap();

    // A node without the credential is told at once, and the command fails.
    let child = inlet("stranger.key", None);
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the refused inlet ends within 30 s")
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("denied"), "{}", stderr(&out));
    node.shutdown().await;
    system.shutdown().await;
}
