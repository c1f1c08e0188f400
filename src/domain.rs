//! Directory vocabulary shared by every layer: sectors, organisation kinds,
//! region codes. Parsing happens once, at the edge, into these types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Sector of an institution, as used by the independent quality assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sector {
    SocialServices,
    Education,
    Culture,
    Health,
}

/// Kind of an organisation taking part in the assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrganisationKind {
    /// Regional branch of a society of disabled people, or a local NGO.
    DisabilityOrganisation,
    /// Regional ministry or department that reviews the evidence.
    Ministry,
    /// Organisation that collects and analyses the data.
    Operator,
    /// Public council (общественный совет) approving the rating.
    PublicCouncil,
}

/// What a user may do. Scope (organisation, region, sector) narrows it further.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Fills checklists on site; sees only their own audits.
    Volunteer,
    /// Leads the volunteers of one disability organisation.
    Coordinator,
    /// Ministry staff reviewing evidence in their region and sector.
    Reviewer,
    /// Member of a public council approving the rating.
    Council,
    /// Collects and analyses data; manages the directory in their scope.
    Operator,
    /// Manages everything, including users and organisations.
    Admin,
}

impl Role {
    /// Whether the role may create and change institutions and sites.
    #[must_use]
    pub fn manages_directory(self) -> bool {
        matches!(self, Self::Admin | Self::Operator)
    }
}

/// Defines `as_str` and `FromStr` over the serde names of a unit enum, so the
/// database, the API and the command line spell values identically.
macro_rules! text_enum {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// All values, in declaration order.
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),+];

            /// The stable text form used in the API and the database.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self { $(<$ty>::$variant => $text),+ }
            }
        }

        impl FromStr for $ty {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(<$ty>::$variant),)+
                    _ => Err(UnknownValue {
                        value: s.to_owned(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(Role {
    Volunteer => "volunteer",
    Coordinator => "coordinator",
    Reviewer => "reviewer",
    Council => "council",
    Operator => "operator",
    Admin => "admin",
});

text_enum!(Sector {
    SocialServices => "social_services",
    Education => "education",
    Culture => "culture",
    Health => "health",
});

text_enum!(OrganisationKind {
    DisabilityOrganisation => "disability_organisation",
    Ministry => "ministry",
    Operator => "operator",
    PublicCouncil => "public_council",
});

/// A text value outside its enumeration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not one of: {}", expected.join(", "))]
pub struct UnknownValue {
    pub value: String,
    pub expected: &'static [&'static str],
}

/// Two-digit code of a subject of the Russian Federation, e.g. `48`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "48", pattern = "^[0-9]{2}$")]
pub struct RegionCode(String);

impl RegionCode {
    /// The code as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A region code that is not two digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("region code must be two digits, got `{0}`")]
pub struct BadRegionCode(pub String);

impl TryFrom<String> for RegionCode {
    type Error = BadRegionCode;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.len() == 2 && value.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(value))
        } else {
            Err(BadRegionCode(value))
        }
    }
}

impl FromStr for RegionCode {
    type Err = BadRegionCode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_owned())
    }
}

impl From<RegionCode> for String {
    fn from(code: RegionCode) -> Self {
        code.0
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `c` is a control character that text the service keeps may not
/// hold: every one but the tab and the line breaks.
#[must_use]
pub fn is_refused_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// The first control character in `text` that it may not hold (see
/// [`is_refused_control`]). Names, addresses, comments, answers and other
/// text from clients hold none: PostgreSQL cannot store U+0000 in text at
/// all, and the others are binary debris, not something a person typed.
#[must_use]
pub fn refused_control(text: &str) -> Option<char> {
    text.chars().find(|&c| is_refused_control(c))
}

/// How a refused control character is named in an error message.
#[must_use]
pub fn describe_control(c: char) -> String {
    format!(
        "holds the control character U+{:04X}; text may hold tabs and line breaks, \
         no other control characters",
        u32::from(c)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip_and_match_serde() {
        for sector in Sector::ALL {
            assert_eq!(sector.as_str().parse::<Sector>(), Ok(*sector));
            let json = serde_json::to_string(sector).expect("serialises");
            assert_eq!(json, format!("\"{}\"", sector.as_str()));
        }
        for kind in OrganisationKind::ALL {
            assert_eq!(kind.as_str().parse::<OrganisationKind>(), Ok(*kind));
        }
    }

    #[test]
    fn unknown_sector_lists_the_choices() {
        let err = "schools".parse::<Sector>().expect_err("not a sector");
        assert_eq!(
            err.to_string(),
            "`schools` is not one of: social_services, education, culture, health"
        );
    }

    #[test]
    fn region_codes_are_two_digits() {
        assert!("48".parse::<RegionCode>().is_ok());
        assert!("4".parse::<RegionCode>().is_err());
        assert!("4a".parse::<RegionCode>().is_err());
        assert!("480".parse::<RegionCode>().is_err());
    }
}
