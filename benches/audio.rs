//! Per-frame costs of the audio hot path: μ-law decode, 8k→16k resampling,
//! 16k→8k resampling, 24k→16k resampling (cloud speech), VAD. One 20 ms
//! frame per iteration; a frame's budget in real time is 20 ms.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use switchboard::audio::g711::{ulaw_decode_into, ulaw_encode_into};
use switchboard::audio::rational::Resampler24kTo16k;
use switchboard::audio::resample::{Downsampler, Upsampler, NARROW_FRAME_SAMPLES};
use switchboard::audio::vad::{Vad, VadConfig};
use switchboard::audio::{Frame, FRAME_SAMPLES};

fn speechlike_frame() -> Frame {
    let mut f = Frame::SILENCE;
    for (i, s) in f.0.iter_mut().enumerate() {
        let t = i as f32 / 16_000.0;
        let v = (2.0 * std::f32::consts::PI * 220.0 * t).sin()
            + 0.5 * (2.0 * std::f32::consts::PI * 1100.0 * t).sin();
        *s = (v * 8000.0) as i16;
    }
    f
}

fn bench(c: &mut Criterion) {
    let frame = speechlike_frame();
    let mut narrow = [0i16; NARROW_FRAME_SAMPLES];
    narrow.copy_from_slice(&frame.0[..NARROW_FRAME_SAMPLES]);
    let mut ulaw = [0u8; NARROW_FRAME_SAMPLES];
    ulaw_encode_into(&narrow, &mut ulaw);

    c.bench_function("ulaw_decode_160", |b| {
        let mut out = [0i16; NARROW_FRAME_SAMPLES];
        b.iter(|| ulaw_decode_into(black_box(&ulaw), &mut out))
    });
    c.bench_function("ulaw_encode_160", |b| {
        let mut out = [0u8; NARROW_FRAME_SAMPLES];
        b.iter(|| ulaw_encode_into(black_box(&narrow), &mut out))
    });
    c.bench_function("upsample_8k_to_16k_frame", |b| {
        let mut up = Upsampler::new();
        let mut out = [0i16; FRAME_SAMPLES];
        b.iter(|| up.process_into(black_box(&narrow), &mut out))
    });
    c.bench_function("downsample_16k_to_8k_frame", |b| {
        let mut down = Downsampler::new();
        let mut out = [0i16; NARROW_FRAME_SAMPLES];
        b.iter(|| down.process_into(black_box(&frame.0), &mut out))
    });
    // 20 ms at 24 kHz is 480 samples in, one 320-sample frame out.
    let wide: Vec<i16> = (0..480).map(|i| frame.0[i % FRAME_SAMPLES]).collect();
    c.bench_function("resample_24k_to_16k_frame", |b| {
        let mut r = Resampler24kTo16k::new();
        let mut out = Vec::with_capacity(FRAME_SAMPLES);
        b.iter(|| {
            out.clear();
            r.process(black_box(&wide), &mut out);
        })
    });
    c.bench_function("vad_frame", |b| {
        let mut vad = Vad::new(VadConfig::default());
        b.iter(|| vad.push(black_box(&frame)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
