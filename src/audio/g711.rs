//! ITU-T G.711 companding: μ-law (PCMU) and A-law (PCMA) to and from 16-bit
//! linear PCM. Owns only the per-sample codec and slice helpers that write into
//! caller buffers; sample-rate conversion lives in `resample`.
//!
//! Encoders take the full 16-bit range and quantise it the way G.711 does
//! (μ-law on 14 bits, A-law on 13 bits, scaled up to 16 bits on decode).
//! Decoding is a table lookup; nothing here allocates.

/// Added to the μ-law magnitude so every segment starts on a power of two.
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude μ-law can represent once the bias is added.
const ULAW_CLIP: i32 = 32_635;

/// Linear value of every μ-law code, built at compile time.
static ULAW_TABLE: [i16; 256] = build_ulaw_table();
/// Linear value of every A-law code, built at compile time.
static ALAW_TABLE: [i16; 256] = build_alaw_table();

const fn ulaw_decode_calc(code: u8) -> i16 {
    let u = !code;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_decode_calc(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mantissa = ((a & 0x0F) as i32) << 4;
    let segment = ((a >> 4) & 0x07) as i32;
    let magnitude = match segment {
        0 => mantissa + 8,
        _ => (mantissa + 0x108) << (segment - 1),
    };
    // A-law's sign bit set means positive.
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn build_ulaw_table() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_decode_calc(i as u8);
        i += 1;
    }
    t
}

const fn build_alaw_table() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_decode_calc(i as u8);
        i += 1;
    }
    t
}

/// Encodes one linear sample as μ-law.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    let s = sample as i32;
    let sign: u8 = if s < 0 { 0x80 } else { 0 };
    // Widened to i32 so that -32768 has a magnitude.
    let magnitude = s.abs().min(ULAW_CLIP) + ULAW_BIAS;
    // The bias puts the top bit somewhere in bits 7..=14: that is the segment.
    let exponent = (31 - magnitude.leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = ((magnitude >> (exponent + 3)) & 0x0F) as u8;
    !(sign | ((exponent as u8) << 4) | mantissa)
}

/// Decodes one μ-law code to linear PCM16.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_TABLE[code as usize]
}

/// Encodes one linear sample as A-law.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    // A-law works on 13 bits.
    let s = (sample as i32) >> 3;
    let (mask, magnitude) = if s >= 0 {
        (0xD5u8, s)
    } else {
        (0x55u8, -s - 1)
    };
    // Segment 0 covers 0..32, then each segment doubles.
    let segment = if magnitude < 32 {
        0
    } else {
        31 - magnitude.leading_zeros() as i32 - 4
    };
    if segment >= 8 {
        return 0x7F ^ mask;
    }
    let shift = if segment < 2 { 1 } else { segment };
    let quant = ((magnitude >> shift) & 0x0F) as u8;
    (((segment as u8) << 4) | quant) ^ mask
}

/// Decodes one A-law code to linear PCM16.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_TABLE[code as usize]
}

/// Encodes `src` into `dst` as μ-law; converts `min(src.len(), dst.len())`
/// samples and returns that count.
#[inline]
pub fn ulaw_encode_into(src: &[i16], dst: &mut [u8]) -> usize {
    let n = src.len().min(dst.len());
    for (d, s) in dst[..n].iter_mut().zip(&src[..n]) {
        *d = ulaw_encode(*s);
    }
    n
}

/// Decodes μ-law `src` into `dst`; converts `min(src.len(), dst.len())`
/// samples and returns that count.
#[inline]
pub fn ulaw_decode_into(src: &[u8], dst: &mut [i16]) -> usize {
    let n = src.len().min(dst.len());
    for (d, s) in dst[..n].iter_mut().zip(&src[..n]) {
        *d = ulaw_decode(*s);
    }
    n
}

/// Encodes `src` into `dst` as A-law; converts `min(src.len(), dst.len())`
/// samples and returns that count.
#[inline]
pub fn alaw_encode_into(src: &[i16], dst: &mut [u8]) -> usize {
    let n = src.len().min(dst.len());
    for (d, s) in dst[..n].iter_mut().zip(&src[..n]) {
        *d = alaw_encode(*s);
    }
    n
}

