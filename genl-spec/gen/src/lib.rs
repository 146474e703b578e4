//! Generator for `genl-spec/src/generated.rs`.
//!
//! Reads the family description `genl-spec/drbd.yaml` and writes the Rust
//! constants, tables and enums that both the kernel module (no_std, included
//! with `#[path]`) and the userland tools use. The output only refers to its
//! sibling files through `super::`, never `crate::`, so it can be included as
//! a module anywhere.

use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The whole YAML document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Spec {
    /// Family name.
    pub name: String,
    /// Family version.
    pub version: u8,
    /// One line description.
    pub doc: String,
    /// The family's fixed user header.
    pub user_header: UserHeader,
    /// Multicast group names.
    pub mcast_groups: Vec<String>,
    /// Flags carried in the user header of requests.
    pub header_flags: Vec<NamedValue>,
    /// Attribute sets (one per top-level attribute).
    pub attribute_sets: Vec<AttrSet>,
    /// Commands and notifications.
    pub commands: Vec<Command>,
    /// Value lists.
    pub enums: Vec<EnumDef>,
    /// drbd_ret_code values.
    pub ret_codes: Vec<Code>,
    /// drbd_state_rv values.
    pub state_results: Vec<Code>,
    /// Notification types.
    pub notifications: Notifications,
    /// Free constants.
    pub constants: Vec<Constant>,
}

/// The fixed family header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserHeader {
    /// C name.
    pub name: String,
    /// Size in bytes.
    pub size: usize,
    /// Fields.
    pub fields: Vec<HeaderField>,
}

/// A field of the user header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderField {
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub ty: String,
    /// Description.
    pub doc: String,
}

/// Name, value and description.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedValue {
    /// Name.
    pub name: String,
    /// Value.
    pub value: u32,
    /// Description.
    pub doc: String,
}

/// The top-level attribute of a set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tla {
    /// Number.
    pub nr: u16,
    /// Name without the `DRBD_NLA_` prefix.
    pub name: String,
}

/// One attribute set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AttrSet {
    /// Lower-case set name (module name).
    pub name: String,
    /// Its top-level attribute.
    pub tla: Tla,
    /// Name of DRBD's C struct.
    pub c_struct: String,
    /// Description.
    pub doc: String,
    /// Members.
    pub members: Vec<Member>,
}

/// One member of an attribute set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Member {
    /// Number within the set.
    pub nr: u16,
    /// Lower-case name.
    pub name: String,
    /// flag, u32, s32, u64, string, binary.
    #[serde(rename = "type")]
    pub ty: String,
    /// Maximum length of strings (including NUL) and binaries; 0 = unlimited.
    #[serde(default)]
    pub max_len: Option<u32>,
    /// required, sensitive, invariant.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Sent with GENLA_F_MANDATORY.
    #[serde(default)]
    pub mandatory: bool,
    /// drbdsetup option / config keyword.
    #[serde(default)]
    pub option: Option<String>,
    /// Unit of bare numbers: '1', 'k', 's'.
    #[serde(default)]
    pub scale: Option<String>,
    /// Numeric default.
    #[serde(default)]
    pub default: Option<serde_yaml::Number>,
    /// String default.
    #[serde(default)]
    pub default_str: Option<String>,
    /// Minimum.
    #[serde(default)]
    pub min: Option<i64>,
    /// Maximum.
    #[serde(default)]
    pub max: Option<i64>,
    /// Value list name.
    #[serde(default, rename = "enum")]
    pub enum_: Option<String>,
    /// Description.
    #[serde(default)]
    pub doc: Option<String>,
}

/// A command or notification.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// genlmsghdr.cmd.
    pub nr: u8,
    /// Name without the `DRBD_` prefix.
    pub name: String,
    /// do, dump, notify.
    pub kind: String,
    /// Objects the kernel resolves.
    #[serde(default)]
    pub context: Vec<String>,
    /// Expected TLAs (suffix " R" = required).
    #[serde(default)]
    pub tlas: Vec<String>,
    /// drbdsetup verb.
    #[serde(default)]
    pub verb: Option<String>,
}

