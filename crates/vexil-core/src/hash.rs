//! MurmurHash3 x86_32 and the bucketing formula of docs/evaluation.md. The hash is fed in pieces so
//! that `"{salt}.{value}"` is never concatenated on the heap.

/// Number of buckets: weights are thousandths of a percent, so 100000 = 100 %.
pub const BUCKETS: u32 = 100_000;

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// Incremental MurmurHash3 x86_32. Feeding `a` then `b` gives the hash of `a ‖ b`.
#[derive(Debug, Clone)]
pub struct Murmur3 {
    h: u32,
    tail: [u8; 4],
    tail_len: usize,
    total: u32,
}

impl Murmur3 {
    pub fn new(seed: u32) -> Self {
        Murmur3 {
            h: seed,
            tail: [0; 4],
            tail_len: 0,
            total: 0,
        }
    }

    #[inline]
    fn block(&mut self, k: u32) {
        let k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        self.h ^= k;
        self.h = self
            .h
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }

    pub fn write(&mut self, mut bytes: &[u8]) {
        // The length is mixed in modulo 2^32, as the reference implementation does.
        self.total = self.total.wrapping_add(bytes.len() as u32);
        if self.tail_len > 0 {
            let take = (4 - self.tail_len).min(bytes.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&bytes[..take]);
            self.tail_len += take;
            bytes = &bytes[take..];
            if self.tail_len < 4 {
                return;
            }
            let k = u32::from_le_bytes(self.tail);
            self.block(k);
            self.tail_len = 0;
        }
        let mut chunks = bytes.chunks_exact(4);
        for c in &mut chunks {
            self.block(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        }
        let rest = chunks.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    pub fn finish(&self) -> u32 {
        let mut h = self.h;
        if self.tail_len > 0 {
            let mut k: u32 = 0;
            for i in (0..self.tail_len).rev() {
                k = (k << 8) | u32::from(self.tail[i]);
            }
            h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        }
        h ^= self.total;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^= h >> 16;
        h
    }
}

/// MurmurHash3 x86_32 of `bytes` with `seed`.
pub fn murmur3_x86_32(bytes: &[u8], seed: u32) -> u32 {
    let mut m = Murmur3::new(seed);
    m.write(bytes);
    m.finish()
}

/// Maps a 32-bit hash onto `[0, 100000)`.
#[inline]
pub fn bucket_of_hash(hash: u32) -> u32 {
    ((u64::from(hash) * u64::from(BUCKETS)) >> 32) as u32
}

/// The bucket of `value` under `salt`: `murmur3("{salt}.{value}") * 100000 >> 32`.
pub fn bucket(salt: &str, value: &str) -> u32 {
    let mut m = Murmur3::new(0);
    m.write(salt.as_bytes());
    m.write(b".");
    m.write(value.as_bytes());
    bucket_of_hash(m.finish())
}

/// Formats an integer in decimal into a stack buffer, returning the used bytes.
pub(crate) fn format_int(buf: &mut [u8; 20], negative: bool, mut magnitude: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    if negative {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        // Published MurmurHash3_x86_32 test values.
        assert_eq!(murmur3_x86_32(b"", 0), 0);
        assert_eq!(murmur3_x86_32(b"", 1), 0x514E_28B7);
        assert_eq!(murmur3_x86_32(b"", 0xffff_ffff), 0x81F1_6F39);
        assert_eq!(murmur3_x86_32(b"\0\0\0\0", 0), 0x2362_F9DE);
        assert_eq!(murmur3_x86_32(b"aaaa", 0x9747_b28c), 0x5A97_808A);
        assert_eq!(murmur3_x86_32(b"abc", 0), 0xB3DD_93FA);
        assert_eq!(murmur3_x86_32(b"Hello, world!", 0x9747_b28c), 0x2488_4CBA);
        assert_eq!(
            murmur3_x86_32(b"The quick brown fox jumps over the lazy dog", 0x9747_b28c),
            0x2FA8_26CD
        );
    }

    #[test]
    fn pieces_equal_whole() {
        let whole = b"flag-key.user-123456789";
        for split_a in 0..whole.len() {
            for split_b in split_a..whole.len() {
                let mut m = Murmur3::new(0);
                m.write(&whole[..split_a]);
                m.write(&whole[split_a..split_b]);
                m.write(&whole[split_b..]);
                assert_eq!(m.finish(), murmur3_x86_32(whole, 0));
            }
        }
    }

    #[test]
    fn int_formatting() {
        let mut buf = [0u8; 20];
        assert_eq!(format_int(&mut buf, false, 0), b"0");
        assert_eq!(format_int(&mut buf, true, 42), b"-42");
        assert_eq!(
            format_int(&mut buf, false, u64::MAX),
            b"18446744073709551615"
        );
        assert_eq!(
            format_int(&mut buf, true, 1u64 << 63),
            b"-9223372036854775808"
        );
    }
}
