//! WAV reading on the fixture files, writing round trips, and malformed input.

use super::*;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/audio")
        .join(name)
}

/// A header for `tag`/`channels`/`rate`/`bits` followed by `data`.
fn build(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let align = channels * bits / 8;
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&tag.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * align as u32).to_le_bytes());
    v.extend_from_slice(&align.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn reads_ulaw_fixture_with_fact_chunk() {
    let wav = read_wav(&fixture("speech_slt.wav")).unwrap();
    assert_eq!(wav.encoding, Encoding::Ulaw);
    assert_eq!((wav.sample_rate, wav.channels), (8000, 1));
    // The file is ~18 s of audio: a data chunk of one byte per sample.
    let bytes = std::fs::metadata(fixture("speech_slt.wav")).unwrap().len();
    assert!(wav.samples.len() as u64 > bytes - 100);
    let peak = wav.samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak > 10_000, "speech should be loud, peak {peak}");
    let at16k = wav.to_16k().unwrap();
    assert_eq!(at16k.len(), wav.samples.len() * 2);
}

#[test]
fn reads_alaw_and_stereo_22k_fixtures() {
    let alaw = read_wav(&fixture("speech_slt_alaw.wav")).unwrap();
    assert_eq!(alaw.encoding, Encoding::Alaw);
    assert_eq!(alaw.samples.len(), 16_000);
    let stereo = read_wav(&fixture("speech_slt_22k_stereo.wav")).unwrap();
    assert_eq!(stereo.encoding, Encoding::Pcm16);
    assert_eq!((stereo.sample_rate, stereo.channels), (22_050, 2));
    let mono16k = read_wav_16k(&fixture("speech_slt_22k_stereo.wav")).unwrap();
    assert_eq!(mono16k.len(), 16_000);
}

#[test]
fn write_then_read_round_trips() {
    let samples: Vec<i16> = (0..1000)
        .map(|i| ((i * 37) % 65_536 - 32_768) as i16)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.wav");
    write_wav(&path, &samples, 16_000).unwrap();
    let back = read_wav(&path).unwrap();
    assert_eq!(back.samples, samples);
    assert_eq!((back.sample_rate, back.channels), (16_000, 1));
    assert_eq!(back.encoding, Encoding::Pcm16);
    assert_eq!(read_wav_16k(&path).unwrap(), samples);
}

#[test]
fn decodes_every_supported_encoding() {
    let pcm8 = parse_wav(&build(1, 1, 8000, 8, &[0, 128, 255])).unwrap();
    assert_eq!(pcm8.samples, vec![-32768, 0, 32512]);
    let pcm24 = parse_wav(&build(1, 1, 8000, 24, &[0xFF, 0x34, 0x12])).unwrap();
    assert_eq!(pcm24.samples, vec![0x1234]);
    let pcm32 = parse_wav(&build(1, 1, 8000, 32, &[9, 9, 0xCC, 0xED])).unwrap();
    assert_eq!(pcm32.samples, vec![i16::from_le_bytes([0xCC, 0xED])]);
    let mut floats = Vec::new();
    for f in [0.5f32, -1.0, 2.0, f32::NAN] {
        floats.extend_from_slice(&f.to_le_bytes());
    }
    let float = parse_wav(&build(3, 1, 8000, 32, &floats)).unwrap();
    assert_eq!(float.samples, vec![16_384, -32_768, 32_767, 0]);
    let ulaw = parse_wav(&build(7, 1, 8000, 8, &[0x00, 0xFF, 0x80])).unwrap();
    assert_eq!(ulaw.samples, vec![-32124, 0, 32124]);
    let alaw = parse_wav(&build(6, 1, 8000, 8, &[0xAA, 0x55])).unwrap();
    assert_eq!(alaw.samples, vec![32256, -8]);
}

#[test]
fn stereo_is_averaged_to_mono() {
    let mut data = Vec::new();
    for (l, r) in [(1000i16, 3000i16), (-4000, 4000), (i16::MAX, i16::MAX)] {
        data.extend_from_slice(&l.to_le_bytes());
        data.extend_from_slice(&r.to_le_bytes());
    }
    let wav = parse_wav(&build(1, 2, 16_000, 16, &data)).unwrap();
    assert_eq!(wav.samples, vec![2000, 0, i16::MAX]);
}

