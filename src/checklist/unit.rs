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

    /// How many base units one of this unit is.
    const fn factor(self) -> f64 {
        match self {
            Unit::Centimetre => 0.01,
            Unit::Millimetre => 0.001,
            Unit::Minute => 60.0,
            _ => 1.0,
        }
    }

    /// Converts a value in this unit to the dimension's base unit.
    #[must_use]
    pub fn to_base(self, value: f64) -> f64 {
        value * self.factor()
    }

    /// Converts `value` given in `from` into this unit, or `None` when the dimensions differ.
    #[must_use]
    pub fn convert_from(self, value: f64, from: Unit) -> Option<f64> {
        (self.dimension() == from.dimension()).then(|| from.to_base(value) / self.factor())
    }
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
}
