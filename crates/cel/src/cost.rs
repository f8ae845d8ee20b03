//! Runtime cost: the cel crate has no cost tracking, so this crate charges a per-thread
//! meter itself: every loop iteration by the size of its body (`instrument.rs`), and the
//! values and functions of this crate as they work (one unit per list element or map key
//! visited, per field read, per element compared or copied, per ~10 bytes of a string read
//! or scanned). Once the limit is reached, loops end and data-backed lists stop yielding
//! elements; the evaluation's result is then discarded and the budget error reported.
//! Static limits on estimated cost are checked when compiling (`check.rs`).

use std::cell::Cell;

/// Upstream's `PerCallLimit`: the most one expression may cost per evaluation.
pub const PER_CALL_LIMIT: u64 = 1_000_000;
/// Upstream's `RuntimeCELCostBudget`: what all the rules of one object may cost together.
pub const RUNTIME_BUDGET: u64 = 10_000_000;
/// Upstream's `StaticEstimatedCostLimit`: the most one rule's estimated cost may be.
pub const STATIC_ESTIMATED_COST_LIMIT: u64 = 10_000_000;
/// Upstream's `StaticEstimatedCRDCostLimit`: the estimated cost of all of a CRD's rules,
/// each times the number of times it may run per object.
pub const STATIC_ESTIMATED_CRD_COST_LIMIT: u64 = 100_000_000;

#[derive(Clone, Copy)]
struct Meter {
    used: u64,
    limit: u64,
}

thread_local! {
    static METER: Cell<Meter> = const { Cell::new(Meter { used: 0, limit: u64::MAX }) };
}

/// Charges `n` units; false once the limit is exceeded.
pub(crate) fn charge(n: u64) -> bool {
    METER.with(|m| {
        let mut meter = m.get();
        meter.used = meter.used.saturating_add(n);
        m.set(meter);
        meter.used <= meter.limit
    })
}

/// Whether the current evaluation has exceeded its limit.
pub(crate) fn exhausted() -> bool {
    METER.with(|m| {
        let meter = m.get();
        meter.used > meter.limit
    })
}

/// Runs `f` under a meter limited to `limit`; returns its result and the cost, which is
/// above `limit` when the budget ran out (and the result is then meaningless).
pub(crate) fn metered<T>(limit: u64, f: impl FnOnce() -> T) -> (T, u64) {
    let outer = METER.with(|m| m.replace(Meter { used: 0, limit }));
    let out = f();
    let used = METER.with(|m| m.replace(outer)).used;
    // The outer evaluation (if any) pays for the inner one.
    charge(used);
    (out, used)
}

/// Upstream's `getCostErrorMessage`.
pub(crate) fn cost_error_message(cost_name: &str, cost: u64, limit: u64) -> String {
    let factor = cost as f64 / limit as f64;
    let factor = if factor > 100.0 {
        "more than 100x".to_owned()
    } else if factor < 1.5 {
        format!("{factor:.6}x")
    } else {
        format!("{factor:.1}x")
    };
    format!(
        "{cost_name} exceeds budget by factor of {factor} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_limits_and_restores() {
        let ((), used) = metered(10, || {
            assert!(charge(5));
            assert!(!charge(6));
            assert!(exhausted());
        });
        assert_eq!(used, 11);
        assert!(!exhausted());
        assert!(
            cost_error_message("estimated rule cost", 2_000_000_000, 10_000_000)
                .contains("more than 100x")
        );
        assert!(cost_error_message("x", 12, 10).contains("factor of 1.200000x"));
    }
}
