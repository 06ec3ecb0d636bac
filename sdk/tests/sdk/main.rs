//! The sdk's scenario, validation and property tests (one test binary).

mod properties;
mod regressions;
mod scenarios;
mod validation;

use pods_sdk::{App, Data, DeterministicSystem, StreamItem, Subscription};

/// Launches `app` with `seed`, subscribes to `stream`, runs to quiescence.
pub fn run<T: Data>(app: App, seed: u64, stream: &str) -> (DeterministicSystem, Subscription<T>) {
    let mut system = DeterministicSystem::new(seed);
    system.launch(app).expect("launch");
    let sub = system.subscribe::<T>(stream).expect("subscribe");
    system.run_until_quiescent();
    (system, sub)
}

/// The atoms' values, then whether the stream was sealed.
pub fn atoms_and_seal<T: Data + PartialEq>(sub: &Subscription<T>) -> (Vec<Vec<T>>, bool) {
    (sub.values(), sub.items().last() == Some(&StreamItem::Seal))
}
