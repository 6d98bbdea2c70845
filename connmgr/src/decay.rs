//! How a decaying tag's value shrinks with time.

use std::fmt;
use std::sync::Arc;

/// The decay of a tag value: given the value and how many whole intervals passed,
/// the new value, or `None` to remove the tag from the peer.
///
/// Taking the number of intervals (rather than being applied once per interval) lets
/// the manager decay lazily: a value untouched for an hour is brought up to date in
/// one call.
#[derive(Clone)]
pub struct DecayFn(Arc<dyn Fn(i64, u64) -> Option<i64> + Send + Sync>);

impl DecayFn {
    /// A custom decay: `f(value, intervals)`; it is only called with `intervals >= 1`.
    pub fn new(f: impl Fn(i64, u64) -> Option<i64> + Send + Sync + 'static) -> DecayFn {
        DecayFn(Arc::new(f))
    }

    /// Subtracts `amount` per interval; the tag is removed once the value is at or
    /// below zero.
    pub fn fixed(amount: i64) -> DecayFn {
        DecayFn::new(move |value, intervals| {
            let steps = i64::try_from(intervals).unwrap_or(i64::MAX);
            let after = value.saturating_sub(amount.saturating_mul(steps));
            (after > 0).then_some(after)
        })
    }

    /// Multiplies by `coefficient` (clamped to `0.0..=1.0`) per interval, rounding
    /// down; the tag is removed once the value reaches zero.
    pub fn linear(coefficient: f64) -> DecayFn {
        let coefficient = if coefficient.is_nan() {
            0.0
        } else {
            coefficient.clamp(0.0, 1.0)
        };
        DecayFn::new(move |value, intervals| {
            let steps = i32::try_from(intervals).unwrap_or(i32::MAX);
            // `as` saturates float-to-int conversions, so this cannot overflow.
            let after = (value as f64 * coefficient.powi(steps)).floor() as i64;
            (after != 0).then_some(after)
        })
    }

    /// Removes the tag once one interval has passed since its last bump.
    pub fn expire() -> DecayFn {
        DecayFn::new(|_, _| None)
    }

    /// Never changes the value.
    pub fn none() -> DecayFn {
        DecayFn::new(|value, _| Some(value))
    }

    /// Applies the decay for `intervals` whole intervals.
    pub fn apply(&self, value: i64, intervals: u64) -> Option<i64> {
        if intervals == 0 {
            return Some(value);
        }
        (self.0)(value, intervals)
    }
}

impl fmt::Debug for DecayFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DecayFn(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_subtracts_per_interval_and_removes_at_zero() {
        let d = DecayFn::fixed(3);
        assert_eq!(d.apply(10, 0), Some(10));
        assert_eq!(d.apply(10, 1), Some(7));
        assert_eq!(d.apply(10, 3), Some(1));
        assert_eq!(d.apply(10, 4), None);
        assert_eq!(d.apply(10, u64::MAX), None);
    }

    #[test]
    fn linear_halves_and_removes_at_zero() {
        let d = DecayFn::linear(0.5);
        assert_eq!(d.apply(100, 1), Some(50));
        assert_eq!(d.apply(100, 2), Some(25));
        assert_eq!(d.apply(100, 7), None);
        assert_eq!(d.apply(i64::MAX, u64::MAX), None);
    }

    #[test]
    fn expire_and_none() {
        assert_eq!(DecayFn::expire().apply(5, 0), Some(5));
        assert_eq!(DecayFn::expire().apply(5, 1), None);
        assert_eq!(DecayFn::none().apply(5, 1_000), Some(5));
    }
}