/// A value list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EnumDef {
    /// Lower-case name (module name).
    pub name: String,
    /// Name of the Rust enum, if one is wanted.
    #[serde(default)]
    pub rust_enum: Option<String>,
    /// Description.
    pub doc: String,
    /// Values.
    pub values: Vec<EnumValue>,
}

/// One value of a list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnumValue {
    /// Number.
    pub nr: u32,
    /// CamelCase variant name.
    pub variant: String,
    /// Display / option string.
    pub name: String,
}

/// A return code with its text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    /// Value.
    pub nr: i32,
    /// Name.
    pub name: String,
    /// Text.
    pub text: String,
}

/// Notification types.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    /// The types.
    pub types: Vec<NotifyType>,
    /// The CONTINUES flag.
    pub continues: u32,
}

/// One notification type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyType {
    /// Value.
    pub nr: u32,
    /// Name.
    pub name: String,
    /// events2 action word.
    pub word: String,
}

/// A free constant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constant {
    /// Name.
    pub name: String,
    /// Rust type.
    #[serde(rename = "type")]
    pub ty: String,
    /// Value.
    pub value: serde_yaml::Number,
    /// Description.
    pub doc: String,
}

/// Errors of the generator.
#[derive(Debug)]
pub struct GenError(pub String);

impl std::fmt::Display for GenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GenError {}

fn err<T>(msg: impl Into<String>) -> Result<T, GenError> {
    Err(GenError(msg.into()))
}

/// Path of the spec and of the output relative to this crate.
pub fn default_paths() -> (PathBuf, PathBuf) {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = here.parent().unwrap_or(here);
    (
        root.join("drbd.yaml"),
        root.join("src").join("generated.rs"),
    )
}

/// Parses and checks the spec.
pub fn parse(yaml: &str) -> Result<Spec, GenError> {
    let spec: Spec = serde_yaml::from_str(yaml).map_err(|e| GenError(format!("drbd.yaml: {e}")))?;
    validate(&spec)?;
    Ok(spec)
}

fn validate(spec: &Spec) -> Result<(), GenError> {
    let mut tlas = BTreeSet::new();
    let enum_names: BTreeSet<&str> = spec.enums.iter().map(|e| e.name.as_str()).collect();
    for set in &spec.attribute_sets {
        if !tlas.insert(set.tla.nr) {
            return err(format!("duplicate TLA number {}", set.tla.nr));
        }
        let mut nrs = BTreeSet::new();
        for m in &set.members {
            if m.nr == 0 || !nrs.insert(m.nr) {
                return err(format!(
                    "{}: bad or duplicate member number {}",
                    set.name, m.nr
                ));
            }
            match m.ty.as_str() {
                "flag" | "u32" | "s32" | "u64" => {}
                "string" | "binary" => {
                    if m.max_len.is_none() {
                        return err(format!("{}.{}: max-len missing", set.name, m.name));
                    }
                }
                t => return err(format!("{}.{}: unknown type {t}", set.name, m.name)),
            }
            for f in &m.flags {
                if !matches!(f.as_str(), "required" | "sensitive" | "invariant") {
                    return err(format!("{}.{}: unknown flag {f}", set.name, m.name));
                }
            }
            if let Some(s) = &m.scale {
                if !matches!(s.as_str(), "1" | "k" | "s") {
                    return err(format!("{}.{}: unknown scale {s}", set.name, m.name));
                }
            }
            if let Some(e) = &m.enum_ {
                if !enum_names.contains(e.as_str()) {
                    return err(format!("{}.{}: unknown enum {e}", set.name, m.name));
                }
            }
        }
    }
    let mut cmds = BTreeSet::new();
    for c in &spec.commands {
        if !cmds.insert(c.nr) {
            return err(format!("duplicate command number {}", c.nr));
        }
        if !matches!(c.kind.as_str(), "do" | "dump" | "notify") {
            return err(format!("{}: unknown kind {}", c.name, c.kind));
        }
        for t in &c.tlas {
            let name = t.trim_end_matches(" R");
            if !spec.attribute_sets.iter().any(|s| s.tla.name == name) {
                return err(format!("{}: unknown TLA {name}", c.name));
            }
        }
        for x in &c.context {
            if context_bit(x).is_none() {
                return err(format!("{}: unknown context {x}", c.name));
            }
        }
    }
    Ok(())
}

