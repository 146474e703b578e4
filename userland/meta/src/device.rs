//! Opening the meta-data device, reading its superblock, positional IO.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};

use proto::meta::{self, MdIndex, MdLayout, MetaError, Superblock, MD_BLOCK_SIZE};

use crate::{confirmed, Ctx};

/// `O_EXCL` on Linux: on a block device it means "fail with EBUSY if mounted
/// or otherwise claimed".
const O_EXCL: i32 = 0o200;
/// drbdmeta reads this much from the start of a device to look for data.
pub const SO_MUCH: u64 = 68 * 1024;

/// An open meta-data device (or image file).
pub struct Device {
    pub file: File,
    pub name: String,
    pub size: u64,
    pub index: MdIndex,
    /// Byte offset of the superblock.
    pub md_offset: u64,
}

/// Result of looking for meta-data at the expected place.
pub struct Found {
    pub sb: Superblock,
    pub layout: MdLayout,
    /// Effective size clipped to what the layout can hold.
    pub effective_size: u64,
    /// Bitmap bytes covering `effective_size`.
    pub bm_bytes: u64,
}

impl Device {
    pub fn open(ctx: &Ctx, name: &str, index: MdIndex, want_write: bool) -> Device {
        // Like drbdmeta: exclusive open unless fixed-size indexed meta-data
        // (several minors share that device).
        let mut excl = !matches!(index, MdIndex::Indexed(_));
        let mut write = want_write;
        let file = loop {
            let mut o = OpenOptions::new();
            o.read(true).write(write);
            let is_blk = std::fs::metadata(name)
                .map(|m| m.file_type().is_block_device())
                .unwrap_or(false);
            if excl && is_blk {
                o.custom_flags(O_EXCL);
            }
            match o.open(name) {
                Ok(f) => break f,
                Err(e) if e.raw_os_error() == Some(16) && excl => {
                    eprintln!("open({name}) failed: {e}");
                    if (!ctx.force && ctx.command == "apply-al")
                        || !confirmed(ctx, "Exclusive open failed. Do it anyways?")
                    {
                        println!("Operation canceled.");
                        std::process::exit(20);
                    }
                    excl = false;
                }
                Err(e)
                    if !want_write && write && matches!(e.raw_os_error(), Some(13) | Some(30)) =>
                {
                    write = false;
                }
                Err(e) => {
                    eprintln!("open({name}) failed: {e}");
                    std::process::exit(20);
                }
            }
        };
        let md = file.metadata().unwrap_or_else(|e| {
            eprintln!("fstat({name}) failed: {e}");
            std::process::exit(20)
        });
        let ft = md.file_type();
        let size = if ft.is_block_device() {
            let mut f = &file;
            f.seek(SeekFrom::End(0)).unwrap_or(0)
        } else if ft.is_file() {
            md.len()
        } else {
            eprintln!("'{name}' is not a block device!");
            std::process::exit(20);
        };
        if size < SO_MUCH {
            eprintln!("{name} is only {size} bytes. That's not enough.");
            std::process::exit(10);
        }
        let md_offset = match meta::md_offset(index, size / 512) {
            Ok(s) => s * 512,
            Err(_) => {
                let off = match index {
                    MdIndex::Indexed(n) => u64::from(n) * meta::MD_INDEXED_SLOT_SECT * 512,
                    _ => 0,
                };
                eprintln!(
                    "Device too small: expecting meta data block at\nbyte offset {off}, but {name} is only {size} bytes."
                );
                std::process::exit(10);
            }
        };
        Device {
            file,
            name: name.to_string(),
            size,
            index,
            md_offset,
        }
    }

    pub fn sectors(&self) -> u64 {
        self.size / 512
    }

    /// Backing size passed to layout computations: the device itself for
    /// internal meta-data, unknown (as large as the bitmap allows) otherwise.
    pub fn backing_sectors(&self) -> u64 {
        if self.index.is_external() {
            u64::MAX
        } else {
            self.sectors()
        }
    }

    pub fn read_at(&self, buf: &mut [u8], off: u64) {
        if let Err(e) = self.file.read_exact_at(buf, off) {
            eprintln!(
                "pread({}, ..., {}, {off}) failed: {e}",
                self.name,
                buf.len()
            );
            std::process::exit(10);
        }
    }

    pub fn write_at(&self, buf: &[u8], off: u64) {
        if let Err(e) = self.file.write_all_at(buf, off) {
            eprintln!(
                "pwrite({}, ..., {}, {off}) failed: {e}",
                self.name,
                buf.len()
            );
            std::process::exit(10);
        }
    }

    /// Write `len` zero bytes at `off`, in chunks.
    pub fn zero_at(&self, off: u64, len: u64) {
        let chunk = vec![0u8; 1 << 20];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(chunk.len() as u64) as usize;
            self.write_at(&chunk[..n], off + done);
            done += n as u64;
        }
    }

    pub fn sync(&self) {
        let _ = self.file.sync_all();
    }

    pub fn read_block(&self, off: u64) -> [u8; MD_BLOCK_SIZE] {
        let mut b = [0u8; MD_BLOCK_SIZE];
        self.read_at(&mut b, off);
        b
    }

    /// Look for valid v09 meta-data at the expected place.
    pub fn find(&self) -> Result<Found, MetaError> {
        let block = self.read_block(self.md_offset);
        let sb = Superblock::decode(&block)?;
        self.validate(sb)
    }

    /// drbdmeta's notion of "valid": decodable, sane ranges, offsets that
    /// match the device. An effective size larger than the bitmap can hold
    /// is clipped rather than rejected.
    pub fn validate(&self, sb: Superblock) -> Result<Found, MetaError> {
        let layout = sb.layout(self.index, self.backing_sectors(), self.sectors())?;
        match sb.check(&layout) {
            Ok(()) | Err(MetaError::BitmapTooSmall) => {}
            Err(e) => return Err(e),
        }
        let effective_size = sb.effective_size.min(layout.data_sectors);
        let bm_bytes = meta::bm_bytes(effective_size, sb.bm_max_peers, sb.bm_bytes_per_bit)?;
        Ok(Found {
            sb,
            layout,
            effective_size,
            bm_bytes,
        })
    }

    pub fn write_superblock(&self, sb: &Superblock) {
        let mut b = [0u8; MD_BLOCK_SIZE];
        sb.encode(&mut b);
        self.write_at(&b, self.md_offset);
    }

    /// Byte offset of a layout's AL area.
    pub fn al_byte_offset(&self, l: &MdLayout) -> u64 {
        l.al_start_sector() * 512
    }

    /// Byte offset of a layout's bitmap area.
    pub fn bm_byte_offset(&self, l: &MdLayout) -> u64 {
        l.bm_start_sector() * 512
    }
}

/// Read one line from stdin (for confirmations).
pub fn read_line() -> Option<String> {
    let mut s = String::new();
    let mut byte = [0u8; 1];
    let mut stdin = std::io::stdin();
    loop {
        match stdin.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => {
                s.push(byte[0] as char);
                if byte[0] == b'\n' {
                    break;
                }
            }
            Err(_) => return None,
        }
    }
    Some(s)
}

/// Flush stdout so that output interleaves with stderr like the C tool's.
pub fn flush() {
    let _ = std::io::stdout().flush();
}
