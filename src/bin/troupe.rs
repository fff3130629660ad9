//! `troupe`: identities, authorities, credentials and policies, for operators.
//!
//! ```text
//! troupe identity create node.key
//! troupe identity show node.key
//! troupe authority create authority.key
//! troupe credential issue --authority authority.key --subject I... --attr team=research --ttl 1h --out node.cred
//! troupe credential show node.cred [--trust I...]
//! troupe policy check '(= subject.team "research")' --attr subject.team=research
//! troupe inlet --identity op.key --credential op.cred --peer-id I... --peer host:7000 --outlet live-view --bind 127.0.0.1:8080
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use troupe::abac::{Environment, Policy};
use troupe::secure::{Attributes, Authority, Credential, Identifier, Identity, Node, NodeError, TrustPolicy};
use troupe::System;

/// Identities, authorities, credentials and access policies for troupe nodes.
#[derive(Debug, Parser)]
#[command(name = "troupe", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Node identities (Ed25519 key files).
    #[command(subcommand)]
    Identity(KeyCommand),
    /// Authorities: identities whose signatures vouch for attributes.
    #[command(subcommand)]
    Authority(KeyCommand),
    /// Credentials: an authority's signed attributes for a subject.
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Access policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Opens a local TCP port whose connections reach an outlet on another node through
    /// a portal (e.g. a live view served behind that node): runs until stopped (Ctrl-C).
    Inlet(InletArgs),
}

