//! Money: integer fen (分). Never floating point.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Neg, Sub};

/// An amount of money in fen (1 yuan = 100 fen).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Fen(pub i64);

impl Fen {
    pub const ZERO: Fen = Fen(0);
    /// The largest amount one line or one ticket may carry, either sign: 10,000,000.00 yuan. Imports
    /// refuse bigger ones (a column mix-up or a unit error, never a pharmacy sale) and so does the
    /// till; the engine keeps per-fact amounts in 4 bytes (±21,474,836.47 yuan) on this bound.
    pub const LIMIT: Fen = Fen(1_000_000_000);

    pub fn yuan(yuan: i64) -> Fen {
        Fen(yuan * 100)
    }

    /// Multiplies by a quantity in thousandths (milli-units), rounding half away from zero.
    pub fn times_milli(self, quantity_milli: i64) -> Fen {
        let p = self.0 as i128 * quantity_milli as i128;
        let r = if p >= 0 { (p + 500) / 1000 } else { (p - 500) / 1000 };
        Fen(r as i64)
    }
}

impl fmt::Display for Fen {
    /// Yuan with two decimals: `-12.05`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", a / 100, a % 100)
    }
}

impl Add for Fen {
    type Output = Fen;
    fn add(self, o: Fen) -> Fen {
        Fen(self.0 + o.0)
    }
}
impl AddAssign for Fen {
    fn add_assign(&mut self, o: Fen) {
        self.0 += o.0;
    }
}
impl Sub for Fen {
    type Output = Fen;
    fn sub(self, o: Fen) -> Fen {
        Fen(self.0 - o.0)
    }
}
impl Neg for Fen {
    type Output = Fen;
    fn neg(self) -> Fen {
        Fen(-self.0)
    }
}
impl std::iter::Sum for Fen {
    fn sum<I: Iterator<Item = Fen>>(iter: I) -> Fen {
        Fen(iter.map(|f| f.0).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_yuan() {
        assert_eq!(Fen(1250).to_string(), "12.50");
        assert_eq!(Fen(5).to_string(), "0.05");
        assert_eq!(Fen(-1205).to_string(), "-12.05");
    }

    #[test]
    fn multiplies_by_fractional_quantity() {
        // 拆零: a third of a 30.00 box (quantity 0.333) is 9.99.
        assert_eq!(Fen(3000).times_milli(333), Fen(999));
        assert_eq!(Fen(1999).times_milli(2500), Fen(4998)); // 49.975 rounds half up
        assert_eq!(Fen(-1999).times_milli(2500), Fen(-4998));
    }
}
