//! The sdk's scenario, validation and property tests (one test binary).

mod properties;
mod regressions;
mod scenarios;
mod validation;

use pods_sdk::{
    App, AppBuilder, Ctx, Data, DeterministicSystem, Outcome, Portal, ReplyTo, StreamItem,
    Subscription,
};

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

/// Adds to `app` a workflow `name` that only answers `portal` with `on_ask` (its own input is an
/// empty generator).
pub fn serve<Req: Data, Rep: Data, R: Outcome + 'static>(
    app: &AppBuilder,
    name: &str,
    portal: &Portal<Req, Rep>,
    on_ask: impl Fn(&mut Ctx<'_, Req>, Req, ReplyTo<Rep>) -> R + Send + Sync + 'static,
) {
    let none = app.generator_from_atoms::<Req>(&format!("{name}-input"), vec![]);
    app.workflow(name)
        .source(&none)
        .replier(portal, on_ask)
        .sink();
}
