//! DICOM PS3.15 2026c Table E.1-1 (embedded), resolved for the Basic Profile with the Retain Patient Characteristics and Retain Longitudinal Temporal Information Modified Dates options.

use std::collections::HashMap;
use std::sync::LazyLock;

use dicom_core::Tag;

/// The table as shipped in data/deid/annex-e.tsv ("DICOM PS3.15 2026c, (c) NEMA").
const ANNEX_E_TSV: &str = include_str!("../data/deid/annex-e.tsv");

/// An action code of Table E.1-1a.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Replace with a non-zero-length dummy value.
    D,
    /// Replace with a zero-length value.
    Z,
    /// Remove.
    X,
    /// Keep (sequences: keep and apply the profile to the items).
    K,
    /// Clean (here: shift dates, see `deid`).
    C,
    /// Replace the UID with a consistently mapped new UID.
    U,
    /// Z unless the attribute is Type 1 (then D).
    ZD,
    /// X unless Type 2 (then Z).
    XZ,
    /// X unless Type 1 (then D).
    XD,
    /// X for Type 3, Z for Type 2, D for Type 1.
    XZD,
    /// X for Type 3, Z for Type 2, U on the referenced UIDs for Type 1.
    XZUStar,
}

impl Action {
    fn parse(code: &str) -> Option<Self> {
        Some(match code {
            "D" => Self::D,
            "Z" => Self::Z,
            "X" => Self::X,
            "K" => Self::K,
            "C" => Self::C,
            "U" => Self::U,
            "Z/D" => Self::ZD,
            "X/Z" => Self::XZ,
            "X/D" => Self::XD,
            "X/Z/D" => Self::XZD,
            "X/Z/U*" => Self::XZUStar,
            _ => return None,
        })
    }
}

/// Column indexes in annex-e.tsv.
const COL_TAG: usize = 0;
const COL_BASIC: usize = 4;
const COL_RTN_PATIENT_CHARS: usize = 9;
const COL_RTN_LONG_MODIF_DATES: usize = 11;

/// The effective action per attribute for this project's profile and options.
#[derive(Debug)]
pub struct ProfileTable {
    exact: HashMap<Tag, Action>,
    /// (group mask, group value, element, element is wildcard, action)
    masks: Vec<(u16, u16, u16, bool, Action)>,
    /// Number of data rows read (656 in the 2026c edition).
    pub rows: usize,
}

impl ProfileTable {
    /// Parses the TSV text; a malformed embedded table is an error (a unit test parses it).
    fn parse(text: &str) -> Result<Self, String> {
        let mut exact = HashMap::new();
        let mut masks = Vec::new();
        let mut rows = 0;
        for (index, line) in text.lines().enumerate().skip(1) {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() != 15 {
                return Err(format!("line {}: {} columns", index + 1, cols.len()));
            }
            let effective = [COL_RTN_PATIENT_CHARS, COL_RTN_LONG_MODIF_DATES, COL_BASIC]
                .iter()
                .map(|col| cols[*col])
                .find(|cell| !cell.is_empty())
                .ok_or_else(|| format!("line {}: no action", index + 1))?;
            let action = Action::parse(effective)
                .ok_or_else(|| format!("line {}: unknown action {effective}", index + 1))?;
            rows += 1;
            let tag = cols[COL_TAG];
            if tag == "gggg,eeee" {
                // private attributes: handled by the odd-group rule in `deid`
                continue;
            }
            let (group, element) =
                tag.split_once(',').ok_or_else(|| format!("line {}: bad tag {tag}", index + 1))?;
            if group.contains('x') || element.contains('x') {
                let group_value = u16::from_str_radix(&group.replace('x', "0"), 16)
                    .map_err(|e| format!("line {}: {e}", index + 1))?;
                let element_wild = element.contains('x');
                let element_value = if element_wild {
                    0
                } else {
                    u16::from_str_radix(element, 16).map_err(|e| format!("line {}: {e}", index + 1))?
                };
                // 50xx and 60xx: even groups 5000-501E / 6000-601E
                masks.push((0xFF01, group_value, element_value, element_wild, action));
                continue;
            }
            let group = u16::from_str_radix(group, 16).map_err(|e| format!("line {}: {e}", index + 1))?;
            let element = u16::from_str_radix(element, 16).map_err(|e| format!("line {}: {e}", index + 1))?;
            exact.insert(Tag(group, element), action);
        }
        Ok(Self { exact, masks, rows })
    }

    /// The effective action for a (public) tag, if the table lists it.
    pub fn action(&self, tag: Tag) -> Option<Action> {
        if let Some(action) = self.exact.get(&tag) {
            return Some(*action);
        }
        self.masks
            .iter()
            .find(|(mask, group, element, wild, _)| {
                tag.0 & *mask == *group && tag.0 <= *group + 0x1E && (*wild || tag.1 == *element)
            })
            .map(|(_, _, _, _, action)| *action)
    }
}

/// The embedded table, parsed once.
pub static PROFILE: LazyLock<Result<ProfileTable, String>> =
    LazyLock::new(|| ProfileTable::parse(ANNEX_E_TSV));

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> &'static ProfileTable {
        PROFILE.as_ref().expect("embedded table parses")
    }

    #[test]
    fn the_embedded_table_has_every_row_of_the_2026c_edition() {
        assert_eq!(table().rows, 656);
    }

    #[test]
    fn options_override_the_basic_profile() {
        // Patient's Age: X in Basic, K under Retain Patient Characteristics
        assert_eq!(table().action(Tag(0x0010, 0x1010)), Some(Action::K));
        // Study Date: Z in Basic, C under Modified Dates
        assert_eq!(table().action(Tag(0x0008, 0x0020)), Some(Action::C));
        // Birth date has no override
        assert_eq!(table().action(Tag(0x0010, 0x0030)), Some(Action::Z));
        assert_eq!(table().action(Tag(0x0020, 0x000D)), Some(Action::U));
        assert_eq!(table().action(Tag(0x0008, 0x1140)), Some(Action::XZUStar));
    }

    #[test]
    fn masked_groups_cover_only_their_even_groups() {
        assert_eq!(table().action(Tag(0x6002, 0x3000)), Some(Action::X));
        assert_eq!(table().action(Tag(0x601E, 0x4000)), Some(Action::X));
        assert_eq!(table().action(Tag(0x5010, 0x0005)), Some(Action::X));
        assert_eq!(table().action(Tag(0x6000, 0x0010)), None);
        assert_eq!(table().action(Tag(0x6020, 0x3000)), None);
    }
}
