//! The text dump of `dump-md` and its parser for `restore-md`/`verify-dump`.
//!
//! The format is drbdmeta's: a header of comments, `version "v09";`,
//! `max-peers N;`, the superblock fields, 32 `peer[i] { ... }` blocks, the
//! history UUIDs, and one `bitmap[slot] { ... }` per slot, where bitmap words
//! are printed as 64-bit hex values (low 32-bit word last) and runs of at
//! least 16 equal 32-bit words as `N times 0x...;`.

use std::fmt::Write as _;

use proto::meta::{PeerSlot, Superblock, HISTORY_UUIDS, NODE_ID_MAX};

/// Names of peer-slot flag bits, as drbdmeta prints them.
fn peer_flag_name(bit: u32) -> Option<&'static str> {
    match bit {
        0 => Some("connected"),
        1 => Some("<=outdated"),
        2 => Some("fencing"),
        3 => Some("full-sync"),
        4 => Some("seen"),
        16 => Some("exists"),
        _ => None,
    }
}

fn pretty_peer_flags(flags: u32) -> String {
    let mut s = String::new();
    let mut sep = " # ";
    for bit in 0..32 {
        let f = 1u32 << bit;
        if flags & f == 0 {
            continue;
        }
        match peer_flag_name(bit) {
            Some(n) => {
                let _ = write!(s, "{sep}{n}");
            }
            None => {
                let _ = write!(s, "{sep}0x{f:x}=?");
            }
        }
        sep = " | ";
    }
    s
}

/// Everything `dump-md` prints after the header.
pub struct DumpInput<'a> {
    pub sb: &'a Superblock,
    pub effective_size: u64,
    pub md_size_sect: u32,
    pub md_offset: u64,
    pub al_offset: u64,
    pub bm_offset: u64,
    pub bm_bytes: u64,
    /// Interleaved little-endian bitmap words covering `bm_bytes`.
    pub bitmap: &'a [u32],
    pub unclean: bool,
}

/// Render the dump body (everything after the `# DRBD meta data dump` header).
pub fn render(d: &DumpInput<'_>) -> String {
    let sb = d.sb;
    let mut o = String::new();
    o.push_str("version \"v09\";\n\n");
    if d.unclean {
        o.push_str("This_is_an_unclean_meta_data_dump._Don't_trust_the_bitmap.\n# You should \"apply-al\" first, if you plan to restore this.\n\n");
    }
    let _ = writeln!(o, "max-peers {};", sb.bm_max_peers);
    let _ = writeln!(o, "# md_size_sect {}", d.md_size_sect);
    let _ = writeln!(o, "# md_offset {}", d.md_offset);
    let _ = writeln!(o, "# al_offset {}", d.al_offset);
    let _ = writeln!(o, "# bm_offset {}", d.bm_offset);
    o.push('\n');
    let _ = writeln!(o, "node-id {};", sb.node_id);
    let _ = writeln!(o, "current-uuid 0x{:016X};", sb.current_uuid);
    let _ = writeln!(o, "flags 0x{:08X};", sb.flags);
    for (i, p) in sb.peers.iter().enumerate() {
        let _ = writeln!(o, "peer[{i}] {{");
        let _ = writeln!(o, "    bitmap-index {};", p.bitmap_index);
        let _ = writeln!(o, "    bitmap-uuid 0x{:016X};", p.bitmap_uuid);
        let _ = writeln!(o, "    bitmap-dagtag 0x{:016X};", p.bitmap_dagtag);
        let _ = writeln!(
            o,
            "    flags 0x{:08X};{}",
            p.flags,
            pretty_peer_flags(p.flags)
        );
        o.push_str("}\n");
    }
    o.push_str("history-uuids {");
    for (i, h) in sb.history_uuids.iter().enumerate() {
        let sep = if i % 4 != 0 { " " } else { "\n        " };
        let _ = write!(o, "{sep}0x{h:016X};");
    }
    o.push_str("\n}\n");
    let _ = writeln!(o, "# al-extents {};", sb.al_nr_extents);
    let _ = writeln!(o, "la-size-sect {};", d.effective_size);
    let _ = writeln!(o, "bm-byte-per-bit {};", sb.bm_bytes_per_bit);
    let _ = writeln!(o, "device-uuid 0x{:016X};", sb.device_uuid);
    let _ = writeln!(
        o,
        "la-peer-max-bio-size {};",
        sb.la_peer_max_bio_size as i32
    );
    let _ = writeln!(o, "al-stripes {};", sb.al_stripes);
    let _ = writeln!(o, "al-stripe-size-4k {};", sb.al_stripe_size_4k);
    let _ = writeln!(o, "# bm-bytes {};", d.bm_bytes as u32);
    let mut bits = 0;
    for slot in 0..sb.bm_max_peers {
        let _ = write!(o, "bitmap[{slot}] ");
        bits = render_bitmap_slot(&mut o, d.bitmap, slot, sb.bm_max_peers);
    }
    // drbdmeta reports the count of the last slot printed.
    let _ = writeln!(o, "# bits-set {bits};");
    o
}

