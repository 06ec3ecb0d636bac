//! The apps the stock `pods` binary hosts, selected by name in `pods.toml`
//! (`apps = ["inventory", "orders:bob"]`). An organization with apps of its own builds its own
//! node binary around [`pods_node::run`] with a [`Catalog`] of them.

use pods_node::privacy::Row;
use pods_node::{Catalog, NodeError};
use pods_sdk::{App, AppBuilder, AskError, Ctx, PerKeyState};

use crate::demo::{Order, Reservation, Reserve, orders, reserve};

/// Stock of each item at a new inventory node.
pub const INVENTORY_STOCK: u32 = 1_000_000;

/// Every app the stock binary hosts.
pub fn catalog() -> Catalog {
    Catalog::new()
        .with("shop", |_| Ok(crate::demo::shop()?))
        .with("inventory", |_| inventory())
        .with("orders", orders_at)
        .with("clinic", |_| clinic())
        .with("research", |_| research())
}

/// `clinic`: patients' visits, fed by `pods data import` into the external generator
/// `/clinic/generators/visits` (a dataset of the policy with `feed` naming it). Two workflows
/// read them: `study` (declare it in the policy as research under consent) and `care`
/// (declare it as care under contract); the policy gate decides, per event, what enters each.
pub fn clinic() -> Result<App, NodeError> {
    let app = AppBuilder::new("clinic");
    let visits = app.generator_external::<Row>("visits");
    app.workflow("study").source(&visits).identity().sink();
    app.workflow("care").source(&visits).identity().sink();
    Ok(app.build()?)
}

/// `research`: visits mirrored from a peer's exported stream (`[[import]] into =
/// "/research/generators/visits"`), read by the workflow `cohort` (declare it in this node's
/// policy to let it receive the personal events).
pub fn research() -> Result<App, NodeError> {
    let app = AppBuilder::new("research");
    let visits = app.generator_external::<Row>("visits");
    app.workflow("cohort").source(&visits).identity().sink();
    Ok(app.build()?)
}

/// `inventory`: the portal `/inventory/portals/reserve` (export it to let peers reserve), with
/// per-item stock starting at [`INVENTORY_STOCK`].
pub fn inventory() -> Result<App, NodeError> {
    let app = AppBuilder::new("inventory");
    let portal = app.portal_keyed::<Reserve, Reservation, _>("reserve", |r| r.item.clone());
    let stock = PerKeyState::<u32>::with_initial("stock", INVENTORY_STOCK);
    let none = app.generator_from_atoms::<Reserve>("restock", vec![]);
    app.workflow("stock")
        .source(&none)
        .replier(&portal, move |ctx, req: Reserve, to| {
            let (left, answer) = reserve(stock.get(ctx), &req);
            stock.set(ctx, left);
            ctx.reply(to, answer);
        });
    Ok(app.build()?)
}

/// `orders:PEER`: the demo's orders, each reserved at the inventory of the peer called `PEER`
/// (`/peers/PEER/inventory/portals/reserve`); the checkout workflow emits one line per order.
pub fn orders_at(peer: &str) -> Result<App, NodeError> {
    if peer.is_empty() {
        return Err(NodeError::Config(
            "the orders app needs the inventory's peer: list it as \"orders:PEER\"".to_owned(),
        ));
    }
    let app = AppBuilder::new("orders");
    let path = format!("/peers/{peer}/inventory/portals/reserve");
    let portal = app.portal_ref::<Reserve, Reservation>(&path);
    let orders = app.generator_from_atoms("orders", orders());
    let asked = portal.clone();
    app.workflow("checkout")
        .source(&orders)
        .asker(&portal, move |ctx: &mut Ctx<'_, String>, o: Order| {
            let h = ctx.ask(
                &asked,
                Reserve {
                    item: o.item.clone(),
                    quantity: o.quantity,
                },
            );
            ctx.on_reply(
                h,
                move |ctx, r: Result<Reservation, AskError>| -> Result<(), AskError> {
                    ctx.emit(crate::demo::line(&o, &r?));
                    Ok(())
                },
            );
        })
        .sink();
    Ok(app.build()?)
}