#[test]
fn extensible_format_uses_the_subformat_tag() {
    let mut v = build(1, 1, 8000, 8, &[0xFF, 0x00]);
    // Rewrite the fmt chunk as 40-byte WAVE_FORMAT_EXTENSIBLE with μ-law inside.
    let mut ext = Vec::new();
    ext.extend_from_slice(&v[20..36]);
    ext[0..2].copy_from_slice(&0xFFFEu16.to_le_bytes());
    ext.extend_from_slice(&22u16.to_le_bytes()); // cbSize
    ext.extend_from_slice(&8u16.to_le_bytes()); // valid bits
    ext.extend_from_slice(&4u32.to_le_bytes()); // channel mask
    ext.extend_from_slice(&7u16.to_le_bytes()); // sub-format starts with the tag
    ext.extend_from_slice(&[0; 14]);
    let mut file = v[..12].to_vec();
    file.extend_from_slice(b"fmt ");
    file.extend_from_slice(&(ext.len() as u32).to_le_bytes());
    file.extend_from_slice(&ext);
    file.extend_from_slice(&v.split_off(36));
    let wav = parse_wav(&file).unwrap();
    assert_eq!(wav.encoding, Encoding::Ulaw);
    assert_eq!(wav.samples, vec![0, -32124]);
}

#[test]
fn unknown_chunks_are_skipped_with_padding() {
    let v = build(1, 1, 8000, 16, &[1, 0]);
    let mut file = v[..12].to_vec();
    file.extend_from_slice(b"LIST");
    file.extend_from_slice(&3u32.to_le_bytes());
    file.extend_from_slice(&[1, 2, 3, 0]); // odd size, one pad byte
    file.extend_from_slice(&v[12..]);
    assert_eq!(parse_wav(&file).unwrap().samples, vec![1]);
}

#[test]
fn truncated_data_keeps_whole_sample_frames() {
    let mut v = build(1, 2, 8000, 16, &[1, 0, 2, 0, 3, 0, 4, 0]);
    v.truncate(v.len() - 3);
    assert_eq!(parse_wav(&v).unwrap().samples, vec![1]);
    // Streamed files declare the largest size.
    let mut s = build(1, 1, 8000, 16, &[7, 0]);
    let n = s.len();
    s[n - 6..n - 2].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(parse_wav(&s).unwrap().samples, vec![7]);
}

#[test]
fn malformed_files_give_specific_errors() {
    assert!(matches!(parse_wav(b""), Err(WavError::NotWave)));
    assert!(matches!(
        parse_wav(b"RIFF\0\0\0\0WAVX"),
        Err(WavError::NotWave)
    ));
    assert!(matches!(
        parse_wav(b"RIFF\0\0\0\0WAVE"),
        Err(WavError::MissingData)
    ));
    let only_data = [b"RIFF\0\0\0\0WAVEdata".as_slice(), &[2, 0, 0, 0, 1, 0]].concat();
    assert!(matches!(
        parse_wav(&only_data),
        Err(WavError::MissingFormat)
    ));
    let adpcm = build(2, 1, 8000, 4, &[0; 4]);
    assert!(matches!(
        parse_wav(&adpcm),
        Err(WavError::Unsupported { tag: 2, bits: 4 })
    ));
    let no_channels = build(1, 0, 8000, 16, &[]);
    assert!(matches!(
        parse_wav(&no_channels),
        Err(WavError::BadChannels(0))
    ));
    let zero_rate = build(1, 1, 0, 16, &[0, 0]);
    assert!(matches!(parse_wav(&zero_rate), Err(WavError::Rate(_))));
    let mut bad_align = build(1, 1, 8000, 16, &[0, 0]);
    bad_align[32] = 3;
    assert!(matches!(
        parse_wav(&bad_align),
        Err(WavError::BadBlockAlign { .. })
    ));
    let mut short_fmt = build(1, 1, 8000, 16, &[0, 0]);
    short_fmt[16] = 8;
    assert!(parse_wav(&short_fmt).is_err());
    let missing = read_wav(Path::new("/nonexistent/x.wav")).unwrap_err();
    assert!(missing.to_string().contains("/nonexistent/x.wav"));
}

#[test]
fn every_prefix_and_byte_corruption_is_handled_without_panic() {
    let good = std::fs::read(fixture("speech_slt_alaw.wav")).unwrap();
    let head = &good[..200];
    for n in 0..head.len() {
        let _ = parse_wav(&head[..n]);
    }
    for i in 0..60 {
        for val in [0x00, 0x01, 0x7F, 0x80, 0xFF] {
            let mut v = head.to_vec();
            v[i] = val;
            let _ = parse_wav(&v);
        }
    }
}