/// Print one slot of an interleaved bitmap; returns its number of set bits.
pub fn render_bitmap_slot(o: &mut String, words: &[u32], slot: u32, max_peers: u32) -> u64 {
    const WPL: usize = 8; // 32-bit words per line
    let mp = max_peers.max(1) as usize;
    let p = slot as usize;
    let slot_words: Vec<u32> = words.iter().skip(p).step_by(mp).copied().collect();
    let n = slot_words.len();
    let mut bits = 0u64;
    let mut low = 0u32;
    let mut k = 0usize;
    o.push('{');
    while k < n {
        if k % WPL == 0 {
            let r = p + k * mp;
            if r & 63 == p {
                let _ = write!(o, "\n   # at {}kB\n   ", 128u64 * (r - p) as u64);
            } else {
                o.push_str("\n   ");
            }
            let w = slot_words[k];
            let run = slot_words[k..].iter().take_while(|&&x| x == w).count();
            let tmp = run / WPL * WPL;
            if tmp > WPL {
                let _ = write!(o, " {} times 0x{w:08X}{w:08X};", tmp / 2);
                bits += tmp as u64 * u64::from(w.count_ones());
                k += tmp;
                continue;
            }
        }
        let w = slot_words[k];
        if k & 1 == 0 {
            low = w;
        } else {
            let _ = write!(o, " 0x{w:08X}{low:08X};");
        }
        bits += u64::from(w.count_ones());
        k += 1;
    }
    o.push_str("\n}\n");
    bits
}

/// A parsed dump.
pub struct Dump {
    pub max_peers: u32,
    pub sb: Superblock,
    /// Interleaved bitmap words as given in the dump (zero where not given).
    pub bitmap: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(i64),
    Hex(u64),
    Punct(char),
    Eof,
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    line: u32,
}

impl<'a> Lexer<'a> {
    fn next(&mut self) -> Result<Tok, String> {
        loop {
            match self.s.get(self.pos) {
                None => return Ok(Tok::Eof),
                Some(b'\n') => {
                    self.line += 1;
                    self.pos += 1;
                }
                Some(c) if c.is_ascii_whitespace() => self.pos += 1,
                Some(b'#') => {
                    while let Some(&c) = self.s.get(self.pos) {
                        if c == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                Some(_) => break,
            }
        }
        let start = self.pos;
        let c = self.s[start];
        if matches!(c, b';' | b'{' | b'}' | b'[' | b']') {
            self.pos += 1;
            return Ok(Tok::Punct(c as char));
        }
        if c == b'"' {
            self.pos += 1;
            let b = self.pos;
            while let Some(&c) = self.s.get(self.pos) {
                if c == b'"' || c == b'\n' {
                    break;
                }
                self.pos += 1;
            }
            if self.s.get(self.pos) != Some(&b'"') {
                return Err("unterminated string".into());
            }
            let t = String::from_utf8_lossy(&self.s[b..self.pos]).into_owned();
            self.pos += 1;
            return Ok(Tok::Str(t));
        }
        while let Some(&c) = self.s.get(self.pos) {
            if c.is_ascii_whitespace() || matches!(c, b';' | b'{' | b'}' | b'[' | b']' | b'#') {
                break;
            }
            self.pos += 1;
        }
        let t = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
        if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            return u64::from_str_radix(h, 16)
                .map(Tok::Hex)
                .map_err(|_| format!("invalid hex number '{t}'"));
        }
        if t.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
            return t
                .parse::<i64>()
                .map(Tok::Num)
                .map_err(|_| format!("invalid number '{t}'"));
        }
        Ok(Tok::Word(t))
    }
}

struct Parser<'a> {
    lx: Lexer<'a>,
}

