//! A voice message: the caller's audio from the moment the core asked for
//! it, written as a WAV file under the recordings directory when the call
//! ends (whatever ends it).

use std::path::{Path, PathBuf};

use crate::audio::{Frame, SAMPLE_RATE};

/// The longest message kept (3 minutes); the core ends messages sooner.
const MAX_SAMPLES: usize = SAMPLE_RATE as usize * 180;

#[derive(Debug, Default)]
pub(super) struct MessageRecorder {
    samples: Vec<i16>,
}

impl MessageRecorder {
    pub fn push(&mut self, frame: &Frame) {
        if self.samples.len() < MAX_SAMPLES {
            self.samples.extend_from_slice(frame.samples());
        }
    }

    /// Writes `call-{id}.wav` under `dir` (created if missing) and returns
    /// the file name relative to `dir`.
    pub fn save(&self, dir: &Path, call_id: i64) -> std::io::Result<String> {
        std::fs::create_dir_all(dir)?;
        let name = format!("call-{call_id}.wav");
        let path: PathBuf = dir.join(&name);
        crate::audio::wav::write_wav(&path, &self.samples, SAMPLE_RATE)?;
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_what_it_heard_as_a_readable_wav() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = MessageRecorder::default();
        let mut f = Frame::SILENCE;
        f.0[0] = 1234;
        for _ in 0..50 {
            r.push(&f);
        }
        let name = r.save(&dir.path().join("rec"), 7).unwrap();
        assert_eq!(name, "call-7.wav");
        let pcm = crate::audio::wav::read_wav_16k(&dir.path().join("rec").join(&name)).unwrap();
        assert_eq!(pcm.len(), 50 * 320);
        assert_eq!(pcm[320], 1234);
    }
}
