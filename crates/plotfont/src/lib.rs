//! The font every PNG the project draws uses (the evaluation's plots, the load benchmark's),
//! embedded so plots render the same on any machine, whatever fonts it has. Its own crate so
//! that what draws a plot need not depend on what else draws one.

use plotters::style::FontStyle;
use std::sync::Once;

/// DejaVu Sans (see assets/DejaVuSans.LICENSE).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the embedded font with plotters as "sans-serif" (once per process).
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}