fn context_bit(name: &str) -> Option<&'static str> {
    Some(match name {
        "minor" => "MINOR",
        "resource" => "RESOURCE",
        "connection" => "CONNECTION",
        "peer-device" => "PEER_DEVICE",
        "peer-node" => "PEER_NODE",
        "ignore-version" => "IGNORE_VERSION",
        _ => return None,
    })
}

/// `PassOn` -> `PASS_ON`, `Striping32K` -> `STRIPING32K`.
fn screaming(camel: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for ch in camel.chars() {
        if ch.is_ascii_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = ch.is_ascii_lowercase();
        out.push(ch.to_ascii_uppercase());
    }
    out
}

fn rust_str(s: &str) -> String {
    format!("{s:?}")
}

fn attr_type_variant(ty: &str) -> &'static str {
    match ty {
        "flag" => "Flag",
        "u32" => "U32",
        "s32" => "S32",
        "u64" => "U64",
        "string" => "String",
        _ => "Binary",
    }
}

/// Produces the text of `generated.rs` (before rustfmt).
pub fn render(spec: &Spec) -> String {
    let mut o = String::new();
    let w = &mut o;
    macro_rules! l {
        ($($t:tt)*) => { let _ = writeln!(w, $($t)*); };
    }
    l!("// SPDX-License-Identifier: GPL-2.0-only");
    l!("// @generated by genl-gen from genl-spec/drbd.yaml. Do not edit by hand:");
    l!("// change drbd.yaml and run `cargo run -p genl-gen`.");
    l!("");
    l!(
        "//! Constants, tables and enums of the `{}` generic netlink family",
        spec.name
    );
    l!("//! ({}), generated from `genl-spec/drbd.yaml`.", spec.doc);
    l!("//!");
    l!("//! Shared by the kernel module (no_std, included with `#[path]`) and the tools.");
    l!("");
    l!("/// Generic netlink family name.");
    l!("pub const FAMILY_NAME: &str = {};", rust_str(&spec.name));
    l!("/// Generic netlink family version (`genlmsghdr.version`).");
    l!("pub const FAMILY_VERSION: u8 = {};", spec.version);
    for g in &spec.mcast_groups {
        l!("/// Name of the multicast group `{g}`.");
        l!(
            "pub const MCAST_GROUP_{}: &str = {};",
            g.to_uppercase(),
            rust_str(g)
        );
    }
    l!("/// Length of `struct genlmsghdr` (cmd u8, version u8, reserved u16).");
    l!("pub const GENL_HDR_LEN: usize = 4;");
    l!(
        "/// Length of the family's user header `struct {}`:",
        spec.user_header.name
    );
    for f in &spec.user_header.fields {
        l!("/// `{} {}` ({}).", f.ty, f.name, f.doc);
    }
    l!(
        "pub const DRBD_GENL_HDR_LEN: usize = {};",
        spec.user_header.size
    );
    l!("");
    l!("/// Flags of `drbd_genlmsghdr.flags` in requests.");
    l!("pub mod hdr_flags {{");
    for f in &spec.header_flags {
        l!("    /// {}", f.doc);
        l!("    pub const {}: u32 = {};", f.name, f.value);
    }
    l!("}}");
    l!("");
    for c in &spec.constants {
        l!("/// {}", c.doc);
        l!("pub const {}: {} = {};", c.name, c.ty, c.value);
    }
    l!("");
    // Shared types.
    l!("{}", SHARED_TYPES);
    // Commands.
    l!("/// Command and notification numbers (`genlmsghdr.cmd`), DRBD's names without `DRBD_`.");
    l!("pub mod cmd {{");
    for c in &spec.commands {
        l!("    /// `DRBD_{}` ({}).", c.name, c.kind);
        l!("    pub const {}: u8 = {};", c.name, c.nr);
    }
    l!("}}");
    l!("");
    l!("/// All commands and notifications, ordered by number.");
    l!("pub const COMMANDS: &[CmdSpec] = &[");
    for c in &spec.commands {
        let kind = match c.kind.as_str() {
            "do" => "CmdKind::Do",
            "dump" => "CmdKind::Dump",
            _ => "CmdKind::Notify",
        };
        let ctx: Vec<String> = c
            .context
            .iter()
            .filter_map(|x| context_bit(x))
            .map(|b| format!("ctx_need::{b}"))
            .collect();
        let ctx = if ctx.is_empty() {
            "0".to_string()
        } else {
            ctx.join(" | ")
        };
        let tlas: Vec<String> = c
            .tlas
            .iter()
            .map(|t| {
                let req = t.ends_with(" R");
                let name = t.trim_end_matches(" R");
                format!("TlaUse {{ tla: tla::{name}, required: {req} }}")
            })
            .collect();
        let verb = match &c.verb {
            Some(v) => format!("Some({})", rust_str(v)),
            None => "None".into(),
        };
        l!(
            "    CmdSpec {{ nr: cmd::{}, name: {}, kind: {kind}, context: {ctx}, tlas: &[{}], verb: {verb} }},",
            c.name,
            rust_str(&c.name),
            tlas.join(", ")
        );
    }
    l!("];");
    l!("");
    // TLAs.
    l!("/// Top-level attribute numbers (`DRBD_NLA_*` without the prefix).");
    l!("pub mod tla {{");
    let mut sets: Vec<&AttrSet> = spec.attribute_sets.iter().collect();
    sets.sort_by_key(|s| s.tla.nr);
    for s in &sets {
        l!(
            "    /// `DRBD_NLA_{}`: attribute set [`super::{}`].",
            s.tla.name,
            s.name
        );
        l!("    pub const {}: u16 = {};", s.tla.name, s.tla.nr);
    }
    l!("    /// Largest top-level attribute number.");
    l!(
        "    pub const MAX: u16 = {};",
        sets.last().map(|s| s.tla.nr).unwrap_or(0)
    );
    l!("}}");
    l!("");
    l!("/// All attribute sets, ordered by top-level attribute number.");
    l!("pub const SETS: &[&AttrSet] = &[");
    for s in &sets {
        l!("    &{}::SET,", s.name);
    }
    l!("];");
    l!("");
    for s in &sets {
        let mut members: Vec<&Member> = s.members.iter().collect();
        members.sort_by_key(|m| m.nr);
        l!(
            "/// Attribute set `{}` (C struct `{}`, TLA `{}` = {}): {}",
            s.name,
            s.c_struct,
            s.tla.name,
            s.tla.nr,
            s.doc
        );
        l!("pub mod {} {{", s.name);
        for m in &members {
            let mut doc = format!("`{}`: {}", m.name, m.ty);
            if let Some(n) = m.max_len {
                let _ = write!(doc, "({n})");
            }
            if !m.flags.is_empty() {
                let _ = write!(doc, ", {}", m.flags.join(", "));
            }
            if let Some(o) = &m.option {
                let _ = write!(doc, ", option `--{o}`");
            }
            if let Some(d) = &m.doc {
                let _ = write!(doc, "; {d}");
            }
            l!("    /// {doc}.");
            l!("    pub const {}: u16 = {};", m.name.to_uppercase(), m.nr);
        }
        l!("    /// Largest member number of this set.");
        l!(
            "    pub const MAX_NR: u16 = {};",
            members.last().map(|m| m.nr).unwrap_or(0)
        );
        l!("    /// Members of this set, ordered by number.");
        l!("    pub const MEMBERS: &[super::Member] = &[");
        for m in &members {
            let mut flags = Vec::new();
            for f in &m.flags {
                flags.push(format!("super::member_flags::{}", f.to_uppercase()));
            }
            let flags = if flags.is_empty() {
                "0".to_string()
            } else {
                flags.join(" | ")
            };
            let default = if let Some(s) = &m.default_str {
                format!("Some(super::DefaultValue::Str({}))", rust_str(s))
            } else if let Some(n) = &m.default {
                if let Some(i) = n.as_i64() {
                    if i < 0 {
                        format!("Some(super::DefaultValue::Signed({i}))")
                    } else {
                        format!("Some(super::DefaultValue::Unsigned({i}))")
                    }
                } else if let Some(u) = n.as_u64() {
                    format!("Some(super::DefaultValue::Unsigned({u}))")
                } else {
                    "None".into()
                }
            } else {
                "None".into()
            };
            let opt = m
                .option
                .as_ref()
                .map(|o| format!("Some({})", rust_str(o)))
                .unwrap_or_else(|| "None".into());
            let scale = m.scale.as_deref().unwrap_or("1");
            let min = m
                .min
                .map(|v| format!("Some({v})"))
                .unwrap_or_else(|| "None".into());
            let max = m
                .max
                .map(|v| format!("Some({v})"))
                .unwrap_or_else(|| "None".into());
            let values = m
                .enum_
                .as_ref()
                .map(|e| format!("Some(super::enums::{e}::VALUES)"))
                .unwrap_or_else(|| "None".into());
            l!(
                "        super::Member {{ nr: {}, name: {}, ty: super::AttrType::{}, max_len: {}, flags: {flags}, mandatory: {}, option: {opt}, scale: b'{scale}', default: {default}, min: {min}, max: {max}, values: {values} }},",
                m.name.to_uppercase(),
                rust_str(&m.name),
                attr_type_variant(&m.ty),
                m.max_len.unwrap_or(0),
                m.mandatory
            );
        }
        l!("    ];");
        l!("    /// Description of this set.");
        l!(
            "    pub const SET: super::AttrSet = super::AttrSet {{ name: {}, tla: super::tla::{}, tla_name: {}, members: MEMBERS }};",
            rust_str(&s.name),
            s.tla.name,
            rust_str(&s.tla.name)
        );
        l!("}}");
        l!("");
    }
    // Enums.
    l!("/// Value lists of enumerated members (numbers and their display/option names).");
    l!("pub mod enums {{");
    for e in &spec.enums {
        l!("    /// {}", e.doc);
        l!("    pub mod {} {{", e.name);
        l!("        use super::super::EnumValue;");
        for v in &e.values {
            l!("        /// `{}`.", v.name);
            l!(
                "        pub const {}: u32 = {};",
                screaming(&v.variant),
                v.nr
            );
        }
        l!("        /// All values with their names.");
        l!("        pub const VALUES: &[EnumValue] = &[");
        for v in &e.values {
            l!(
                "            EnumValue {{ nr: {}, name: {} }},",
                screaming(&v.variant),
                rust_str(&v.name)
            );
        }
        l!("        ];");
        l!("        /// Name of a value, if it is one of this list.");
        l!("        pub fn name(nr: u32) -> Option<&'static str> {{");
        l!("            super::super::enum_name(VALUES, nr)");
        l!("        }}");
        l!("        /// Value of a name, if it is one of this list.");
        l!("        pub fn from_name(name: &str) -> Option<u32> {{");
        l!("            super::super::enum_from_name(VALUES, name)");
        l!("        }}");
        l!("    }}");
    }
    l!("}}");
    l!("");
    for e in &spec.enums {
        let Some(rname) = &e.rust_enum else { continue };
        l!("/// {}", e.doc);
        l!("#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]");
        l!("#[repr(u32)]");
        l!("pub enum {rname} {{");
        for v in &e.values {
            l!("    /// `{}`.", v.name);
            l!("    {} = {},", v.variant, v.nr);
        }
        l!("}}");
        l!("");
        l!("impl {rname} {{");
        l!("    /// All values, in numeric order.");
        l!("    pub const ALL: &'static [{rname}] = &[");
        for v in &e.values {
            l!("        {rname}::{},", v.variant);
        }
        l!("    ];");
        l!("    /// The value with number `v`, if there is one.");
        l!("    pub const fn from_u32(v: u32) -> Option<Self> {{");
        l!("        match v {{");
        for v in &e.values {
            l!("            {} => Some({rname}::{}),", v.nr, v.variant);
        }
        l!("            _ => None,");
        l!("        }}");
        l!("    }}");
        l!("    /// The display string DRBD uses (events2, status).");
        l!("    pub const fn name(self) -> &'static str {{");
        l!("        match self {{");
        for v in &e.values {
            l!(
                "            {rname}::{} => {},",
                v.variant,
                rust_str(&v.name)
            );
        }
        l!("        }}");
        l!("    }}");
        l!("    /// The value whose display string is `s`.");
        l!("    pub fn from_name(s: &str) -> Option<Self> {{");
        l!("        Self::ALL.iter().copied().find(|v| v.name() == s)");
        l!("    }}");
        l!("}}");
        l!("");
    }
    // Ret codes.
    l!("/// `enum drbd_ret_code`: the `ret_code` of replies (101 = success).");
    l!("pub mod ret {{");
    l!("    /// Base below all codes.");
    l!("    pub const ERR_CODE_BASE: i32 = 100;");
    for c in &spec.ret_codes {
        l!("    /// {}", rust_str(c.text.trim_end()).trim_matches('"'));
        l!("    pub const {}: i32 = {};", c.name, c.nr);
    }
    let last = spec.ret_codes.iter().map(|c| c.nr).max().unwrap_or(101);
    l!("    /// One past the last known code.");
    l!("    pub const AFTER_LAST_ERR_CODE: i32 = {};", last + 1);
    l!("    /// Text drbdsetup prints for `code`.");
    l!("    pub fn text(code: i32) -> &'static str {{");
    l!("        match code {{");
    for c in &spec.ret_codes {
        l!(
            "            {} => {},",
            c.nr,
            rust_str(c.text.trim_end_matches('\n'))
        );
    }
    l!("            _ => \"Unknown... maybe API_VERSION mismatch?\",");
    l!("        }}");
    l!("    }}");
    l!("    /// Symbolic name of `code`.");
    l!("    pub fn name(code: i32) -> Option<&'static str> {{");
    l!("        match code {{");
    for c in &spec.ret_codes {
        l!("            {} => Some({}),", c.nr, rust_str(&c.name));
    }
    l!("            _ => None,");
    l!("        }}");
    l!("    }}");
    l!("}}");
    l!("");
    l!("/// `enum drbd_state_rv`: results of state changes (`SS_*` without the prefix).");
    l!("pub mod ss {{");
    for c in &spec.state_results {
        l!("    /// {}", rust_str(&c.text).trim_matches('"'));
        l!("    pub const {}: i32 = {};", c.name, c.nr);
    }
    let last = spec.state_results.iter().map(|c| c.nr).min().unwrap_or(0);
    l!("    /// One below the last known failure code.");
    l!("    pub const AFTER_LAST_ERROR: i32 = {};", last - 1);
    l!("    /// Text drbdsetup prints for `code` (`\"?\"` if unknown).");
    l!("    pub fn text(code: i32) -> &'static str {{");
    l!("        match code {{");
    for c in &spec.state_results {
        l!("            {} => {},", c.nr, rust_str(&c.text));
    }
    l!("            _ => \"?\",");
    l!("        }}");
    l!("    }}");
    l!("    /// Symbolic name of `code`.");
    l!("    pub fn name(code: i32) -> Option<&'static str> {{");
    l!("        match code {{");
    for c in &spec.state_results {
        l!(
            "            {} => Some({}),",
            c.nr,
            rust_str(&format!("SS_{}", c.name))
        );
    }
    l!("            _ => None,");
    l!("        }}");
    l!("    }}");
    l!("}}");
    l!("");
    l!("/// Notification types (`notification_header.nh_type`).");
    l!("pub mod notify {{");
    for t in &spec.notifications.types {
        l!("    /// `{}` lines in events2.", t.word);
        l!("    pub const {}: u32 = {};", t.name, t.nr);
    }
    l!("    /// OR-flag: more messages of the same state change follow.");
    l!(
        "    pub const CONTINUES: u32 = {:#x};",
        spec.notifications.continues
    );
    l!("    /// Mask of the flag bits.");
    l!("    pub const FLAGS: u32 = CONTINUES;");
    l!("    /// events2 action word of a type (flags are ignored).");
    l!("    pub fn word(nh_type: u32) -> Option<&'static str> {{");
    l!("        match nh_type & !FLAGS {{");
    for t in &spec.notifications.types {
        l!("            {} => Some({}),", t.nr, rust_str(&t.word));
    }
    l!("            _ => None,");
    l!("        }}");
    l!("    }}");
    l!("}}");
    o
}

