//! RBSP extraction and bit-level reading of H.264 syntax (ITU-T H.264 §7.2, §7.4.1, Exp-Golomb
//! §9.1), used by SPS parsing for stream info and the HLS tap's `avcC`. Pure.

use super::error::H264Error;

/// Reads bits most-significant first from an RBSP (emulation prevention already removed).
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader positioned at the first bit of `data`.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// `u(1)`: one bit.
    pub(crate) fn bit(&mut self) -> Result<bool, H264Error> {
        let byte = self.data.get(self.pos / 8).ok_or(H264Error::Truncated)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// `u(n)` for `n <= 32`.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, H264Error> {
        let mut value = 0u32;
        for _ in 0..n.min(32) {
            value = (value << 1) | u32::from(self.bit()?);
        }
        Ok(value)
    }

    /// `ue(v)`: unsigned Exp-Golomb (§9.1), at most 32 bits of value.
    pub(crate) fn ue(&mut self) -> Result<u32, H264Error> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(H264Error::ExpGolombOverflow);
            }
        }
        let suffix = u64::from(self.bits(zeros)?);
        let value = (1u64 << zeros) - 1 + suffix;
        u32::try_from(value).map_err(|_| H264Error::ExpGolombOverflow)
    }

    /// `se(v)`: signed Exp-Golomb (§9.1.1): 1, 2, 3, 4 ... map to 1, -1, 2, -2 ...
    pub(crate) fn se(&mut self) -> Result<i32, H264Error> {
        let k = i64::from(self.ue()?);
        let value = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(value).map_err(|_| H264Error::ExpGolombOverflow)
    }
}

/// Remove `emulation_prevention_three_byte`s: every 0x03 after two zero bytes (§7.4.1).
pub(crate) fn remove_emulation_prevention(ebsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ebsp.len());
    let mut zeros = 0;
    for &byte in ebsp {
        if zeros >= 2 && byte == 0x03 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fixed_bits_msb_first() {
        let mut r = BitReader::new(&[0b1010_0000, 0xff]);
        assert!(r.bit().expect("bit"));
        assert!(!r.bit().expect("bit"));
        assert_eq!(r.bits(4).expect("bits"), 0b1000);
        assert_eq!(r.bits(6).expect("bits"), 0b00_1111);
        assert_eq!(r.bits(4).expect("bits"), 0b1111);
        assert_eq!(r.bit(), Err(H264Error::Truncated));
    }

    #[test]
    fn exp_golomb_codes() {
        // 1 | 010 | 011 | 00100 | 00101 | 0001000 => 0, 1, 2, 3, 4, 7
        let data = [0b1010_0110, 0b0100_0010, 0b1000_1000];
        let mut r = BitReader::new(&data);
        let got: Vec<u32> = (0..6).map(|_| r.ue().expect("ue")).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4, 7]);
        let mut r = BitReader::new(&data);
        let got: Vec<i32> = (0..6).map(|_| r.se().expect("se")).collect();
        assert_eq!(got, vec![0, 1, -1, 2, -2, 4]);
    }

    #[test]
    fn largest_and_too_long_codes() {
        // 31 zeros, the marker, 31 ones: 2^31 - 1 + 2^31 - 1 = u32::MAX - 1. 32 zeros: too long.
        let mut max = vec![0u8; 4];
        max[3] = 0x01; // 31 zeros then the marker bit
        max.extend_from_slice(&[0xff, 0xff, 0xff, 0xfe]); // 31 ones of suffix then a zero
        assert_eq!(BitReader::new(&max).ue(), Ok(u32::MAX - 1));
        let too_long = [0u8, 0, 0, 0, 0x80];
        assert_eq!(
            BitReader::new(&too_long).ue(),
            Err(H264Error::ExpGolombOverflow)
        );
        assert_eq!(BitReader::new(&[0x00]).ue(), Err(H264Error::Truncated));
        assert_eq!(BitReader::new(&[]).ue(), Err(H264Error::Truncated));
    }

    #[test]
    fn removes_emulation_prevention_only_after_two_zeros() {
        assert_eq!(remove_emulation_prevention(&[0, 0, 3, 1]), vec![0, 0, 1]);
        assert_eq!(
            remove_emulation_prevention(&[0, 0, 3, 0, 0, 3]),
            vec![0, 0, 0, 0]
        );
        assert_eq!(remove_emulation_prevention(&[0, 3, 0, 3]), vec![0, 3, 0, 3]);
        assert_eq!(remove_emulation_prevention(&[0, 0, 0, 3]), vec![0, 0, 0]);
    }
}