/// Decodes A-law `src` into `dst`; converts `min(src.len(), dst.len())`
/// samples and returns that count.
#[inline]
pub fn alaw_decode_into(src: &[u8], dst: &mut [i16]) -> usize {
    let n = src.len().min(dst.len());
    for (d, s) in dst[..n].iter_mut().zip(&src[..n]) {
        *d = alaw_decode(*s);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values below were produced independently of this code with
    // sox's G.711 codec (see fixtures/audio/README.md), 16-bit scale.

    /// (code, linear) pairs of the μ-law decoding table.
    #[rustfmt::skip]
    const ULAW_REFERENCE: &[(u8, i16)] = &[
        (0x00, -32124), (0x01, -31100), (0x0F, -16764), (0x10, -15996),
        (0x1F, -8316), (0x20, -7932), (0x3F, -1980), (0x40, -1884),
        (0x5F, -396), (0x60, -372), (0x6F, -132), (0x70, -120),
        (0x7E, -8), (0x7F, 0), (0x80, 32124), (0x8F, 16764),
        (0xC0, 1884), (0xEF, 132), (0xF0, 120), (0xFE, 8), (0xFF, 0),
    ];

    /// (code, linear) pairs of the A-law decoding table.
    #[rustfmt::skip]
    const ALAW_REFERENCE: &[(u8, i16)] = &[
        (0x55, -8), (0xD5, 8), (0x54, -24), (0xD4, 24),
        (0x2A, -32256), (0xAA, 32256), (0x45, -264), (0x75, -528),
        (0xF5, 528), (0x65, -1056), (0x15, -2112), (0x95, 2112),
        (0x25, -16896), (0x00, -5504), (0x80, 5504), (0x7F, -848), (0xFF, 848),
    ];

    /// (linear, μ-law, A-law) encodings away from decision boundaries, where
    /// implementations that round differently still agree.
    #[rustfmt::skip]
    const ENCODE_REFERENCE: &[(i16, u8, u8)] = &[
        (100, 0xF2, 0xD3), (-150, 0x6E, 0x5C), (1000, 0xCE, 0xFA),
        (-1000, 0x4E, 0x7A), (5000, 0xAB, 0x86), (-5000, 0x2B, 0x06),
        (12345, 0x97, 0xBD), (-12345, 0x17, 0x3D), (32767, 0x80, 0xAA),
        (-32768, 0x00, 0x2A),
    ];

    #[test]
    fn encode_matches_reference_values() {
        for &(linear, u, a) in ENCODE_REFERENCE {
            assert_eq!(ulaw_encode(linear), u, "μ-law of {linear}");
            assert_eq!(alaw_encode(linear), a, "A-law of {linear}");
        }
    }

    #[test]
    fn ulaw_decode_matches_reference_table() {
        for &(code, linear) in ULAW_REFERENCE {
            assert_eq!(ulaw_decode(code), linear, "code {code:#04x}");
        }
    }

    #[test]
    fn alaw_decode_matches_reference_table() {
        for &(code, linear) in ALAW_REFERENCE {
            assert_eq!(alaw_decode(code), linear, "code {code:#04x}");
        }
    }

    #[test]
    fn ulaw_encode_min_max_zero() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_encode(32124), 0x80);
        assert_eq!(ulaw_encode(-32124), 0x00);
    }

    #[test]
    fn alaw_encode_min_max_zero() {
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn ulaw_round_trip_every_code() {
        for code in 0..=255u8 {
            let x = ulaw_decode(code);
            assert_eq!(ulaw_decode(ulaw_encode(x)), x, "code {code:#04x}");
        }
        // Every code except negative zero (0x7F) is its own re-encoding.
        for code in (0..=255u8).filter(|&c| c != 0x7F) {
            assert_eq!(ulaw_encode(ulaw_decode(code)), code);
        }
    }

    #[test]
    fn alaw_round_trip_every_code() {
        for code in 0..=255u8 {
            let x = alaw_decode(code);
            assert_eq!(alaw_decode(alaw_encode(x)), x, "code {code:#04x}");
            assert_eq!(alaw_encode(x), code, "A-law has no duplicate codes");
        }
    }

    #[test]
    fn ulaw_encode_is_monotonic_and_error_bounded() {
        let mut last = ulaw_decode(ulaw_encode(i16::MIN));
        for s in i16::MIN..=i16::MAX {
            let y = ulaw_decode(ulaw_encode(s));
            assert!(y >= last, "not monotonic at {s}");
            last = y;
            // Quantisation error stays within half the step of the top segment.
            let err = (y as i32 - s.clamp(-32124, 32124) as i32).abs();
            let step = if s.unsigned_abs() < 1000 { 64 } else { 1100 };
            assert!(err <= step, "error {err} at {s}");
        }
    }

    #[test]
    fn alaw_encode_is_monotonic_and_error_bounded() {
        let mut last = alaw_decode(alaw_encode(i16::MIN));
        for s in i16::MIN..=i16::MAX {
            let y = alaw_decode(alaw_encode(s));
            assert!(y >= last, "not monotonic at {s}");
            last = y;
            let err = (y as i32 - s as i32).abs();
            let step = if s.unsigned_abs() < 1000 { 32 } else { 1100 };
            assert!(err <= step, "error {err} at {s}");
        }
    }

    #[test]
    fn slice_helpers_convert_the_common_length() {
        let pcm: Vec<i16> = (0..10).map(|i| (i * 3000 - 15000) as i16).collect();
        let mut codes = [0u8; 8];
        assert_eq!(ulaw_encode_into(&pcm, &mut codes), 8);
        let mut back = [0i16; 12];
        assert_eq!(ulaw_decode_into(&codes, &mut back), 8);
        for i in 0..8 {
            assert_eq!(back[i], ulaw_decode(ulaw_encode(pcm[i])));
        }
        assert_eq!(back[8..], [0; 4]);
        assert_eq!(alaw_encode_into(&pcm, &mut codes), 8);
        assert_eq!(alaw_decode_into(&codes, &mut back), 8);
        for i in 0..8 {
            assert_eq!(back[i], alaw_decode(alaw_encode(pcm[i])));
        }
    }
}