const SHARED_TYPES: &str = r#"/// Flags of [`Member::flags`] (not on the wire).
pub mod member_flags {
    /// A request without this member is invalid.
    pub const REQUIRED: u8 = 1;
    /// Left out of replies to unprivileged readers and of broadcasts.
    pub const SENSITIVE: u8 = 2;
    /// Set when the object is created; cannot be changed afterwards.
    pub const INVARIANT: u8 = 4;
}

/// Objects a command needs, resolved from the context (flags of [`CmdSpec::context`]).
pub mod ctx_need {
    /// The minor in the user header must name an existing device.
    pub const MINOR: u8 = 1;
    /// `ctx_resource_name` must name an existing resource.
    pub const RESOURCE: u8 = 2;
    /// Resource plus `ctx_peer_node_id` must name an existing connection.
    pub const CONNECTION: u8 = 4;
    /// Connection plus `ctx_volume` must name an existing peer device.
    pub const PEER_DEVICE: u8 = 8;
    /// Resource plus a valid `ctx_peer_node_id` (the connection may not exist yet).
    pub const PEER_NODE: u8 = 16;
    /// The request is accepted whatever the family version says.
    pub const IGNORE_VERSION: u8 = 32;
}

/// Wire type of an attribute set member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    /// NLA_U8 holding 0 or 1.
    Flag,
    /// NLA_U32.
    U32,
    /// NLA_U32 interpreted as signed.
    S32,
    /// NLA_U64.
    U64,
    /// NLA_NUL_STRING.
    String,
    /// NLA_BINARY.
    Binary,
}