#[derive(Debug, Args)]
struct InletArgs {
    /// This node's key file: the identity the other node's policy decides on.
    #[arg(long, value_name = "FILE")]
    identity: PathBuf,
    /// A credential file for this node, presented to the other node (repeatable).
    #[arg(long = "credential", value_name = "FILE")]
    credentials: Vec<PathBuf>,
    /// The identifier of the node to reach: the only node this one trusts.
    #[arg(long = "peer-id", value_name = "IDENTIFIER")]
    peer_id: Identifier,
    /// Its address.
    #[arg(long, value_name = "HOST:PORT")]
    peer: String,
    /// The outlet's name on that node.
    #[arg(long, value_name = "NAME")]
    outlet: String,
    /// Where to listen for local connections.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:0")]
    bind: String,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Creates a new key file (mode 0600); never overwrites one.
    Create {
        /// Where to write it.
        file: PathBuf,
    },
    /// Prints the identifier of a key file.
    Show {
        /// The key file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CredentialCommand {
    /// Issues a credential and writes it to a file (mode 0600; never overwrites one).
    Issue(IssueArgs),
    /// Decodes a credential file and prints it; with --trust, verifies it too.
    Show {
        /// The credential file.
        file: PathBuf,
        /// An authority to trust (repeatable); the credential is then verified.
        #[arg(long = "trust", value_name = "IDENTIFIER")]
        trust: Vec<Identifier>,
    },
}

#[derive(Debug, Args)]
struct IssueArgs {
    /// The authority's key file.
    #[arg(long, value_name = "FILE")]
    authority: PathBuf,
    /// The identifier of the node the credential is for.
    #[arg(long, value_name = "IDENTIFIER")]
    subject: Identifier,
    /// An attribute, `name=value` (repeatable).
    #[arg(long = "attr", value_name = "NAME=VALUE", value_parser = name_value)]
    attrs: Vec<(String, String)>,
    /// How long it is valid: `90s`, `30m`, `1h`, `7d`.
    #[arg(long, default_value = "1h", value_parser = duration)]
    ttl: Duration,
    /// Where to write it.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Evaluates a policy against attributes and prints the decision and why. Exits 0 on
    /// allow, 1 on deny, 2 when the policy does not parse.
    Check {
        /// The policy text.
        policy: String,
        /// An attribute, `subject.team=research` (repeatable). `true`, `false` and whole
        /// numbers are typed; anything else is text.
        #[arg(long = "attr", value_name = "NAME=VALUE", value_parser = name_value)]
        attrs: Vec<(String, String)>,
    },
}

fn name_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got `{s}`")),
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("expected a number and a unit, got `{s}`"))?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => return Err(format!("unknown unit in `{s}`: use s, m, h or d")),
    };
    secs.map(Duration::from_secs)
        .ok_or_else(|| format!("`{s}` is too long"))
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Identity(KeyCommand::Create { file }) | Command::Authority(KeyCommand::Create { file }) => {
            let identity = Identity::create(&file).map_err(|e| e.to_string())?;
            println!("{}", identity.identifier());
        }
        Command::Identity(KeyCommand::Show { file }) | Command::Authority(KeyCommand::Show { file }) => {
            let identity = Identity::load(&file).map_err(|e| e.to_string())?;
            println!("{}", identity.identifier());
        }
        Command::Credential(CredentialCommand::Issue(args)) => {
            let authority = Identity::load(&args.authority)
                .map(Authority::from_identity)
                .map_err(|e| e.to_string())?;
            let mut attributes = Attributes::new();
            for (name, value) in args.attrs {
                attributes.insert(name, value);
            }
            let credential = authority
                .issue(args.subject, attributes, args.ttl)
                .map_err(|e| e.to_string())?;
            credential
                .save(&args.out)
                .map_err(|e| format!("{}: {e}", args.out.display()))?;
            println!("{}", args.out.display());
        }
        Command::Credential(CredentialCommand::Show { file, trust }) => {
            let credential = Credential::load(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            println!("subject     {}", credential.subject());
            println!("issuer      {}", credential.issuer());
            println!("not before  {} (unix seconds)", credential.not_before());
            println!("expires at  {} (unix seconds)", credential.expires_at());
            for (name, value) in credential.attributes().iter() {
                println!("attribute   {name}={value}");
            }
            if !trust.is_empty() {
                match credential.verify(&trust, credential.subject()) {
                    Ok(_) => println!("verified    yes"),
                    Err(e) => {
                        println!("verified    no: {e}");
                        return Ok(ExitCode::from(1));
                    }
                }
            }
        }
        Command::Policy(PolicyCommand::Check { policy, attrs }) => {
            let policy = match Policy::parse(&policy) {
                Ok(p) => p,
                Err(e) => {
                    println!("invalid policy {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let mut env = Environment::new();
            for (name, value) in attrs {
                match value.as_str() {
                    "true" => env.insert(name, true),
                    "false" => env.insert(name, false),
                    v => match v.parse::<i64>() {
                        Ok(n) => env.insert(name, n),
                        Err(_) => env.insert(name, v),
                    },
                }
            }
            let decision = policy.decide(&env);
            println!("{decision}");
            if !decision.is_allowed() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Inlet(args) => return inlet(args),
    }
    Ok(ExitCode::SUCCESS)
}

/// `troupe inlet`: a node of its own (the given identity and credentials, trusting only
/// the peer), one probe connection so that a refusal is reported at once (exit 1), then
/// the inlet until the process is stopped.
fn inlet(args: InletArgs) -> Result<ExitCode, String> {
    let identity = Identity::load(&args.identity).map_err(|e| format!("{}: {e}", args.identity.display()))?;
    let mut credentials = Vec::new();
    for file in &args.credentials {
        credentials.push(Credential::load(file).map_err(|e| format!("{}: {e}", file.display()))?);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(async move {
        let system = System::new();
        let mut builder = Node::builder()
            .identity(identity)
            .trust(TrustPolicy::allow([args.peer_id]))
            .listen("127.0.0.1:0");
        for credential in credentials {
            builder = builder.credential(credential);
        }
        let node = builder
            .start(&system)
            .await
            .map_err(|e| format!("cannot start a node: {e}"))?;
        // One connection first: a denial or a missing outlet is said here, not left to
        // each client connection (which an inlet can only close).
        match node.connect_outlet(args.peer.as_str(), &args.outlet).await {
            Ok(probe) => drop(probe),
            Err(e) => {
                let why = match &e {
                    NodeError::Denied => format!(
                        "the node at {} denied this identity the outlet `{}`",
                        args.peer, args.outlet
                    ),
                    _ => format!("cannot reach the outlet `{}` at {}: {e}", args.outlet, args.peer),
                };
                eprintln!("troupe: {why}");
                node.shutdown().await;
                return Ok(ExitCode::from(1));
            }
        }
        let inlet = node
            .inlet(args.bind.as_str(), args.peer.as_str(), &args.outlet)
            .await
            .map_err(|e| format!("cannot open the inlet on {}: {e}", args.bind))?;
        println!(
            "inlet {} -> outlet {} at {}",
            inlet.addr(),
            args.outlet,
            args.peer
        );
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        // Until the process is stopped; the inlet closes with it.
        std::future::pending::<()>().await;
        Ok(ExitCode::SUCCESS)
    })
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("troupe: {e}");
            ExitCode::from(2)
        }
    }
}