impl Parser<'_> {
    fn err<T>(&self, what: &str, got: &Tok) -> Result<T, String> {
        let got = match got {
            Tok::Eof => "end of file".to_string(),
            Tok::Word(w) => format!("'{w}'"),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Num(_) | Tok::Hex(_) => "some number".to_string(),
            Tok::Punct(c) => format!("'{c}'"),
        };
        Err(format!(
            "Parse error in line {}: {what} expected, not {got}",
            self.lx.line
        ))
    }
    fn word(&mut self, w: &str) -> Result<(), String> {
        let t = self.lx.next()?;
        if t == Tok::Word(w.to_string()) {
            Ok(())
        } else {
            self.err(&format!("keyword '{w}'"), &t)
        }
    }
    fn punct(&mut self, c: char) -> Result<(), String> {
        let t = self.lx.next()?;
        if t == Tok::Punct(c) {
            Ok(())
        } else {
            self.err(&format!("'{c}'"), &t)
        }
    }
    fn num(&mut self) -> Result<i64, String> {
        match self.lx.next()? {
            Tok::Num(n) => Ok(n),
            t => self.err("number", &t),
        }
    }
    fn hex(&mut self) -> Result<u64, String> {
        match self.lx.next()? {
            Tok::Hex(n) => Ok(n),
            t => self.err("hex number", &t),
        }
    }
    /// `keyword value;`
    fn kv_num(&mut self, w: &str) -> Result<i64, String> {
        self.word(w)?;
        let n = self.num()?;
        self.punct(';')?;
        Ok(n)
    }
    fn kv_hex(&mut self, w: &str) -> Result<u64, String> {
        self.word(w)?;
        let n = self.hex()?;
        self.punct(';')?;
        Ok(n)
    }
}

fn to_u32(n: i64, what: &str) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("{what} {n} out of range"))
}
fn to_i32(n: i64, what: &str) -> Result<i32, String> {
    i32::try_from(n).map_err(|_| format!("{what} {n} out of range"))
}