impl AttrType {
    /// Exact payload length of fixed-size types.
    pub const fn fixed_len(self) -> Option<usize> {
        match self {
            AttrType::Flag => Some(1),
            AttrType::U32 | AttrType::S32 => Some(4),
            AttrType::U64 => Some(8),
            AttrType::String | AttrType::Binary => None,
        }
    }
}

/// Default value of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// Flags and unsigned numbers.
    Unsigned(u64),
    /// Negative signed numbers.
    Signed(i64),
    /// Strings.
    Str(&'static str),
}

/// A named value of a value list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnumValue {
    /// Number on the wire.
    pub nr: u32,
    /// Display / option name.
    pub name: &'static str,
}

/// One member of an attribute set.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    /// Attribute number within the set.
    pub nr: u16,
    /// DRBD's field name.
    pub name: &'static str,
    /// Wire type.
    pub ty: AttrType,
    /// Strings: maximum length including the NUL; binaries: maximum length; 0 = unlimited.
    pub max_len: u16,
    /// [`member_flags`].
    pub flags: u8,
    /// Senders set [`GENLA_F_MANDATORY`] in nla_type.
    pub mandatory: bool,
    /// drbdsetup long option and drbd.conf keyword, if user settable.
    pub option: Option<&'static str>,
    /// Unit of a bare number: `b'1'` as is, `b'k'` KiB, `b's'` 512-byte sectors.
    pub scale: u8,
    /// DRBD's default.
    pub default: Option<DefaultValue>,
    /// Smallest accepted value.
    pub min: Option<i64>,
    /// Largest accepted value.
    pub max: Option<i64>,
    /// Named values (enumerated members).
    pub values: Option<&'static [EnumValue]>,
}

