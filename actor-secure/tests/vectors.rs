//! Golden vectors with fixed keys: the identifier, the identity file, the signed bytes,
//! the handshake payload and the agent attestation. A change in any of these bytes breaks
//! compatibility with stored identities or with peers, so it must be deliberate: rerun
//! with `TROUPE_UPDATE_VECTORS=1` and say why in the commit. (The handshake transcript and
//! transport frames are pinned by a unit test against `tests/vectors/transcript.txt`.)

use actor_secure::signing::{signed_bytes, Purpose};
use actor_secure::wire::HandshakePayload;
use actor_secure::{attrs, AgentAttestation, Authority, Credential, Identifier, Identity};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn identity_wire_formats_match_the_golden_vectors() {
    let node = Identity::from_seed(&[0x01; 32]);
    let agent = node.derive_agent("counter");
    let payload = HandshakePayload::sign(&node, &[0x22; 32], 1_900_000_000);
    let attestation = node.attest_agent_until(&agent.identifier(), 1_900_000_000);
    let authority = Authority::from_identity(Identity::from_seed(&[0x0a; 32]));
    let credential = authority
        .issue_between(
            node.identifier(),
            attrs! { "team" => "research", "role" => "planner" },
            1_800_000_000,
            1_900_000_000,
        )
        .unwrap();
    let got = format!(
        "public_key {}\nidentifier {}\nidentity_file {}\nsigned_bytes_noise_static {}\n\
         handshake_payload {}\nagent_counter_identifier {}\nattestation {}\ncredential {}\n",
        hex(&node.public().to_bytes()),
        node.identifier(),
        hex(&node.to_file_bytes()),
        hex(&signed_bytes(Purpose::NoiseStaticKey, &[0x22; 32])),
        hex(&payload.encode()),
        agent.identifier(),
        hex(&attestation.to_bytes()),
        hex(&credential.to_bytes()),
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/identity.txt");
    if std::env::var_os("TROUPE_UPDATE_VECTORS").is_some() {
        std::fs::write(path, &got).unwrap();
    }
    let want = std::fs::read_to_string(path).expect("golden vector file");
    assert_eq!(got, want);

    // And the pinned bytes decode back to the same values.
    let id_line = want.lines().find_map(|l| l.strip_prefix("identifier ")).unwrap();
    assert_eq!(id_line.parse::<Identifier>().unwrap(), node.identifier());
    let decoded = HandshakePayload::decode(&payload.encode()).unwrap();
    assert!(decoded.verify(&[0x22; 32], 1_900_000_000 - 60).is_ok());
    let cred_line = want.lines().find_map(|l| l.strip_prefix("credential ")).unwrap();
    let cred_bytes: Vec<u8> = (0..cred_line.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&cred_line[i..i + 2], 16).unwrap())
        .collect();
    let pinned = Credential::from_bytes(&cred_bytes).unwrap();
    let verified = pinned
        .verify_at(
            &[authority.identifier()],
            &node.identifier(),
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_850_000_000),
        )
        .unwrap();
    assert_eq!(verified.get("team"), Some("research"));
    let att = AgentAttestation::from_bytes(&attestation.to_bytes()).unwrap();
    assert_eq!(att.agent(), &agent.identifier());
}
