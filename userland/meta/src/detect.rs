//! Recognise existing data (file systems, swap, LVM, ...) at the start of a
//! device before meta-data is written over or next to it.

/// What was found in the first 68 KiB of a device.
pub struct Existing {
    /// Human name, e.g. "ext4 filesystem".
    pub kind: &'static str,
    /// Size of the data area in bytes, if known.
    pub size: Size,
}

/// How much of the device the found data claims.
pub enum Size {
    /// Unknown content: no size information.
    Unknown,
    /// File system of this many bytes.
    Bytes(u64),
    /// Something that must never be truncated or overwritten (swap).
    Refuse,
    /// Recognised, but its size could not be determined (LVM PV, LUKS).
    Undetermined,
}

fn le16(d: &[u8], o: usize) -> u64 {
    d.get(o..o + 2)
        .map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])))
        .unwrap_or(0)
}
fn le32(d: &[u8], o: usize) -> u64 {
    d.get(o..o + 4)
        .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        .unwrap_or(0)
}
fn le64(d: &[u8], o: usize) -> u64 {
    d.get(o..o + 8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        .unwrap_or(0)
}
fn be32(d: &[u8], o: usize) -> u64 {
    d.get(o..o + 4)
        .map(|b| u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        .unwrap_or(0)
}
fn be64(d: &[u8], o: usize) -> u64 {
    d.get(o..o + 8)
        .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
        .unwrap_or(0)
}
fn has(d: &[u8], o: usize, magic: &[u8]) -> bool {
    d.get(o..o + magic.len()) == Some(magic)
}

/// Inspect the first 68 KiB of a device. `None` if it is all zeros.
pub fn detect(data: &[u8]) -> Option<Existing> {
    if data.iter().all(|&b| b == 0) {
        return None;
    }
    let found = |kind, size| Some(Existing { kind, size });
    for o in [4096 - 10, 8192 - 10] {
        if has(data, o, b"SWAP-SPACE") || has(data, o, b"SWAPSPACE2") {
            return found("swap space signature", Size::Refuse);
        }
    }
    if has(data, 0x218, b"LVM2") {
        return found("LVM2 physical volume signature", Size::Undetermined);
    }
    if has(data, 0, b"LUKS\xba\xbe") {
        return found("LUKS encrypted volume", Size::Undetermined);
    }
    if le16(data, 0x438) == 0xEF53 {
        let compat = le32(data, 0x45c);
        let incompat = le32(data, 0x460);
        let kind = if incompat & (0x40 | 0x80 | 0x200) != 0 {
            "ext4 filesystem"
        } else if compat & 4 != 0 {
            "ext3 filesystem"
        } else {
            "ext2 filesystem"
        };
        let mut blocks = le32(data, 0x404);
        if incompat & 0x80 != 0 {
            blocks |= le32(data, 0x550) << 32;
        }
        let bsize = match le32(data, 0x418) {
            0 => 1024,
            1 => 2048,
            _ => 4096,
        };
        return found(kind, Size::Bytes(blocks.saturating_mul(bsize)));
    }
    if be32(data, 0) == 0x5846_5342 {
        let bsize = be32(data, 4);
        let blocks = be64(data, 8);
        return found("xfs filesystem", Size::Bytes(blocks.saturating_mul(bsize)));
    }
    if has(data, 0x8000, b"JFS1") {
        let blocks = le64(data, 0x8008);
        let bsize = le32(data, 0x8018);
        return found("JFS filesystem", Size::Bytes(blocks.saturating_mul(bsize)));
    }
    if has(data, 0x10034, b"ReIsErFs") || has(data, 0x10034, b"ReIsEr2Fs") {
        let blocks = le32(data, 0x10000);
        let bsize = le16(data, 0x1002c);
        return found(
            "reiser filesystem",
            Size::Bytes(blocks.saturating_mul(bsize)),
        );
    }
    if has(data, 0x10040, b"_BHRfS_M") {
        return found("btrfs filesystem", Size::Bytes(le64(data, 0x10070)));
    }
    if has(data, 0x36, b"FAT") || has(data, 0x52, b"FAT32") {
        return found("FAT filesystem", Size::Undetermined);
    }
    if has(data, 3, b"NTFS    ") {
        return found("NTFS filesystem", Size::Undetermined);
    }
    if has(data, 512, b"EFI PART") {
        return found("GPT partition table", Size::Undetermined);
    }
    found("some data", Size::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_are_nothing() {
        assert!(detect(&[0u8; 70000]).is_none());
    }

    #[test]
    fn ext4_and_swap() {
        let mut d = vec![0u8; 70000];
        d[0x438] = 0x53;
        d[0x439] = 0xEF;
        d[0x404..0x408].copy_from_slice(&25600u32.to_le_bytes());
        d[0x418] = 2;
        d[0x460] = 0x40;
        let e = detect(&d).unwrap();
        assert_eq!(e.kind, "ext4 filesystem");
        assert!(matches!(e.size, Size::Bytes(104_857_600)));
        let mut s = vec![0u8; 70000];
        s[4086..4096].copy_from_slice(b"SWAPSPACE2");
        assert_eq!(detect(&s).unwrap().kind, "swap space signature");
        let mut j = vec![0u8; 70000];
        j[5] = 1;
        assert_eq!(detect(&j).unwrap().kind, "some data");
    }
}