impl Member {
    /// Whether `flag` (a [`member_flags`] bit) is set.
    pub const fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// An attribute set: the members nested in one top-level attribute.
#[derive(Debug, Clone, Copy)]
pub struct AttrSet {
    /// Lower-case set name.
    pub name: &'static str,
    /// Top-level attribute number.
    pub tla: u16,
    /// Top-level attribute name (`DRBD_NLA_*` without the prefix).
    pub tla_name: &'static str,
    /// Members, ordered by number.
    pub members: &'static [Member],
}

impl AttrSet {
    /// The member with number `nr`.
    pub fn member(&self, nr: u16) -> Option<&'static Member> {
        self.members.iter().find(|m| m.nr == nr)
    }
    /// The member with drbdsetup option `option`.
    pub fn member_by_option(&self, option: &str) -> Option<&'static Member> {
        self.members.iter().find(|m| m.option == Some(option))
    }
    /// The member with field name `name`.
    pub fn member_by_name(&self, name: &str) -> Option<&'static Member> {
        self.members.iter().find(|m| m.name == name)
    }
}

/// The attribute set of top-level attribute `tla`.
pub fn set_by_tla(tla: u16) -> Option<&'static AttrSet> {
    SETS.iter().copied().find(|s| s.tla == tla)
}

/// How a command is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdKind {
    /// Request with a unicast reply; needs CAP_SYS_ADMIN.
    Do,
    /// NLM_F_DUMP request; no privilege needed.
    Dump,
    /// Sent by the kernel (multicast group `events`, or as dump records).
    Notify,
}

