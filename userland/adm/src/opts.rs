//! Option keywords of the config sections, taken from the genl-spec attribute sets, and value checks.

use genl_spec::generated::{self as g, AttrSet, AttrType, Member};

/// Where an option keyword ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `options {}` → resource options (new-resource / resource-options).
    Res,
    /// `net {}` → connection options (new-peer / net-options).
    Net,
    /// `disk {}` device-local keys → attach / disk-options.
    Disk,
    /// `disk {}` peer-device keys → peer-device-options.
    PeerDevice,
    /// `disk {}` device keys → new-minor.
    Device,
}

impl Class {
    /// The genl attribute set holding the keys of this class.
    pub fn set(self) -> &'static AttrSet {
        match self {
            Class::Res => &g::res_opts::SET,
            Class::Net => &g::net_conf::SET,
            Class::Disk => &g::disk_conf::SET,
            Class::PeerDevice => &g::peer_device_conf::SET,
            Class::Device => &g::device_conf::SET,
        }
    }
}

/// Keys that are not plain options of their set even though the set has a member for them.
fn hidden(class: Class, key: &str) -> bool {
    match class {
        // set through `disk none`
        Class::Device => key == "diskless",
        // the per-peer `bitmap` key lives in the peer-device set
        Class::Disk => key == "bitmap",
        _ => false,
    }
}

/// Looks up `key` as an option of `class`.
pub fn member(class: Class, key: &str) -> Option<&'static Member> {
    if hidden(class, key) {
        return None;
    }
    class.set().member_by_option(key)
}

/// Which class a key written in `disk {}` belongs to (fencing goes to net as current drbd-utils do).
pub fn disk_section_class(key: &str) -> Option<Class> {
    [Class::Disk, Class::PeerDevice, Class::Device, Class::Net]
        .into_iter()
        .find(|&c| (c != Class::Net || key == "fencing") && member(c, key).is_some())
}

/// Which class a legacy `syncer {}` key maps to, with the 8.4 aliases resolved.
pub fn syncer_key(key: &str) -> Option<(Class, &'static str)> {
    let canonical: &str = match key {
        "rate" => "resync-rate",
        "after" => "resync-after",
        k => k,
    };
    for c in [Class::PeerDevice, Class::Disk, Class::Net, Class::Res] {
        if let Some(m) = member(c, canonical) {
            return m.option.map(|o| (c, o));
        }
    }
    None
}

/// `startup {}` keywords.
pub const STARTUP_KEYS: &[&str] = &[
    "wfc-timeout",
    "degr-wfc-timeout",
    "outdated-wfc-timeout",
    "wait-after-sb",
    "stacked-timeouts",
    "become-primary-on",
];

/// `handlers {}` keywords (`outdate-peer` is the 8.x name of fence-peer).
pub const HANDLER_KEYS: &[&str] = &[
    "pri-on-incon-degr",
    "pri-lost-after-sb",
    "pri-lost",
    "initial-split-brain",
    "split-brain",
    "fence-peer",
    "outdate-peer",
    "unfence-peer",
    "local-io-error",
    "before-resync-target",
    "after-resync-target",
    "before-resync-source",
    "after-resync-source",
    "out-of-sync",
    "quorum-lost",
    "disconnected",
];

/// Whether `m` is a boolean option (written `key;`, `key yes|no;` or `no-key;`).
pub fn is_flag(m: &Member) -> bool {
    m.ty == AttrType::Flag
}

/// Parses a number with an optional unit suffix into the unit of `scale` (`1`, `k`, `s`).
fn scaled(v: &str, scale: u8) -> Option<i128> {
    let (digits, suffix) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&v[..i], Some(c)),
        _ => (v, None),
    };
    let (neg, digits) = match digits.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, digits),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i128 = digits.parse().ok()?;
    let n = if neg { -n } else { n };
    let Some(sfx) = suffix else { return Some(n) };
    let bytes: i128 = match sfx {
        'k' | 'K' => 1 << 10,
        'm' | 'M' => 1 << 20,
        'g' | 'G' => 1 << 30,
        't' | 'T' => 1 << 40,
        's' | 'S' => 512,
        _ => return None,
    };
    let unit: i128 = match scale {
        b'k' => 1024,
        b's' => 512,
        _ => 1,
    };
    let total = n.checked_mul(bytes)?;
    Some((total + unit - 1).div_euclid(unit))
}

/// The value `v` of option `m` in a form that compares equal for equal settings: numbers in
/// the option's unit (`7M` and `7168k` of a KiB option are both `7168`), named values by name,
/// booleans as yes/no, strings as they are.
pub fn canonical(m: &Member, v: &str) -> String {
    match m.ty {
        AttrType::Flag => match v {
            "yes" | "on" | "true" => "yes".into(),
            "no" | "off" | "false" => "no".into(),
            other => other.into(),
        },
        AttrType::U32 | AttrType::S32 | AttrType::U64 => {
            if let Some(vals) = m.values {
                if vals.iter().any(|e| e.name == v) {
                    return v.into();
                }
            }
            match scaled(v, m.scale) {
                Some(n) => named(m, n).unwrap_or_else(|| n.to_string()),
                None => v.into(),
            }
        }
        AttrType::String | AttrType::Binary => v.into(),
    }
}

