//! From the parsed config to what one host runs: node ids, local volumes, peers, effective options.

use crate::lex::Pos;
use crate::model::*;
use crate::parse::ConfError;

/// A volume as this host sees it.
#[derive(Debug, Clone)]
pub struct LocalVolume {
    /// Volume number.
    pub vnr: u32,
    /// Minor.
    pub minor: u32,
    /// Device path (`/dev/drbdN` if none was written).
    pub device: String,
    /// Backing disk (None when `disk none`).
    pub disk: Option<String>,
    /// Meta-data location (None when diskless).
    pub meta: Option<MetaDisk>,
    /// attach options, in drbdadm's order.
    pub disk_opts: Opts,
    /// new-minor options.
    pub dev_opts: Opts,
}

/// A peer (connection) as this host sees it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Peer host name.
    pub name: String,
    /// Peer node id.
    pub node_id: u32,
    /// Effective net options, `_name` first.
    pub net: Opts,
    /// Paths: (mine, peer's).
    pub paths: Vec<(Address, Address)>,
    /// Effective peer-device options per volume number.
    pub pd: Vec<(u32, Opts)>,
    /// Index of the explicit connection section, if any.
    pub conn_idx: Option<usize>,
}

/// A resource on this host.
#[derive(Debug, Clone)]
pub struct Local {
    /// Resource name.
    pub name: String,
    /// Index in `Config::resources`.
    pub res_idx: usize,
    /// Index of my host section.
    pub me: usize,
    /// My node id.
    pub node_id: u32,
    /// My volumes, by volume number.
    pub volumes: Vec<LocalVolume>,
    /// My peers.
    pub peers: Vec<Peer>,
    /// Resource options.
    pub res_opts: Opts,
    /// `startup {}` options that `wait-connect` passes on (in configuration order).
    pub startup: Opts,
    /// Number of hosts in the resource.
    pub n_hosts: usize,
}

/// The `startup {}` keys that are options of `drbdsetup wait-connect-*`.
pub const WAIT_STARTUP_KEYS: &[&str] = &[
    "wfc-timeout",
    "degr-wfc-timeout",
    "outdated-wfc-timeout",
    "wait-after-sb",
];

