//! A node that cannot accept connections (behind NAT, say) reached through a relay.
//!
//! The edge node dials out to the relay and registers a name there; the client reaches
//! it by that name. The two end nodes run their own secure channel inside the relay's
//! links: the relay forwards bytes it cannot read, and both ends authenticate each
//! other, not the relay. All three nodes run in this one process to keep it short.
//!
//! ```text
//! cargo run --example relay
//! ```

use troupe::prelude::*;
use troupe::secure::{Node, Route, TrustPolicy};

/// An agent on the edge node.
#[derive(Debug, Default)]
pub struct Sensor {
    readings: Vec<f64>,
}

#[agent(remote)]
impl Sensor {
    #[handle]
    fn record(&mut self, value: f64) -> usize {
        self.readings.push(value);
        self.readings.len()
    }
    #[handle]
    fn mean(&self) -> Option<f64> {
        (!self.readings.is_empty()).then(|| self.readings.iter().sum::<f64>() / self.readings.len() as f64)
    }
    /// Which node called, as the edge node authenticated it (never the relay).
    #[handle]
    fn caller(&self, ctx: &mut Context<Self>) -> Option<String> {
        ctx.caller().map(|c| c.node().to_string())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let system = System::new();
    let (edge_id, client_id) = (Identity::generate(), Identity::generate());
    let (edge_name, client_name) = (edge_id.identifier(), client_id.identifier());

    // ANCHOR: relay
    // A node everyone can reach offers to relay, and says who may do what.
    let relay = Node::builder().trust(TrustPolicy::any()).start(&system).await?;
    relay
        .serve_relay()
        .register_policy(format!(r#"subject.identifier = "{edge_name}""#))? // who may take a name
        .route_policy(format!(r#"subject.identifier = "{client_name}""#))?; // who may reach one
                                                                            // ANCHOR_END: relay
    println!("relay:  listening on {}", relay.addr());

    // ANCHOR: register
    // The edge node dials out and registers; it keeps the registration (re-dialling
    // the relay if the link breaks) until told to stop.
    let edge = Node::builder()
        .identity(edge_id)
        .trust(TrustPolicy::allow([client_name, relay.identifier()]))
        .start(&system)
        .await?;
    edge.export("sensor", &system.spawn(Sensor::default()))?
        .policy(format!(r#"subject.identifier = "{client_name}""#))?;
    let registration = edge.register_at(relay.addr(), "sensor-hall-3").await?;
    // ANCHOR_END: register
    println!("edge:   registered at the relay as \"sensor-hall-3\"");

    // ANCHOR: reach
    // The client reaches it by name: a Route instead of an address.
    let client = Node::builder()
        .identity(client_id)
        .trust(TrustPolicy::allow([edge_name, relay.identifier()]))
        .start(&system)
        .await?;
    let route = Route::relay(relay.addr(), "sensor-hall-3");
    let sensor = client.lookup_via::<Sensor>("sensor", &route).await?;
    for value in [20.5, 21.0, 22.5] {
        sensor.record(value).await?;
    }
    println!(
        "client: mean of 3 readings through the relay = {:?}",
        sensor.mean().await?
    );
    // ANCHOR_END: reach
    let caller = sensor.caller().await?.unwrap_or_default();
    println!(
        "edge:   the call came from {} (the client: {}; the relay: {})",
        short(&caller),
        caller == client.identifier().to_string(),
        caller == relay.identifier().to_string()
    );

    // Someone the relay's route policy does not name gets a typed error.
    let stranger = Node::builder().trust(TrustPolicy::any()).start(&system).await?;
    match stranger.lookup_via::<Sensor>("sensor", &route).await {
        Err(e) => println!("stranger: {e}"),
        Ok(_) => return Err("a stranger got through the relay".into()),
    }

    registration.cancel();
    for node in [stranger, client, edge, relay] {
        node.shutdown().await;
    }
    system.shutdown().await;
    println!("done");
    Ok(())
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