/// Parse a v09 dump. Errors carry drbdmeta-style "Parse error in line N" text.
pub fn parse(text: &str) -> Result<Dump, String> {
    let mut p = Parser {
        lx: Lexer {
            s: text.as_bytes(),
            pos: 0,
            line: 1,
        },
    };
    p.word("version")?;
    match p.lx.next()? {
        Tok::Str(v) if v == "v09" => {}
        Tok::Str(v) => return Err(format!("dump is '{v}' you requested 'v09'.")),
        t => return p.err("short quoted string", &t),
    }
    p.punct(';')?;
    let max_peers = to_u32(p.kv_num("max-peers")?, "max-peers")?;
    if !(1..=32).contains(&max_peers) {
        return Err(format!("max-peers {max_peers} out of range"));
    }
    let mut sb = Superblock {
        bm_max_peers: max_peers,
        ..Superblock::default()
    };
    sb.node_id = to_i32(p.kv_num("node-id")?, "node-id")?;
    sb.current_uuid = p.kv_hex("current-uuid")?;
    sb.flags = p.kv_hex("flags")? as u32;
    let mut seen = [false; NODE_ID_MAX];
    for _ in 0..NODE_ID_MAX {
        p.word("peer")?;
        p.punct('[')?;
        let n = p.num()?;
        p.punct(']')?;
        let idx = usize::try_from(n)
            .ok()
            .filter(|&i| i < NODE_ID_MAX)
            .ok_or_else(|| format!("Parse error in line {}: Slot {n} out of range", p.lx.line))?;
        if seen[idx] {
            return Err(format!(
                "Parse error in line {}: Peer slot {idx} defined multiple times",
                p.lx.line
            ));
        }
        seen[idx] = true;
        p.punct('{')?;
        let bitmap_index = to_i32(p.kv_num("bitmap-index")?, "bitmap-index")?;
        let bitmap_uuid = p.kv_hex("bitmap-uuid")?;
        let bitmap_dagtag = p.kv_hex("bitmap-dagtag")?;
        let flags = p.kv_hex("flags")? as u32;
        p.punct('}')?;
        sb.peers[idx] = PeerSlot {
            bitmap_uuid,
            bitmap_dagtag,
            flags,
            bitmap_index,
        };
    }
    p.word("history-uuids")?;
    p.punct('{')?;
    for i in 0..HISTORY_UUIDS {
        sb.history_uuids[i] = p.hex()?;
        p.punct(';')?;
    }
    p.punct('}')?;
    sb.effective_size =
        u64::try_from(p.kv_num("la-size-sect")?).map_err(|_| "la-size-sect out of range")?;
    let bpb = p.kv_num("bm-byte-per-bit")?;
    if bpb < 4096 || (bpb & (bpb - 1)) != 0 {
        return Err(
            "Invalid value for bm-byte-per-bit: value must be a power-of-two multiple of 4096"
                .into(),
        );
    }
    sb.bm_bytes_per_bit = to_u32(bpb, "bm-byte-per-bit")?;
    sb.device_uuid = p.kv_hex("device-uuid")?;
    sb.la_peer_max_bio_size = p.kv_num("la-peer-max-bio-size")? as u32;
    sb.al_stripes = to_u32(p.kv_num("al-stripes")?, "al-stripes")?;
    sb.al_stripe_size_4k = to_u32(p.kv_num("al-stripe-size-4k")?, "al-stripe-size-4k")?;
    let mp = max_peers as usize;
    let mut bitmap: Vec<u32> = Vec::new();
    for slot in 0..mp {
        p.word("bitmap")?;
        p.punct('[')?;
        let n = p.num()?;
        p.punct(']')?;
        if n != slot as i64 {
            return Err(format!(
                "Parse error in line {}: Expected peer slot {slot} but found {n}",
                p.lx.line
            ));
        }
        p.punct('{')?;
        let mut k = 0usize; // slot word index
        let put = |bitmap: &mut Vec<u32>, k: &mut usize, v: u64| -> Result<(), String> {
            for half in [v as u32, (v >> 32) as u32] {
                let i = slot + *k * mp;
                if i >= (1 << 30) {
                    return Err("bitmap too large".into());
                }
                if bitmap.len() <= i {
                    bitmap.resize(i + 1, 0);
                }
                bitmap[i] = half;
                *k += 1;
            }
            Ok(())
        };
        loop {
            match p.lx.next()? {
                Tok::Hex(v) => {
                    p.punct(';')?;
                    put(&mut bitmap, &mut k, v)?;
                }
                Tok::Num(times) => {
                    p.word("times")?;
                    let v = p.hex()?;
                    p.punct(';')?;
                    if !(0..=(1 << 29)).contains(&times) {
                        return Err(format!("repeat count {times} out of range"));
                    }
                    for _ in 0..times {
                        put(&mut bitmap, &mut k, v)?;
                    }
                }
                Tok::Punct('}') => break,
                t => {
                    return p.err(
                        "repeat count, 16-digit hex number, or closing brace (})",
                        &t,
                    )
                }
            }
        }
    }
    match p.lx.next()? {
        Tok::Eof => {}
        t => return p.err("end of file", &t),
    }
    Ok(Dump {
        max_peers,
        sb,
        bitmap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_slot_format() {
        // two slots, 1024 words each, like drbdmeta's example
        let mut w = vec![0u32; 2048];
        w[0] = 0xffff_ffff;
        w[2] = 1;
        w[1] = 0x8000_0000;
        for k in 100..140 {
            w[2 * k] = 0xffff_ffff;
        }
        w[2 * 200 + 1] = 0xdead_beef;
        let mut s = String::new();
        let b0 = render_bitmap_slot(&mut s, &w, 0, 2);
        let b1 = render_bitmap_slot(&mut s, &w, 1, 2);
        assert_eq!(b0, 32 + 1 + 40 * 32);
        assert_eq!(b1, 25);
        let expect = "{
   # at 0kB
    0x00000001FFFFFFFF; 0x0000000000000000; 0x0000000000000000; 0x0000000000000000;
    44 times 0x0000000000000000;
   # at 24576kB
    0x0000000000000000; 0x0000000000000000; 0xFFFFFFFFFFFFFFFF; 0xFFFFFFFFFFFFFFFF;
    16 times 0xFFFFFFFFFFFFFFFF;
    0xFFFFFFFFFFFFFFFF; 0xFFFFFFFFFFFFFFFF; 0x0000000000000000; 0x0000000000000000;
    440 times 0x0000000000000000;
}
{
   # at 0kB
    0x0000000080000000; 0x0000000000000000; 0x0000000000000000; 0x0000000000000000;
    96 times 0x0000000000000000;
    0x00000000DEADBEEF; 0x0000000000000000; 0x0000000000000000; 0x0000000000000000;
    408 times 0x0000000000000000;
}
";
        assert_eq!(s, expect);
    }

    #[test]
    fn empty_bitmap() {
        let mut s = String::new();
        render_bitmap_slot(&mut s, &[], 0, 1);
        assert_eq!(s, "{\n}\n");
    }
}
