//! The per-frame audio paths allocate nothing: a counting global allocator
//! watches this thread while frames go through the codecs, both resamplers,
//! the VAD and the DTMF detector.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use switchboard::audio::dtmf::DtmfDetector;
use switchboard::audio::g711::{
    alaw_decode_into, alaw_encode_into, ulaw_decode_into, ulaw_encode_into,
};
use switchboard::audio::resample::{Downsampler, Upsampler, NARROW_FRAME_SAMPLES};
use switchboard::audio::vad::{Vad, VadConfig};
use switchboard::audio::{Frame, FRAME_SAMPLES};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// only addition is a counter bump, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHING.with(|w| w.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHING.with(|w| w.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    WATCHING.with(|w| w.set(true));
    f();
    WATCHING.with(|w| w.set(false));
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
fn per_frame_paths_do_not_allocate() {
    let mut up = Upsampler::new();
    let mut down = Downsampler::new();
    let mut vad = Vad::new(VadConfig::default());
    let mut dtmf = DtmfDetector::new();
    let mut wide = Frame::SILENCE;
    let mut narrow = [0i16; NARROW_FRAME_SAMPLES];
    let mut codes = [0u8; NARROW_FRAME_SAMPLES];
    // A changing signal so every branch (speech start/end, digits) is exercised.
    let mut input = Frame::SILENCE;
    let mut speech_seen = false;
    let count = allocations_in(|| {
        for n in 0..200usize {
            for (i, s) in input.0.iter_mut().enumerate() {
                let t = (n * FRAME_SAMPLES + i) as f32 / 16_000.0;
                let on = (n / 50) % 2 == 0;
                let v = (2.0 * std::f32::consts::PI * 220.0 * t).sin()
                    + 0.6 * (2.0 * std::f32::consts::PI * 1336.0 * t).sin();
                *s = if on { (v * 9000.0) as i16 } else { 0 };
            }
            down.process_into(&input.0, &mut narrow);
            ulaw_encode_into(&narrow, &mut codes);
            ulaw_decode_into(&codes, &mut narrow);
            alaw_encode_into(&narrow, &mut codes);
            alaw_decode_into(&codes, &mut narrow);
            up.process_into(&narrow, &mut wide.0);
            speech_seen |= vad.push(&wide).speech;
            let _ = vad.pre_roll().count();
            let _ = dtmf.push(&wide);
        }
    });
    assert_eq!(count, 0, "allocations on the per-frame path");
    // The watcher itself works: a Vec counts.
    assert_eq!(allocations_in(|| drop(vec![0u8; 16])), 1);
    assert!(
        speech_seen,
        "the VAD went through speech, so its busy path ran"
    );
}