/// drbdadm 9's implicit node ids of a two-host 8.x-style resource: raw CRC32C (Castagnoli, no
/// inversion, seeded with 0x1a656f21) of each address text; the larger value (as i32) gets 0.
pub fn address_hash(addr: &str) -> i32 {
    let mut crc: u32 = 0x1a65_6f21;
    for &b in addr.as_bytes() {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    crc as i32
}

/// Concatenates option lists; a key that occurs again later moves to its last place.
fn chain(lists: &[&Opts]) -> Opts {
    let mut out: Opts = Vec::new();
    for l in lists {
        for o in l.iter() {
            out.retain(|x| x.key != o.key);
            out.push(o.clone());
        }
    }
    out
}

fn reversed(o: &Opts) -> Opts {
    o.iter().rev().cloned().collect()
}

/// The effective volume of host `h` (merging resource-level and host-level definitions).
pub fn host_volume(r: &Resource, h: &Host, vnr: u32) -> Volume {
    let rv = r.volumes.iter().find(|v| v.vnr == vnr);
    let hv = h.volumes.iter().find(|v| v.vnr == vnr);
    let empty = Volume::new(vnr, true, r.pos.clone());
    let base = hv.or(rv).unwrap_or(&empty);
    let pick = |f: &dyn Fn(&Volume) -> bool| hv.filter(|v| f(v)).or(rv);
    let mut v = base.clone();
    v.device = pick(&|v| v.device.is_some()).and_then(|v| v.device.clone());
    v.device_pos = pick(&|v| v.device.is_some()).and_then(|v| v.device_pos.clone());
    v.disk = pick(&|v| v.disk.is_some()).and_then(|v| v.disk.clone());
    v.meta = pick(&|v| v.meta.is_some()).and_then(|v| v.meta.clone());
    let none: Opts = Vec::new();
    let rvd = rv.map(|v| &v.disk_opts).unwrap_or(&none);
    let hvd = hv.map(|v| &v.disk_opts).unwrap_or(&none);
    v.disk_opts = chain(&[rvd, &reversed(&r.sec.disk), hvd]);
    let rvp = rv.map(|v| &v.pd_opts).unwrap_or(&none);
    let hvp = hv.map(|v| &v.pd_opts).unwrap_or(&none);
    v.pd_opts = chain(&[rvp, &reversed(&r.sec.pd), hvp]);
    let rvx = rv.map(|v| &v.dev_opts).unwrap_or(&none);
    let hvx = hv.map(|v| &v.dev_opts).unwrap_or(&none);
    v.dev_opts = chain(&[rvx, &reversed(&r.sec.dev), hvx]);
    v
}

/// Volume numbers of host `h` in ascending order.
pub fn volume_numbers(r: &Resource, h: &Host) -> Vec<u32> {
    let mut v: Vec<u32> = r
        .volumes
        .iter()
        .chain(h.volumes.iter())
        .map(|v| v.vnr)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn cerr(pos: &Pos, msg: String) -> ConfError {
    ConfError {
        pos: Some(pos.clone()),
        msg,
    }
}

/// Fills in implicit node ids and checks what drbdadm checks before any command runs.
/// Returns warnings (printed, not fatal) or the list of errors.
pub fn prepare(cfg: &mut Config) -> Result<Vec<String>, Vec<ConfError>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for r in &mut cfg.resources {
        let on_hosts: Vec<usize> = (0..r.hosts.len())
            .filter(|&i| !r.hosts[i].floating)
            .collect();
        let all_missing = r.hosts.iter().all(|h| h.node_id.is_none());
        if all_missing && r.hosts.len() == 2 && r.hosts.iter().all(|h| h.address.is_some()) {
            let a = r.hosts[0].address.as_ref().map(|a| address_hash(&a.addr));
            let b = r.hosts[1].address.as_ref().map(|a| address_hash(&a.addr));
            if a == b {
                errors.push(cerr(
                    &r.pos,
                    format!("in resource {}: the two addresses give equal hashes; set 'node-id' in both 'on' sections", r.name),
                ));
            } else {
                let first_zero = a > b;
                r.hosts[0].node_id = Some(if first_zero { 0 } else { 1 });
                r.hosts[1].node_id = Some(if first_zero { 1 } else { 0 });
                r.hosts[0].node_id_implicit = true;
                r.hosts[1].node_id_implicit = true;
            }
        } else {
            for h in &r.hosts {
                if h.node_id.is_none() {
                    errors.push(cerr(
                        &h.pos,
                        format!(
                            "in resource {}, on {} {{ ... }}: 'node-id' keyword missing.",
                            r.name,
                            h.name()
                        ),
                    ));
                }
            }
        }
        // duplicate node ids
        for (i, h) in r.hosts.iter().enumerate() {
            if let Some(id) = h.node_id {
                if let Some(o) = r.hosts[..i].iter().find(|o| o.node_id == Some(id)) {
                    errors.push(cerr(
                        &h.pos,
                        format!(
                            "in resource {}: node-id {id} of {} is also used by {} ({})",
                            r.name,
                            h.name(),
                            o.name(),
                            o.pos
                        ),
                    ));
                }
            }
        }
        // per-host volume completeness
        for h in &r.hosts {
            for vnr in volume_numbers(r, h) {
                let v = host_volume(r, h, vnr);
                for (missing, kw) in [
                    (v.device.is_none(), "device"),
                    (v.disk.is_none(), "disk"),
                    (v.meta.is_none() && !v.diskless(), "meta-disk"),
                ] {
                    if missing {
                        errors.push(cerr(
                            &h.pos,
                            format!(
                                "in resource {}, on {} {{ ... }}: '{kw}' keyword missing.",
                                r.name,
                                h.name()
                            ),
                        ));
                    }
                }
            }
        }
        if r.conns.is_empty() && r.meshes.is_empty() && r.hosts.len() > 2 {
            warnings.push(format!(
                "Resource {}:\n\tUse explicit 'connection' sections (or a 'connection-mesh' section) with more than two 'on' sections.",
                r.name
            ));
        }
        let _ = on_hosts;
        // connection hosts must exist
        for c in &r.conns {
            for ch in c.hosts.iter().chain(c.paths.iter().flatten()) {
                if !r.hosts.iter().any(|h| h.is(&ch.name)) {
                    errors.push(cerr(
                        &ch.pos,
                        format!(
                            "in resource {}: no 'on {}' section for this connection host",
                            r.name, ch.name
                        ),
                    ));
                }
            }
        }
        for m in &r.meshes {
            for n in &m.hosts {
                if !r.hosts.iter().any(|h| h.is(n)) {
                    errors.push(cerr(
                        &m.pos,
                        format!(
                            "in resource {}: no 'on {n}' section for this connection-mesh host",
                            r.name
                        ),
                    ));
                }
            }
        }
    }
    // minors and addresses must be unique per host
    let mut minors: Vec<(String, u32, Pos)> = Vec::new();
    let mut addrs: Vec<(String, String, Pos)> = Vec::new();
    for r in &cfg.resources {
        for h in &r.hosts {
            let names = if h.floating {
                vec![h.name()]
            } else {
                h.names.clone()
            };
            for vnr in volume_numbers(r, h) {
                let v = host_volume(r, h, vnr);
                let Some(d) = &v.device else { continue };
                let pos = v.device_pos.clone().unwrap_or_else(|| v.pos.clone());
                for n in &names {
                    if let Some((_, _, first)) =
                        minors.iter().find(|(hn, m, _)| hn == n && *m == d.minor)
                    {
                        errors.push(cerr(
                            &pos,
                            format!(
                                "conflicting use of device-minor 'device-minor:{n}:{}' ...\n{first}: device-minor 'device-minor:{n}:{}' first used here.",
                                d.minor, d.minor
                            ),
                        ));
                    } else {
                        minors.push((n.clone(), d.minor, pos.clone()));
                    }
                }
            }
            if let Some(a) = &h.address {
                let key = a.setup_arg();
                if let Some((_, rn, first)) = addrs.iter().find(|(k, _, _)| *k == key) {
                    errors.push(cerr(
                        &h.pos,
                        format!(
                            "in resource {}\n    {key} is also used {first} (resource {rn})",
                            r.name
                        ),
                    ));
                } else {
                    addrs.push((key, r.name.clone(), h.pos.clone()));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(errors)
    }
}

/// Finds my host section: by name, else a floating section whose address is local.
pub fn find_me(r: &Resource, host: &str, local_ips: &[String]) -> Option<usize> {
    r.hosts
        .iter()
        .position(|h| !h.floating && h.is(host))
        .or_else(|| {
            r.hosts.iter().position(|h| {
                h.floating
                    && h.address
                        .as_ref()
                        .is_some_and(|a| local_ips.contains(&a.addr))
            })
        })
}

fn path_address(r: &Resource, ch: &ConnHost) -> Option<Address> {
    if let Some(a) = &ch.address {
        return Some(a.clone());
    }
    let h = r.hosts.iter().find(|h| h.is(&ch.name))?;
    let mut a = h.address.clone()?;
    if let Some(p) = ch.port {
        a.port = p;
    }
    Some(a)
}

/// The resource `r` (index `idx`) as host `me` runs it.
pub fn local(cfg: &Config, idx: usize, me: usize) -> Result<Local, ConfError> {
    let r = &cfg.resources[idx];
    let mh = &r.hosts[me];
    let volumes: Vec<LocalVolume> = volume_numbers(r, mh)
        .into_iter()
        .map(|vnr| {
            let v = host_volume(r, mh, vnr);
            let minor = v.device.as_ref().map(|d| d.minor).unwrap_or(0);
            let device = v
                .device
                .as_ref()
                .and_then(|d| d.path.clone())
                .unwrap_or_else(|| format!("/dev/drbd{minor}"));
            let diskless = v.diskless();
            LocalVolume {
                vnr,
                minor,
                device,
                disk: if diskless { None } else { v.disk.clone() },
                meta: if diskless { None } else { v.meta.clone() },
                disk_opts: v.disk_opts,
                dev_opts: v.dev_opts,
            }
        })
        .collect();
    let mut peers = Vec::new();
    let mut add_peer = |peer: &Host,
                        own_net: &Opts,
                        paths: Vec<(Address, Address)>,
                        conn: Option<(usize, &Connection)>| {
        let mut net = vec![Opt {
            key: "_name".into(),
            val: peer.name(),
            pos: Pos::none(),
        }];
        net.extend(chain(&[&reversed(&r.sec.net), own_net]));
        let none: Opts = Vec::new();
        let pd = volumes
            .iter()
            .map(|lv| {
                let rv = r
                    .volumes
                    .iter()
                    .find(|v| v.vnr == lv.vnr)
                    .map(|v| &v.pd_opts);
                let cpd = conn.map(|(_, c)| &c.pd).unwrap_or(&none);
                let cv = conn
                    .and_then(|(_, c)| c.volumes.iter().find(|(n, _)| *n == lv.vnr))
                    .map(|(_, o)| o)
                    .unwrap_or(&none);
                let mut o = chain(&[&r.sec.pd, rv.unwrap_or(&none), cpd, cv]);
                let pv = host_volume(r, peer, lv.vnr);
                if pv.diskless() && get(&o, "bitmap").is_none() {
                    o.push(Opt {
                        key: "bitmap".into(),
                        val: "no".into(),
                        pos: Pos::none(),
                    });
                }
                (lv.vnr, o)
            })
            .collect();
        peers.push(Peer {
            name: peer.name(),
            node_id: peer.node_id.unwrap_or(0),
            net,
            paths,
            pd,
            conn_idx: conn.map(|(i, _)| i),
        });
    };
    for (ci, c) in r.conns.iter().enumerate() {
        let mut all_paths: Vec<&Vec<ConnHost>> = Vec::new();
        if !c.hosts.is_empty() {
            all_paths.push(&c.hosts);
        }
        all_paths.extend(c.paths.iter());
        let Some(first) = all_paths.first() else {
            continue;
        };
        let Some(mine) = first.iter().find(|ch| mh.is(&ch.name)) else {
            continue;
        };
        let Some(other) = first.iter().find(|ch| !mh.is(&ch.name)) else {
            continue;
        };
        let Some(peer) = r.hosts.iter().find(|h| h.is(&other.name)) else {
            continue;
        };
        let _ = mine;
        let mut paths = Vec::new();
        for p in &all_paths {
            let a = p
                .iter()
                .find(|ch| mh.is(&ch.name))
                .and_then(|ch| path_address(r, ch));
            let b = p
                .iter()
                .find(|ch| peer.is(&ch.name))
                .and_then(|ch| path_address(r, ch));
            match (a, b) {
                (Some(a), Some(b)) => paths.push((a, b)),
                _ => {
                    return Err(cerr(
                        &c.pos,
                        format!(
                            "in resource {}: a path of this connection has no address for {} or {}",
                            r.name,
                            mh.name(),
                            peer.name()
                        ),
                    ))
                }
            }
        }
        add_peer(peer, &c.net, paths, Some((ci, c)));
    }
    for m in &r.meshes {
        if !m.hosts.iter().any(|n| mh.is(n)) {
            continue;
        }
        for n in &m.hosts {
            if mh.is(n) {
                continue;
            }
            let Some(peer) = r.hosts.iter().find(|h| h.is(n)) else {
                continue;
            };
            let paths = match (&mh.address, &peer.address) {
                (Some(a), Some(b)) => vec![(a.clone(), b.clone())],
                _ => Vec::new(),
            };
            add_peer(peer, &m.net, paths, None);
        }
    }
    if r.conns.is_empty() && r.meshes.is_empty() && r.hosts.len() == 2 {
        let peer = &r.hosts[1 - me];
        let paths = match (&mh.address, &peer.address) {
            (Some(a), Some(b)) => vec![(a.clone(), b.clone())],
            _ => Vec::new(),
        };
        add_peer(peer, &Vec::new(), paths, None);
    }
    Ok(Local {
        name: r.name.clone(),
        res_idx: idx,
        me,
        node_id: mh.node_id.unwrap_or(0),
        volumes,
        peers,
        res_opts: r.sec.options.clone(),
        startup: r
            .sec
            .startup
            .iter()
            .filter(|o| WAIT_STARTUP_KEYS.contains(&o.key.as_str()))
            .cloned()
            .collect(),
        n_hosts: r.hosts.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_node_ids_follow_drbdadm() {
        // recorded with drbdadm 9.22: the first host gets node-id 0 here
        assert!(address_hash("10.167.16.164") > address_hash("10.112.198.232"));
        // and node-id 1 here
        assert!(address_hash("10.194.47.171") < address_hash("10.153.59.2"));
        assert!(address_hash("192.168.22.11") < address_hash("192.168.22.12"));
    }
}