/// A top-level attribute a command expects.
#[derive(Debug, Clone, Copy)]
pub struct TlaUse {
    /// Top-level attribute number.
    pub tla: u16,
    /// The request is invalid without it.
    pub required: bool,
}

/// Description of a command or notification.
#[derive(Debug, Clone, Copy)]
pub struct CmdSpec {
    /// `genlmsghdr.cmd`.
    pub nr: u8,
    /// DRBD's name without the `DRBD_` prefix.
    pub name: &'static str,
    /// How it is used.
    pub kind: CmdKind,
    /// [`ctx_need`] flags.
    pub context: u8,
    /// Expected top-level attributes besides CFG_CONTEXT.
    pub tlas: &'static [TlaUse],
    /// drbdsetup verb, if there is one.
    pub verb: Option<&'static str>,
}

/// The command with number `nr`.
pub fn command(nr: u8) -> Option<&'static CmdSpec> {
    COMMANDS.iter().find(|c| c.nr == nr)
}

fn enum_name(values: &'static [EnumValue], nr: u32) -> Option<&'static str> {
    values.iter().find(|v| v.nr == nr).map(|v| v.name)
}

fn enum_from_name(values: &'static [EnumValue], name: &str) -> Option<u32> {
    values.iter().find(|v| v.name == name).map(|v| v.nr)
}
"#;

/// Runs rustfmt on `code` (edition 2021) and returns the result.
pub fn rustfmt(code: &str) -> Result<String, GenError> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let rustfmt = std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".into());
    let mut child = Command::new(rustfmt)
        .args(["--edition", "2021", "--emit", "stdout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| GenError(format!("cannot run rustfmt: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| GenError("rustfmt stdin".into()))?;
    let input = code.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| GenError(format!("rustfmt: {e}")))?;
    writer
        .join()
        .map_err(|_| GenError("rustfmt writer panicked".into()))?
        .map_err(|e| GenError(format!("rustfmt stdin: {e}")))?;
    if !out.status.success() {
        return err(format!(
            "rustfmt failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| GenError(format!("rustfmt output: {e}")))
}

/// Parses the YAML text and returns the formatted `generated.rs`.
pub fn generate(yaml: &str) -> Result<String, GenError> {
    let spec = parse(yaml)?;
    rustfmt(&render(&spec))
}
