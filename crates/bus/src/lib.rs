//! The in-process diagnosis event bus. Every step of a triage is published as a typed event;
//! subscribers (the SSE endpoint, later the PostgreSQL store) follow it. A slow subscriber must
//! never slow triage: it loses its place and is told so.
//!
//! Events carry ids, codes, levels and timings only, never what a person wrote, so that anything
//! downstream of the bus (a browser, a log, a table) can keep them without holding patient text.
//! The crate depends only on `domain`, whose enums (levels, breaker states) its events carry,
//! so the bus sits below every crate that publishes or follows events.
//!
//! Delivery is at most once per subscriber and in sequence order. A subscriber that falls more
//! than the channel capacity behind receives [`Item::Gap`] with the number of events it missed
//! and carries on from the oldest event still held; it can come back later with
//! [`Bus::subscribe`]'s `after` to pick up what the replay buffer still holds.

pub mod event;
mod hub;
pub mod schema;

pub use event::{DiagnosisEvent, DiagnosisEventKind, RankedCode};
pub use hub::{Bus, Filter, Item, Subscription};
