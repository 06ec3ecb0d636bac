//! The demo: an in-process shop. A cart workflow asks an inventory portal to reserve each item
//! ordered; the inventory keeps per-item stock and answers; the cart reports the outcome.

use pods_sdk::{AppBuilder, AskError, Ctx, DeterministicSystem, Error, PerKeyState, StreamItem};
use serde::{Deserialize, Serialize};

/// An order line put into a cart.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Order {
    /// Who orders.
    pub customer: String,
    /// What.
    pub item: String,
    /// How many.
    pub quantity: u32,
}

/// A reservation request to the inventory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reserve {
    /// The item.
    pub item: String,
    /// How many.
    pub quantity: u32,
}

/// The inventory's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reservation {
    /// Reserved; this many are left.
    Reserved {
        /// Stock left after the reservation.
        left: u32,
    },
    /// Not enough stock; this many were available.
    OutOfStock {
        /// Stock available.
        available: u32,
    },
}

fn order(customer: &str, item: &str, quantity: u32) -> Order {
    Order {
        customer: customer.into(),
        item: item.into(),
        quantity,
    }
}

/// The orders the demo places, atom by atom (one atom per checkout).
pub fn orders() -> Vec<Vec<Order>> {
    vec![
        vec![order("alice", "apple", 3), order("alice", "pear", 1)],
        vec![order("bob", "apple", 5), order("bob", "fig", 2)],
        vec![order("carol", "apple", 4)],
        vec![order("dave", "pear", 2), order("dave", "fig", 1)],
    ]
}

/// Reserves `req` from `available` items: the stock left and the answer.
pub fn reserve(available: u32, req: &Reserve) -> (u32, Reservation) {
    if req.quantity <= available {
        let left = available - req.quantity;
        (left, Reservation::Reserved { left })
    } else {
        (available, Reservation::OutOfStock { available })
    }
}

/// The line a cart emits for an order and the inventory's answer.
pub fn line(o: &Order, r: &Reservation) -> String {
    match r {
        Reservation::Reserved { left } => {
            format!(
                "{}: {} x {} reserved ({left} left)",
                o.customer, o.quantity, o.item
            )
        }
        Reservation::OutOfStock { available } => format!(
            "{}: {} x {} refused, only {available} in stock",
            o.customer, o.quantity, o.item
        ),
    }
}

/// Builds the shop: the inventory (10 of each item to start) and the cart.
pub fn shop() -> Result<pods_sdk::App, Error> {
    let app = AppBuilder::new("shop");
    let inventory = app.portal_keyed::<Reserve, Reservation, _>("inventory", |r| r.item.clone());
    let stock = PerKeyState::<u32>::with_initial("stock", 10);
    let none = app.generator_from_atoms::<Reserve>("restock", vec![]);
    app.workflow("inventory")
        .source(&none)
        .replier(&inventory, move |ctx, req: Reserve, to| {
            let (left, answer) = reserve(stock.get(ctx), &req);
            stock.set(ctx, left);
            ctx.reply(to, answer);
        });
    let orders = app.generator_from_atoms("orders", orders());
    let portal = inventory.clone();
    app.workflow("cart")
        .source(&orders)
        .asker(&inventory, move |ctx: &mut Ctx<'_, String>, o: Order| {
            let h = ctx.ask(
                &portal,
                Reserve {
                    item: o.item.clone(),
                    quantity: o.quantity,
                },
            );
            ctx.on_reply(
                h,
                move |ctx, r: Result<Reservation, AskError>| -> Result<(), AskError> {
                    ctx.emit(line(&o, &r?));
                    Ok(())
                },
            );
        })
        .sink();
    app.build()
}

/// Runs the shop to completion with `seed` and returns the cart's output lines in order.
pub fn run(seed: u64) -> Result<Vec<String>, Error> {
    let mut system = DeterministicSystem::new(seed);
    system.launch(shop()?)?;
    let out = system.subscribe::<String>("/shop/workflows/cart/stream")?;
    let steps = system.run_until_quiescent();
    tracing::info!(steps, commits = system.storage().commits(), "demo finished");
    let mut lines = Vec::new();
    for item in out.items() {
        match item {
            StreamItem::Atom(events) => lines.extend(events.into_iter().map(|e| e.value)),
            StreamItem::Seal => {}
            StreamItem::Error(m) => lines.push(format!("error: {m}")),
        }
    }
    Ok(lines)
}
