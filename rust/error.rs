//! The one error type of the scheduler core.
//!
//! Every message names the offending argument, says what is wrong with it and,
//! where it helps, how to fix it. `rust/py.rs` turns each variant into a Python
//! `ValueError`; nothing in the core panics on user input.

use std::fmt;

/// Why an input was rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A scalar argument is out of its domain (`eps`, `beta`, `budget`, `p`, ...).
    InvalidScalar {
        /// Argument name as the Python API spells it.
        arg: &'static str,
        /// The rejected value.
        value: f64,
        /// The accepted domain, e.g. "in (0, 1)".
        expected: &'static str,
    },
    /// An array element is NaN, infinite, negative or otherwise out of range.
    InvalidElement {
        /// Argument name.
        arg: &'static str,
        /// Position of the first bad element.
        index: usize,
        /// Human-readable rendering of the bad value.
        value: String,
        /// The accepted domain.
        expected: &'static str,
    },
    /// Two arrays that must align do not.
    LengthMismatch {
        /// Argument that has the wrong length.
        arg: &'static str,
        /// Its length.
        got: usize,
        /// The length it must have.
        expected: usize,
        /// Which argument fixes the expected length.
        reference: &'static str,
    },
    /// An option string or structure is not recognised.
    InvalidOption {
        /// Argument name.
        arg: &'static str,
        /// Explanation.
        message: String,
    },
    /// A saved curriculum state does not fit this curriculum.
    InvalidState {
        /// Explanation.
        message: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidScalar {
                arg,
                value,
                expected,
            } => write!(f, "{arg} must be {expected}, got {value}"),
            Error::InvalidElement {
                arg,
                index,
                value,
                expected,
            } => write!(
                f,
                "{arg}[{index}] is {value}; every element of {arg} must be {expected}"
            ),
            Error::LengthMismatch {
                arg,
                got,
                expected,
                reference,
            } => write!(
                f,
                "{arg} has length {got} but must have length {expected} (set by {reference})"
            ),
            Error::InvalidOption { arg, message } => write!(f, "{arg}: {message}"),
            Error::InvalidState { message } => write!(f, "state_dict: {message}"),
        }
    }
}

impl std::error::Error for Error {}

/// Result alias of the core.
pub type Result<T> = std::result::Result<T, Error>;

/// Checks that every element is finite and `>= 0`; returns their sum (in
/// four interleaved partial sums, so the scan is not one long chain of
/// dependent additions), which callers check for overflow.
pub(crate) fn check_nonneg_finite(arg: &'static str, xs: &[f64]) -> Result<f64> {
    // Fast path: one branch-free scan for the sum, the minimum and the
    // maximum (vector min/max instructions): a negative element shows in the
    // minimum, an infinite one in the maximum, a NaN in the sum (min and max
    // skip NaN, but a sum that meets one stays NaN). The slow path finds
    // the first offender.
    let mut acc = [0.0f64; 4];
    let mut lo = [f64::INFINITY; 4];
    let mut hi = [0.0f64; 4];
    let chunks = xs.chunks_exact(4);
    let rest = chunks.remainder();
    for ch in chunks {
        for j in 0..4 {
            acc[j] += ch[j];
            lo[j] = lo[j].min(ch[j]);
            hi[j] = hi[j].max(ch[j]);
        }
    }
    for &x in rest {
        acc[0] += x;
        lo[0] = lo[0].min(x);
        hi[0] = hi[0].max(x);
    }
    let ok = lo.iter().all(|&l| l >= 0.0)
        && hi.iter().all(|&h| h < f64::INFINITY)
        && !acc.iter().any(|a| a.is_nan());
    if ok {
        return Ok((acc[0] + acc[1]) + (acc[2] + acc[3]));
    }
    let (index, value) = xs
        .iter()
        .enumerate()
        .find(|(_, x)| !(x.is_finite() && **x >= 0.0))
        .map(|(i, x)| (i, *x))
        .unwrap_or((0, f64::NAN));
    Err(Error::InvalidElement {
        arg,
        index,
        value: format!("{value}"),
        expected: "finite and >= 0",
    })
}

/// Checks a length against the reference length.
pub(crate) fn check_len(
    arg: &'static str,
    got: usize,
    expected: usize,
    reference: &'static str,
) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            arg,
            got,
            expected,
            reference,
        })
    }
}

/// The core numbers items with u32 (2^32 - 1 at most): `n` items of `arg`
/// pass, more are refused instead of having their indices wrap.
pub(crate) fn check_item_count(arg: &'static str, n: usize) -> Result<()> {
    if n <= u32::MAX as usize {
        Ok(())
    } else {
        Err(Error::InvalidOption {
            arg,
            message: format!(
                "has {n} elements; kpod's core supports at most {} (its item indices are 32-bit); \
                 split the input",
                u32::MAX
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_count_limit_is_u32() {
        assert!(check_item_count("costs", u32::MAX as usize).is_ok());
        let e = check_item_count("costs", u32::MAX as usize + 1).unwrap_err();
        assert!(
            e.to_string().starts_with("costs: has 4294967296 elements"),
            "{e}"
        );
    }
}
