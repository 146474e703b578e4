//! `drbdadm wait-sync`: follow a resource until every peer device is Established with an
//! UpToDate peer disk, showing resync progress as a bar on a terminal and as plain lines
//! otherwise. The state is read from `drbdsetup events2 --now RES` (the machine-readable
//! formats are untouched).

use std::fmt::Write as _;

/// One peer device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerDev {
    /// Connection name (`conn-name:`).
    pub conn: String,
    /// Volume.
    pub volume: u32,
    /// `replication:`.
    pub repl: String,
    /// `peer-disk:`.
    pub peer_disk: String,
    /// `done:` while syncing or verifying.
    pub done: Option<f64>,
}

/// What `events2 --now` says about one resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Whether the resource exists.
    pub exists: bool,
    /// Local disks: (volume, disk state).
    pub disks: Vec<(u32, String)>,
    /// Connections: (conn-name, connection state).
    pub conns: Vec<(String, String)>,
    /// Peer devices.
    pub peers: Vec<PeerDev>,
}

fn kv(line: &str) -> impl Iterator<Item = (&str, &str)> {
    line.split_whitespace().filter_map(|w| w.split_once(':'))
}

fn get<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    kv(line).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// Reads the `exists` lines of resource `res` from `drbdsetup events2 --now` output.
pub fn parse_events_now(text: &str, res: &str) -> Snapshot {
    let mut s = Snapshot::default();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        if w.next() != Some("exists") {
            continue;
        }
        let obj = w.next().unwrap_or("");
        if get(line, "name") != Some(res) {
            continue;
        }
        let vol = || {
            get(line, "volume")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let conn = || get(line, "conn-name").unwrap_or("").to_string();
        match obj {
            "resource" => s.exists = true,
            "device" => s
                .disks
                .push((vol(), get(line, "disk").unwrap_or("").to_string())),
            "connection" => s
                .conns
                .push((conn(), get(line, "connection").unwrap_or("").to_string())),
            "peer-device" => s.peers.push(PeerDev {
                conn: conn(),
                volume: vol(),
                repl: get(line, "replication").unwrap_or("").to_string(),
                peer_disk: get(line, "peer-disk").unwrap_or("").to_string(),
                done: get(line, "done").and_then(|d| d.parse().ok()),
            }),
            _ => {}
        }
    }
    s
}

/// Whether the resource is fully in sync: connected everywhere, every peer device Established
/// with an UpToDate peer disk, every local disk UpToDate (or intentionally diskless).
pub fn finished(s: &Snapshot) -> bool {
    s.exists
        && !s.conns.is_empty()
        && s.conns.iter().all(|(_, c)| c == "Connected")
        && !s.peers.is_empty()
        && s.peers
            .iter()
            .all(|p| p.repl == "Established" && p.peer_disk == "UpToDate")
        && s.disks
            .iter()
            .all(|(_, d)| d == "UpToDate" || d == "Diskless")
}

/// `[=========>..........]` for `pct` percent in `width` characters between the brackets.
pub fn bar(pct: f64, width: usize) -> String {
    let pct = pct.clamp(0.0, 100.0);
    let filled = ((pct / 100.0) * width as f64).floor() as usize;
    let mut b = String::with_capacity(width + 2);
    b.push('[');
    for i in 0..width {
        b.push(if i < filled {
            '='
        } else if i == filled {
            '>'
        } else {
            '.'
        });
    }
    b.push(']');
    b
}

fn state_of(p: &PeerDev) -> String {
    if p.repl == "Established" || p.repl.is_empty() || p.repl == "Off" {
        format!("peer-disk:{}", p.peer_disk)
    } else {
        format!("{} peer-disk:{}", p.repl, p.peer_disk)
    }
}

/// Terminal lines: one per peer device, with a bar while it syncs.
pub fn render_tty(res: &str, s: &Snapshot, width: usize) -> Vec<String> {
    if !s.exists {
        return vec![format!("{res}: No such resource")];
    }
    let mut lines = Vec::new();
    for (name, cs) in &s.conns {
        if cs != "Connected" {
            lines.push(format!("{res} {name} connection:{cs}"));
        }
    }
    for p in &s.peers {
        let mut l = format!("{res} {}/{} ", p.conn, p.volume);
        match p.done {
            Some(d) => {
                let text = format!(" {d:6.2}% {}", p.repl);
                let room = width.saturating_sub(l.len() + text.len() + 2).clamp(10, 50);
                l.push_str(&bar(d, room));
                l.push_str(&text);
            }
            None => l.push_str(&state_of(p)),
        }
        lines.push(l);
    }
    if lines.is_empty() {
        let disks: Vec<String> = s.disks.iter().map(|(_, d)| format!("disk:{d}")).collect();
        lines.push(format!("{res} {} (no peer devices)", disks.join(" ")));
    }
    lines
}