fn named(m: &Member, n: i128) -> Option<String> {
    m.values?
        .iter()
        .find(|e| i128::from(e.nr) == n)
        .map(|e| e.name.to_string())
}

/// DRBD's default of option `m` in the form of [`canonical`]; None when it has none.
pub fn default_canonical(m: &Member) -> Option<String> {
    let n: i128 = match m.default? {
        g::DefaultValue::Str(s) => return Some(s.into()),
        g::DefaultValue::Unsigned(d) => i128::from(d),
        g::DefaultValue::Signed(d) => i128::from(d),
    };
    Some(match m.ty {
        AttrType::Flag => if n != 0 { "yes" } else { "no" }.into(),
        AttrType::String | AttrType::Binary => n.to_string(),
        _ => named(m, n).unwrap_or_else(|| n.to_string()),
    })
}

/// Checks the value `v` of option `key` (member `m`); returns the text of the complaint.
pub fn check_value(key: &str, m: &Member, v: &str) -> Result<(), String> {
    let head = format!("while parsing value ('{v}')\nfor {key}.");
    match m.ty {
        AttrType::Flag => match v {
            "yes" | "no" => Ok(()),
            _ => Err(format!(
                "{head} Value is not valid.\nAllowed values are: yes | no"
            )),
        },
        AttrType::String => {
            if m.max_len != 0 && v.len() >= usize::from(m.max_len) {
                Err(format!("{head} Value is too long."))
            } else {
                Ok(())
            }
        }
        AttrType::Binary => Ok(()),
        AttrType::U32 | AttrType::S32 | AttrType::U64 => {
            if let Some(vals) = m.values {
                if vals.iter().any(|e| e.name == v) {
                    return Ok(());
                }
                if m.min.is_none() {
                    let names: Vec<&str> = vals.iter().map(|e| e.name).collect();
                    return Err(format!(
                        "{head} Value is not valid.\nAllowed values are: {}",
                        names.join(" | ")
                    ));
                }
            }
            let Some(n) = scaled(v, m.scale) else {
                return Err(format!("{head} Value is not a number."));
            };
            if m.min.is_some_and(|min| n < i128::from(min)) {
                return Err(format!("{head} Value is too small."));
            }
            if m.max.is_some_and(|max| n > i128::from(max)) {
                return Err(format!("{head} Value is too big."));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing() {
        assert_eq!(disk_section_class("on-io-error"), Some(Class::Disk));
        assert_eq!(disk_section_class("resync-rate"), Some(Class::PeerDevice));
        assert_eq!(disk_section_class("bitmap"), Some(Class::PeerDevice));
        assert_eq!(disk_section_class("max-bio-size"), Some(Class::Device));
        assert_eq!(disk_section_class("fencing"), Some(Class::Net));
        assert_eq!(disk_section_class("protocol"), None);
        assert_eq!(syncer_key("rate"), Some((Class::PeerDevice, "resync-rate")));
        assert_eq!(syncer_key("verify-alg"), Some((Class::Net, "verify-alg")));
        assert_eq!(syncer_key("al-extents"), Some((Class::Disk, "al-extents")));
        assert_eq!(syncer_key("after"), Some((Class::Disk, "resync-after")));
    }

    #[test]
    fn values() {
        let m = member(Class::Net, "protocol").unwrap();
        assert!(check_value("protocol", m, "C").is_ok());
        assert!(check_value("protocol", m, "D")
            .unwrap_err()
            .contains("A | B | C"));
        let m = member(Class::PeerDevice, "resync-rate").unwrap();
        assert!(check_value("resync-rate", m, "100M").is_ok());
        assert!(check_value("resync-rate", m, "abc")
            .unwrap_err()
            .ends_with("Value is not a number."));
        let m = member(Class::Net, "max-buffers").unwrap();
        assert!(check_value("max-buffers", m, "8")
            .unwrap_err()
            .ends_with("too small."));
        let m = member(Class::Res, "quorum").unwrap();
        assert!(check_value("quorum", m, "majority").is_ok());
        assert!(check_value("quorum", m, "2").is_ok());
    }

    #[test]
    fn canonical_values() {
        let m = member(Class::PeerDevice, "resync-rate").unwrap();
        assert_eq!(canonical(m, "7M"), canonical(m, "7168k"));
        assert_eq!(canonical(m, "7168"), "7168");
        assert_eq!(default_canonical(m).as_deref(), Some("250"));
        let m = member(Class::Net, "protocol").unwrap();
        assert_eq!(default_canonical(m).as_deref(), Some("C"));
        let m = member(Class::Net, "fencing").unwrap();
        assert_eq!(default_canonical(m).as_deref(), Some("dont-care"));
        let m = member(Class::Disk, "md-flushes").unwrap();
        assert_eq!(default_canonical(m).as_deref(), Some("yes"));
        let m = member(Class::Net, "ping-timeout").unwrap();
        assert_eq!(default_canonical(m).as_deref(), Some("5"));
        assert_eq!(canonical(m, "7"), "7");
    }
}
