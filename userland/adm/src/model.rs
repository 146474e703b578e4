//! The parsed configuration, close to what the file says.

use crate::lex::Pos;

/// One `key value;` of a section, value as written (booleans normalised to yes/no).
#[derive(Debug, Clone)]
pub struct Opt {
    /// Keyword.
    pub key: String,
    /// Value text.
    pub val: String,
    /// Where the keyword is.
    pub pos: Pos,
}

/// An ordered option list.
pub type Opts = Vec<Opt>;

/// Finds `key` in `opts`.
pub fn get<'a>(opts: &'a Opts, key: &str) -> Option<&'a Opt> {
    opts.iter().find(|o| o.key == key)
}

/// Inherits the options of `parent` that `child` lacks, each put in front (drbdadm's order).
pub fn inherit(child: &mut Opts, parent: &Opts) {
    for o in parent {
        if get(child, &o.key).is_none() {
            child.insert(0, o.clone());
        }
    }
}

/// Sets `key` in front unless present.
pub fn put_front(opts: &mut Opts, key: &str, val: &str) {
    if get(opts, key).is_none() {
        opts.insert(
            0,
            Opt {
                key: key.into(),
                val: val.into(),
                pos: Pos::none(),
            },
        );
    }
}

/// The option sections shared by `common` and `resource`.
#[derive(Debug, Clone, Default)]
pub struct Sections {
    /// `options {}`.
    pub options: Opts,
    /// `net {}` (with `protocol` of the 8.x resource level).
    pub net: Opts,
    /// Device-local keys of `disk {}`.
    pub disk: Opts,
    /// Peer-device keys of `disk {}`.
    pub pd: Opts,
    /// Device keys of `disk {}` (new-minor).
    pub dev: Opts,
    /// `startup {}`.
    pub startup: Opts,
    /// `handlers {}`.
    pub handlers: Opts,
}

impl Sections {
    /// Inherits every section from `parent`.
    pub fn inherit(&mut self, parent: &Sections) {
        inherit(&mut self.options, &parent.options);
        inherit(&mut self.net, &parent.net);
        inherit(&mut self.disk, &parent.disk);
        inherit(&mut self.pd, &parent.pd);
        inherit(&mut self.dev, &parent.dev);
        inherit(&mut self.startup, &parent.startup);
        inherit(&mut self.handlers, &parent.handlers);
    }
}

/// `device` of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The path if one was written.
    pub path: Option<String>,
    /// The minor.
    pub minor: u32,
}

/// `meta-disk`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaDisk {
    /// `internal`.
    Internal,
    /// An external device without index (flexible).
    Flex(String),
    /// `dev[idx]`: fixed-size 128 MiB slots.
    Indexed(String, u32),
}

impl MetaDisk {
    /// The meta-data device for a backing disk.
    pub fn dev<'a>(&'a self, disk: &'a str) -> &'a str {
        match self {
            MetaDisk::Internal => disk,
            MetaDisk::Flex(d) | MetaDisk::Indexed(d, _) => d,
        }
    }
    /// The index argument of drbdmeta.
    pub fn meta_index(&self) -> String {
        match self {
            MetaDisk::Internal => "internal".into(),
            MetaDisk::Flex(_) => "flex-external".into(),
            MetaDisk::Indexed(_, i) => i.to_string(),
        }
    }
    /// The index argument of drbdsetup attach.
    pub fn attach_index(&self) -> String {
        match self {
            MetaDisk::Internal => "internal".into(),
            MetaDisk::Flex(_) => "flexible".into(),
            MetaDisk::Indexed(_, i) => i.to_string(),
        }
    }
}

/// A volume (resource level, host level, or the implicit volume 0 of top-level device/disk).
#[derive(Debug, Clone)]
pub struct Volume {
    /// Volume number.
    pub vnr: u32,
    /// Written without `volume N {}`.
    pub implicit: bool,
    /// `device`.
    pub device: Option<Device>,
    /// `disk` (`none` = diskless).
    pub disk: Option<String>,
    /// `meta-disk`.
    pub meta: Option<MetaDisk>,
    /// Device-local disk options.
    pub disk_opts: Opts,
    /// Peer-device options.
    pub pd_opts: Opts,
    /// Device options (new-minor).
    pub dev_opts: Opts,
    /// Where `device` was written, if it was.
    pub device_pos: Option<Pos>,
    /// Where the volume starts.
    pub pos: Pos,
}

impl Volume {
    /// An empty volume.
    pub fn new(vnr: u32, implicit: bool, pos: Pos) -> Volume {
        Volume {
            vnr,
            implicit,
            device: None,
            disk: None,
            meta: None,
            disk_opts: Vec::new(),
            pd_opts: Vec::new(),
            dev_opts: Vec::new(),
            device_pos: None,
            pos,
        }
    }
    /// Whether this volume has no backing disk.
    pub fn diskless(&self) -> bool {
        self.disk.as_deref() == Some("none")
    }
}

