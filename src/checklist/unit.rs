//! Units of measurement for number items and expression literals.
//!
//! Every measured value is kept in the unit the volunteer used and converted to the
//! dimension's base unit (metres, percent, seconds, ...) only for comparison, so a rule
//! written in metres checks an answer given in centimetres correctly. Units of different
//! dimensions never mix: comparing a slope with a width is a load error.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A unit a number item is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Unit {
    /// Metre, the base unit of length.
    #[serde(rename = "m")]
    Metre,
    /// Centimetre.
    #[serde(rename = "cm")]
    Centimetre,
    /// Millimetre.
    #[serde(rename = "mm")]
    Millimetre,
    /// Percent (slopes are given in percent: 1:20 is 5 %).
    #[serde(rename = "percent", alias = "%")]
    Percent,
    /// Degree of angle.
    #[serde(rename = "deg")]
    Degree,
    /// Lux (illuminance).
    #[serde(rename = "lx")]
    Lux,
    /// Decibel (sound level).
    #[serde(rename = "dB")]
    Decibel,
    /// Newton (door opening force).
    #[serde(rename = "N")]
    Newton,
    /// Second, the base unit of time.
    #[serde(rename = "s")]
    Second,
    /// Minute.
    #[serde(rename = "min")]
    Minute,
}

/// The physical dimension of a unit; only units of one dimension can be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// Metres, centimetres, millimetres.
    Length,
    /// Percent.
    Ratio,
    /// Degrees.
    Angle,
    /// Lux.
    Illuminance,
    /// Decibels.
    SoundLevel,
    /// Newtons.
    Force,
    /// Seconds, minutes.
    Time,
}

impl Unit {
    /// Every unit, for parsing and documentation.
    pub const ALL: [Unit; 10] = [
        Unit::Metre,
        Unit::Centimetre,
        Unit::Millimetre,
        Unit::Percent,
        Unit::Degree,
        Unit::Lux,
        Unit::Decibel,
        Unit::Newton,
        Unit::Second,
        Unit::Minute,
    ];

    /// The symbol used in YAML, answers and expressions (`m`, `cm`, `percent`, ...).
    #[must_use]
    pub const fn symbol(self) -> &'static str {
        match self {
            Unit::Metre => "m",
            Unit::Centimetre => "cm",
            Unit::Millimetre => "mm",
            Unit::Percent => "percent",
            Unit::Degree => "deg",
            Unit::Lux => "lx",
            Unit::Decibel => "dB",
            Unit::Newton => "N",
            Unit::Second => "s",
            Unit::Minute => "min",
        }
    }

    /// Parses a unit symbol; `%` is accepted for percent.
    #[must_use]
    pub fn from_symbol(symbol: &str) -> Option<Unit> {
        if symbol == "%" {
            return Some(Unit::Percent);
        }
        Unit::ALL.into_iter().find(|u| u.symbol() == symbol)
    }

    /// The dimension this unit measures.
    #[must_use]
    pub const fn dimension(self) -> Dimension {
        match self {
            Unit::Metre | Unit::Centimetre | Unit::Millimetre => Dimension::Length,
            Unit::Percent => Dimension::Ratio,
            Unit::Degree => Dimension::Angle,
            Unit::Lux => Dimension::Illuminance,
            Unit::Decibel => Dimension::SoundLevel,
            Unit::Newton => Dimension::Force,
            Unit::Second | Unit::Minute => Dimension::Time,
        }
    }

    /// How many base units one of this unit is, as a fraction `(numerator, denominator)`
    /// of small integers: dividing by 100 rather than multiplying by 0.01 gives the double
    /// nearest to the decimal result (90 cm is exactly the same `f64` as 0.9 m, 1.4 cm is
    /// 14 mm, not 14.000000000000002), so range checks at a bound do not reject an answer
    /// that is exactly on it.
    const fn ratio(self) -> (u32, u32) {
        match self {
            Unit::Centimetre => (1, 100),
            Unit::Millimetre => (1, 1000),
            Unit::Minute => (60, 1),
            _ => (1, 1),
        }
    }

    /// Converts a value in this unit to the dimension's base unit.
    #[must_use]
    pub fn to_base(self, value: f64) -> f64 {
        let (num, den) = self.ratio();
        scale(value, num, den)
    }

    /// Converts `value` given in `from` into this unit, or `None` when the dimensions differ.
    #[must_use]
    pub fn convert_from(self, value: f64, from: Unit) -> Option<f64> {
        if self.dimension() != from.dimension() {
            return None;
        }
        let (from_num, from_den) = from.ratio();
        let (to_num, to_den) = self.ratio();
        // value · (from_num / from_den) / (to_num / to_den), with the integer fraction
        // reduced first so that at most one rounding happens.
        Some(scale(value, from_num * to_den, from_den * to_num))
    }
}

/// `value · num / den` with `num / den` reduced, rounding once where the fraction allows.
fn scale(value: f64, num: u32, den: u32) -> f64 {
    let g = gcd(num, den);
    let (num, den) = (num / g, den / g);
    match (num, den) {
        (1, 1) => value,
        (n, 1) => value * f64::from(n),
        (1, d) => value / f64::from(d),
        (n, d) => value * f64::from(n) / f64::from(d),
    }
}

const fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    if a == 0 { 1 } else { a }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_within_a_dimension_only() {
        assert_eq!(Unit::Metre.convert_from(90.0, Unit::Centimetre), Some(0.9));
        assert_eq!(
            Unit::Millimetre.convert_from(0.014, Unit::Metre),
            Some(14.0)
        );
        assert_eq!(Unit::Metre.convert_from(5.0, Unit::Percent), None);
        assert_eq!(Unit::from_symbol("%"), Some(Unit::Percent));
    }

    /// Regression: conversions multiplied by 0.01 / 0.001, so 1.4 cm became
    /// 14.000000000000002 mm and an answer exactly on a range bound was rejected.
    #[test]
    fn conversions_land_on_the_decimal_value() {
        assert_eq!(
            Unit::Millimetre.convert_from(1.4, Unit::Centimetre),
            Some(14.0)
        );
        assert_eq!(Unit::Centimetre.to_base(90.0), 0.9);
        assert_eq!(Unit::Centimetre.to_base(7.0), 0.07);
        assert_eq!(Unit::Minute.convert_from(90.0, Unit::Second), Some(1.5));
    }
}