/// Plain lines (not a terminal): `RES CONN/VOL replication:X peer-disk:Y [done:NN.NN]` per peer
/// device, `RES CONN connection:X` per unconnected connection.
pub fn render_plain(res: &str, s: &Snapshot) -> Vec<String> {
    if !s.exists {
        return vec![format!("{res}: No such resource")];
    }
    let mut lines = Vec::new();
    for (name, cs) in &s.conns {
        if cs != "Connected" {
            lines.push(format!("{res} {name} connection:{cs}"));
        }
    }
    for p in &s.peers {
        let mut l = format!(
            "{res} {}/{} replication:{} peer-disk:{}",
            p.conn, p.volume, p.repl, p.peer_disk
        );
        if let Some(d) = p.done {
            let _ = write!(l, " done:{d:.2}");
        }
        lines.push(l);
    }
    lines
}

/// What a plain-line consumer needs to see again: states and whole percents (a new line per
/// changed state or percent, not per poll).
pub fn plain_key(s: &Snapshot) -> String {
    let mut k = String::new();
    for (n, c) in &s.conns {
        let _ = write!(k, "{n}:{c};");
    }
    for p in &s.peers {
        let _ = write!(
            k,
            "{}/{}:{}:{}:{};",
            p.conn,
            p.volume,
            p.repl,
            p.peer_disk,
            p.done.map(|d| d.floor() as i64).unwrap_or(-1)
        );
    }
    k
}

/// The escape sequence that moves the cursor back over `n` lines drawn before and clears them.
pub fn redraw_prefix(n: usize) -> String {
    let mut s = String::new();
    if n > 0 {
        s.push('\r');
        if n > 1 {
            let _ = write!(s, "\x1b[{}A", n - 1);
        }
        s.push_str("\x1b[J");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYNCING: &str = "exists resource name:dvolume role:Primary suspended:no force-io-failures:no may_promote:no promotion_score:10101
exists connection name:dvolume peer-node-id:1 conn-name:node1 connection:Connected role:Secondary
exists device name:dvolume volume:0 minor:1 backing_dev:/dev/vdb disk:UpToDate client:no quorum:yes
exists peer-device name:dvolume peer-node-id:1 conn-name:node1 volume:0 replication:SyncSource peer-disk:Inconsistent peer-client:no resync-suspended:no done:72.16
exists path name:dvolume peer-node-id:1 conn-name:node1 local:ipv4:10.0.0.1:7789 peer:ipv4:10.0.0.2:7789 established:yes
exists -
";

    #[test]
    fn parses_and_decides() {
        let s = parse_events_now(SYNCING, "dvolume");
        assert!(s.exists);
        assert_eq!(s.disks, vec![(0, "UpToDate".to_string())]);
        assert_eq!(s.conns, vec![("node1".into(), "Connected".into())]);
        assert_eq!(s.peers[0].done, Some(72.16));
        assert!(!finished(&s));
        let done = SYNCING
            .replace(
                "replication:SyncSource peer-disk:Inconsistent",
                "replication:Established peer-disk:UpToDate",
            )
            .replace(" done:72.16", "");
        assert!(finished(&parse_events_now(&done, "dvolume")));
        let connecting = "exists resource name:dvolume role:Secondary\nexists connection name:dvolume peer-node-id:1 conn-name:node1 connection:Connecting role:Unknown\nexists device name:dvolume volume:0 minor:1 disk:Inconsistent\nexists -\n";
        let s = parse_events_now(connecting, "dvolume");
        assert!(!finished(&s));
        assert_eq!(
            render_plain("dvolume", &s),
            vec!["dvolume node1 connection:Connecting"]
        );
        assert!(!parse_events_now(SYNCING, "other").exists);
        assert!(!finished(&parse_events_now("exists -\n", "dvolume")));
    }

    #[test]
    fn bars() {
        assert_eq!(bar(0.0, 10), "[>.........]");
        assert_eq!(bar(50.0, 10), "[=====>....]");
        assert_eq!(bar(100.0, 10), "[==========]");
        assert_eq!(bar(150.0, 4), "[====]");
    }

    #[test]
    fn renders() {
        let s = parse_events_now(SYNCING, "dvolume");
        assert_eq!(
            render_plain("dvolume", &s),
            vec!["dvolume node1/0 replication:SyncSource peer-disk:Inconsistent done:72.16"]
        );
        let t = render_tty("dvolume", &s, 80);
        assert_eq!(t.len(), 1);
        assert!(t[0].starts_with("dvolume node1/0 [====="), "{}", t[0]);
        assert!(t[0].ends_with("]  72.16% SyncSource"), "{}", t[0]);
        assert!(t[0].len() <= 80, "{}", t[0]);
        let narrow = render_tty("dvolume", &s, 20);
        assert!(narrow[0].contains(&bar(72.16, 10)), "{}", narrow[0]);
        assert_eq!(redraw_prefix(0), "");
        assert_eq!(redraw_prefix(1), "\r\x1b[J");
        assert_eq!(redraw_prefix(3), "\r\x1b[2A\x1b[J");
        // plain output repeats only on a whole-percent or state change
        let mut s2 = s.clone();
        s2.peers[0].done = Some(72.9);
        assert_eq!(plain_key(&s), plain_key(&s2));
        s2.peers[0].done = Some(73.0);
        assert_ne!(plain_key(&s), plain_key(&s2));
        let no = parse_events_now("", "dvolume");
        assert_eq!(
            render_tty("dvolume", &no, 80),
            vec!["dvolume: No such resource"]
        );
    }
}
