//! A library component: the normal density, for tasks that import
//! `wasmpar-examples:stats/norm`.

wit_bindgen::generate!({
    world: "wasmpar-examples:stats/library",
    path: "wit",
});

use exports::wasmpar_examples::stats::norm::Guest;

struct Stats;

export!(Stats);

impl Guest for Stats {
    fn pdf(x: f64, mean: f64, sd: f64) -> f64 {
        if sd.is_nan() || sd <= 0.0 {
            return f64::NAN;
        }
        let z = (x - mean) / sd;
        (-0.5 * z * z).exp() / (sd * (2.0 * core::f64::consts::PI).sqrt())
    }
}