/// `[af] addr:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// `ipv4`, `ipv6`, `ssocks`, `sdp`, `sci`.
    pub af: String,
    /// The address without brackets.
    pub addr: String,
    /// The port.
    pub port: u16,
}

impl Address {
    /// `ipv4:1.2.3.4:7789` / `ipv6:[fd00::1]:7789` as drbdsetup takes it.
    pub fn setup_arg(&self) -> String {
        if self.af == "ipv6" {
            format!("{}:[{}]:{}", self.af, self.addr, self.port)
        } else {
            format!("{}:{}:{}", self.af, self.addr, self.port)
        }
    }
    /// `ipv4 1.2.3.4:7789` as the config writes it.
    pub fn conf_text(&self) -> String {
        if self.af == "ipv6" {
            format!("{} [{}]:{}", self.af, self.addr, self.port)
        } else {
            format!("{} {}:{}", self.af, self.addr, self.port)
        }
    }
}

/// `on NAMES {}` or `floating ADDR {}`.
#[derive(Debug, Clone)]
pub struct Host {
    /// Host names (empty for floating).
    pub names: Vec<String>,
    /// `floating`.
    pub floating: bool,
    /// `node-id`.
    pub node_id: Option<u32>,
    /// Whether the node id was computed rather than written.
    pub node_id_implicit: bool,
    /// `address`.
    pub address: Option<Address>,
    /// Host-level volumes.
    pub volumes: Vec<Volume>,
    /// Where the section starts.
    pub pos: Pos,
}

impl Host {
    /// The name used for this host in connections and messages.
    pub fn name(&self) -> String {
        match (&self.address, self.floating) {
            (Some(a), true) => format!("{}_{}", a.addr, a.port),
            _ => self.names.first().cloned().unwrap_or_default(),
        }
    }
    /// Whether `n` names this host.
    pub fn is(&self, n: &str) -> bool {
        self.names.iter().any(|x| x == n) || (self.floating && self.name() == n)
    }
}

/// `host NAME [address ...] [port P];` inside a connection or a path.
#[derive(Debug, Clone)]
pub struct ConnHost {
    /// Host name.
    pub name: String,
    /// Explicit address.
    pub address: Option<Address>,
    /// Explicit port (address taken from the `on` section).
    pub port: Option<u16>,
    /// Where it is written.
    pub pos: Pos,
}

/// `connection [NAME] {}`.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Deprecated connection name.
    pub name: Option<String>,
    /// `host` statements directly in the connection (one path).
    pub hosts: Vec<ConnHost>,
    /// `path {}` sections.
    pub paths: Vec<Vec<ConnHost>>,
    /// `net {}`.
    pub net: Opts,
    /// Peer-device keys of `disk {}`.
    pub pd: Opts,
    /// `volume N { disk {} }`.
    pub volumes: Vec<(u32, Opts)>,
    /// Where it starts.
    pub pos: Pos,
}

/// `connection-mesh {}`.
#[derive(Debug, Clone)]
pub struct Mesh {
    /// `hosts A B C;`
    pub hosts: Vec<String>,
    /// `net {}`.
    pub net: Opts,
    /// Where it starts.
    pub pos: Pos,
}

/// `resource NAME {}`.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Name.
    pub name: String,
    /// Where `resource` is.
    pub pos: Pos,
    /// Option sections (own, then common inherited).
    pub sec: Sections,
    /// Option sections as written in the resource.
    pub own: Sections,
    /// Resource-level volumes.
    pub volumes: Vec<Volume>,
    /// `on`/`floating` sections.
    pub hosts: Vec<Host>,
    /// `connection` sections.
    pub conns: Vec<Connection>,
    /// `connection-mesh` sections.
    pub meshes: Vec<Mesh>,
}

/// The whole configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The config file name as given.
    pub file: String,
    /// Its absolute path.
    pub abs_file: String,
    /// `global {}` statements, as written.
    pub global: Opts,
    /// `common {}` if there is one.
    pub common: Option<Sections>,
    /// Resources in file order.
    pub resources: Vec<Resource>,
}

impl Config {
    /// `global { disable-ip-verification; }`.
    pub fn ip_verification_disabled(&self) -> bool {
        get(&self.global, "disable-ip-verification").is_some()
    }
    /// `global { minor-count N; }`.
    pub fn minor_count(&self) -> Option<u32> {
        get(&self.global, "minor-count").and_then(|o| o.val.parse().ok())
    }
}
