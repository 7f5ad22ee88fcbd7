//! Writer of the ggml Whisper file whisper.cpp loads, from a parsed
//! CTranslate2 Whisper model. The file is: the ggml magic; eleven `i32`
//! hyper-parameters (vocabulary, audio ctx/state/heads/layers, text
//! ctx/state/heads/layers, mel bands, file type); the mel filter bank
//! (`i32` bands, `i32` bins, `f32` weights); the vocabulary (`i32` count, then
//! `u32` length + bytes per token); then every tensor as `i32` rank, `i32`
//! name length, `i32` type, the dimensions innermost first, the name and the
//! raw little-endian data. Matrices are f16; biases, norms, positional
//! embeddings and the conv biases (shaped `[1, n]`) are f32, as the loader
//! expects. CTranslate2 fuses Q/K/V (and cross-attention K/V) into one
//! matrix; this module splits them and drops the key bias Whisper lacks.

use std::collections::HashMap;
use std::io::Write;

use super::ct2::{Ct2Model, DType, Variable};
use super::{mel, ModelError};

const GGML_MAGIC: u32 = 0x6767_6d6c;
/// ggml's file type for "mostly f16" (whisper.cpp's `ftype` 1).
const FTYPE_F16: i32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    F32 = 0,
    F16 = 1,
}

/// Whisper's shape, read from the tensors themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: usize,
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
    pub n_mels: usize,
}

impl Hparams {
    pub fn from_model(m: &Ct2Model) -> Result<Hparams, ModelError> {
        let dims = |name: &str| m.get(name).map(|v| v.shape.clone());
        let heads = |name: &str| {
            m.get(name)?
                .as_int()
                .and_then(|h| usize::try_from(h).ok())
                .filter(|&h| h > 0)
                .ok_or_else(|| ModelError::format(format!("{name} is not a head count")))
        };
        let count_layers = |side: &str| {
            (0..)
                .take_while(|i| {
                    m.variables
                        .contains_key(&format!("{side}/layer_{i}/ffn/linear_0/weight"))
                })
                .count()
        };
        let (enc_pos, dec_pos) = (
            dims("encoder/position_encodings/encodings")?,
            dims("decoder/position_encodings/encodings")?,
        );
        let (emb, conv1) = (
            dims("decoder/embeddings/weight")?,
            dims("encoder/conv1/weight")?,
        );
        let two = |d: &[usize]| {
            if d.len() == 2 {
                Ok((d[0], d[1]))
            } else {
                Err(ModelError::format("expected a matrix"))
            }
        };
        let (n_audio_ctx, n_audio_state) = two(&enc_pos)?;
        let (n_text_ctx, n_text_state) = two(&dec_pos)?;
        let (n_vocab, emb_state) = two(&emb)?;
        let n_mels = *conv1
            .get(1)
            .ok_or_else(|| ModelError::format("conv1 is not 3-D"))?;
        let hp = Hparams {
            n_vocab,
            n_audio_ctx,
            n_audio_state,
            n_audio_head: heads("encoder/num_heads")?,
            n_audio_layer: count_layers("encoder"),
            n_text_ctx,
            n_text_state,
            n_text_head: heads("decoder/num_heads")?,
            n_text_layer: count_layers("decoder"),
            n_mels,
        };
        let consistent = emb_state == n_text_state
            && n_mels == mel::N_MELS
            && hp.n_audio_layer > 0
            && hp.n_text_layer > 0
            && n_audio_state % hp.n_audio_head == 0
            && n_text_state % hp.n_text_head == 0;
        if !consistent {
            return Err(ModelError::format(format!(
                "inconsistent Whisper shape {hp:?}"
            )));
        }
        Ok(hp)
    }

    fn as_i32s(&self) -> [usize; 10] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
        ]
    }
}

/// Writes the whole ggml file; returns the shape and the tensor count.
pub fn write<W: Write>(
    m: &Ct2Model,
    vocab: &[Vec<u8>],
    out: W,
) -> Result<(Hparams, usize), ModelError> {
    let hp = Hparams::from_model(m)?;
    let mut w = TensorWriter { out, tensors: 0 };
    w.u32(GGML_MAGIC)?;
    for v in hp.as_i32s() {
        w.i32(to_i32(v)?)?;
    }
    w.i32(FTYPE_F16)?;
    w.i32(to_i32(mel::N_MELS)?)?;
    w.i32(to_i32(mel::N_BINS)?)?;
    for x in mel::filter_bank() {
        w.bytes(&x.to_le_bytes())?;
    }
    w.i32(to_i32(vocab.len())?)?;
    for token in vocab {
        w.u32(u32::try_from(token.len()).map_err(|_| ModelError::format("token too long"))?)?;
        w.bytes(token)?;
    }
    write_encoder(&mut w, m, &hp)?;
    write_decoder(&mut w, m, &hp)?;
    w.out.flush().map_err(ModelError::write)?;
    Ok((hp, w.tensors))
}

fn write_encoder<W: Write>(
    w: &mut TensorWriter<W>,
    m: &Ct2Model,
    hp: &Hparams,
) -> Result<(), ModelError> {
    w.whole(
        m,
        "encoder.positional_embedding",
        "encoder/position_encodings/encodings",
        Out::F32,
    )?;
    for conv in ["conv1", "conv2"] {
        w.whole(
            m,
            &format!("encoder.{conv}.weight"),
            &format!("encoder/{conv}/weight"),
            Out::F16,
        )?;
        // The loader wants the conv bias as a [1, n] column.
        let bias = m.get(&format!("encoder/{conv}/bias"))?;
        w.tensor(
            &format!("encoder.{conv}.bias"),
            &[hp.n_audio_state, 1],
            Out::F32,
            bias,
            0..1,
            1,
        )?;
    }
    w.norm(m, "encoder.ln_post", "encoder/layer_norm")?;
    for i in 0..hp.n_audio_layer {
        let (g, c) = (format!("encoder.blocks.{i}"), format!("encoder/layer_{i}"));
        w.norm(
            m,
            &format!("{g}.attn_ln"),
            &format!("{c}/self_attention/layer_norm"),
        )?;
        w.fused(
            m,
            &[
                &format!("{g}.attn.query"),
                &format!("{g}.attn.key"),
                &format!("{g}.attn.value"),
            ],
            &format!("{c}/self_attention/linear_0"),
        )?;
        w.linear(
            m,
            &format!("{g}.attn.out"),
            &format!("{c}/self_attention/linear_1"),
        )?;
        w.mlp(m, &g, &c)?;
    }
    Ok(())
}

fn write_decoder<W: Write>(
    w: &mut TensorWriter<W>,
    m: &Ct2Model,
    hp: &Hparams,
) -> Result<(), ModelError> {
    w.whole(
        m,
        "decoder.positional_embedding",
        "decoder/position_encodings/encodings",
        Out::F32,
    )?;
    w.whole(
        m,
        "decoder.token_embedding.weight",
        "decoder/embeddings/weight",
        Out::F16,
    )?;
    w.norm(m, "decoder.ln", "decoder/layer_norm")?;
    for i in 0..hp.n_text_layer {
        let (g, c) = (format!("decoder.blocks.{i}"), format!("decoder/layer_{i}"));
        w.norm(
            m,
            &format!("{g}.attn_ln"),
            &format!("{c}/self_attention/layer_norm"),
        )?;
        w.fused(
            m,
            &[
                &format!("{g}.attn.query"),
                &format!("{g}.attn.key"),
                &format!("{g}.attn.value"),
            ],
            &format!("{c}/self_attention/linear_0"),
        )?;
        w.linear(
            m,
            &format!("{g}.attn.out"),
            &format!("{c}/self_attention/linear_1"),
        )?;
        w.norm(
            m,
            &format!("{g}.cross_attn_ln"),
            &format!("{c}/attention/layer_norm"),
        )?;
        w.linear(
            m,
            &format!("{g}.cross_attn.query"),
            &format!("{c}/attention/linear_0"),
        )?;
        w.fused(
            m,
            &[
                &format!("{g}.cross_attn.key"),
                &format!("{g}.cross_attn.value"),
            ],
            &format!("{c}/attention/linear_1"),
        )?;
        w.linear(
            m,
            &format!("{g}.cross_attn.out"),
            &format!("{c}/attention/linear_2"),
        )?;
        w.mlp(m, &g, &c)?;
    }
    Ok(())
}

struct TensorWriter<W> {
    out: W,
    tensors: usize,
}

impl<W: Write> TensorWriter<W> {
    fn bytes(&mut self, b: &[u8]) -> Result<(), ModelError> {
        self.out.write_all(b).map_err(ModelError::write)
    }
    fn i32(&mut self, v: i32) -> Result<(), ModelError> {
        self.bytes(&v.to_le_bytes())
    }
    fn u32(&mut self, v: u32) -> Result<(), ModelError> {
        self.bytes(&v.to_le_bytes())
    }

    /// Writes rows `rows` (of `per_row` leading-dimension units) of `src` as a
    /// tensor of logical shape `shape` (outermost first, as in PyTorch).
    fn tensor(
        &mut self,
        name: &str,
        shape: &[usize],
        ty: Out,
        src: &Variable,
        rows: std::ops::Range<usize>,
        parts: usize,
    ) -> Result<(), ModelError> {
        let elements: usize = src.shape.iter().product();
        let part = elements / parts.max(1);
        let (lo, hi) = (rows.start * part, rows.end * part);
        if shape.iter().product::<usize>() != hi - lo || !elements.is_multiple_of(parts.max(1)) {
            return Err(ModelError::format(format!(
                "{name}: source shape {:?} does not fit {shape:?}",
                src.shape
            )));
        }
        self.i32(to_i32(shape.len())?)?;
        self.i32(to_i32(name.len())?)?;
        self.i32(ty as i32)?;
        for d in shape.iter().rev() {
            self.i32(to_i32(*d)?)?;
        }
        self.bytes(name.as_bytes())?;
        let size = src.dtype.size();
        let data = &src.data[lo * size..hi * size];
        let converted =
            convert(data, src.dtype, ty).map_err(|e| ModelError::format(format!("{name}: {e}")))?;
        self.bytes(&converted)?;
        self.tensors += 1;
        Ok(())
    }

    fn whole(&mut self, m: &Ct2Model, name: &str, src: &str, ty: Out) -> Result<(), ModelError> {
        let v = m.get(src)?;
        let shape = v.shape.clone();
        self.tensor(name, &shape, ty, v, 0..1, 1)
    }

    fn norm(&mut self, m: &Ct2Model, g: &str, c: &str) -> Result<(), ModelError> {
        self.whole(m, &format!("{g}.weight"), &format!("{c}/gamma"), Out::F32)?;
        self.whole(m, &format!("{g}.bias"), &format!("{c}/beta"), Out::F32)
    }

    fn linear(&mut self, m: &Ct2Model, g: &str, c: &str) -> Result<(), ModelError> {
        self.whole(m, &format!("{g}.weight"), &format!("{c}/weight"), Out::F16)?;
        self.whole(m, &format!("{g}.bias"), &format!("{c}/bias"), Out::F32)
    }

    fn mlp(&mut self, m: &Ct2Model, g: &str, c: &str) -> Result<(), ModelError> {
        self.norm(m, &format!("{g}.mlp_ln"), &format!("{c}/ffn/layer_norm"))?;
        self.linear(m, &format!("{g}.mlp.0"), &format!("{c}/ffn/linear_0"))?;
        self.linear(m, &format!("{g}.mlp.2"), &format!("{c}/ffn/linear_1"))
    }

    /// Splits a fused projection into equal row blocks, one per name. The key
    /// projection (`…key`) has no bias in Whisper: its block must be zero.
    fn fused(&mut self, m: &Ct2Model, names: &[&str], c: &str) -> Result<(), ModelError> {
        let (weight, bias) = (m.get(&format!("{c}/weight"))?, m.get(&format!("{c}/bias"))?);
        let n = names.len();
        let (rows, cols) = match weight.shape.as_slice() {
            [r, k] if r % n == 0 => (r / n, *k),
            _ => {
                return Err(ModelError::format(format!(
                    "{c}: cannot split {:?} in {n}",
                    weight.shape
                )))
            }
        };
        for (i, name) in names.iter().enumerate() {
            self.tensor(
                &format!("{name}.weight"),
                &[rows, cols],
                Out::F16,
                weight,
                i..i + 1,
                n,
            )?;
            if name.ends_with(".key") {
                let size = bias.dtype.size();
                let block = bias
                    .data
                    .get(i * rows * size..(i + 1) * rows * size)
                    .unwrap_or(&[]);
                if !to_f32s(block, bias.dtype)?.iter().all(|x| *x == 0.0) {
                    return Err(ModelError::format(format!("{c}: non-zero key bias")));
                }
                continue;
            }
            self.tensor(
                &format!("{name}.bias"),
                &[rows],
                Out::F32,
                bias,
                i..i + 1,
                n,
            )?;
        }
        Ok(())
    }
}

fn to_i32(v: usize) -> Result<i32, ModelError> {
    i32::try_from(v).map_err(|_| ModelError::format(format!("{v} does not fit an i32")))
}

fn to_f32s(data: &[u8], dtype: DType) -> Result<Vec<f32>, ModelError> {
    match dtype {
        DType::F32 => Ok(data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()),
        DType::F16 => Ok(data
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect()),
        DType::Bf16 => Ok(data
            .chunks_exact(2)
            .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
            .collect()),
        other => Err(ModelError::format(format!(
            "cannot convert {other:?} weights (quantized models are not supported)"
        ))),
    }
}

fn convert(data: &[u8], from: DType, to: Out) -> Result<Vec<u8>, ModelError> {
    match (from, to) {
        (DType::F16, Out::F16) | (DType::F32, Out::F32) => Ok(data.to_vec()),
        (_, Out::F32) => Ok(to_f32s(data, from)?
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect()),
        (_, Out::F16) => Ok(to_f32s(data, from)?
            .iter()
            .flat_map(|x| f32_to_f16(*x).to_le_bytes())
            .collect()),
    }
}

/// IEEE 754 binary16 → binary32, exact (subnormals, infinities, NaN).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: value = man × 2^-24.
            let v = man as f32 * f32::powi(2.0, -24);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, _) => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// binary32 → binary16 with round-to-nearest-even; overflow saturates to ±inf.
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    if x.is_nan() {
        return sign | 0x7e00;
    }
    let a = x.abs();
    if a >= 65520.0 {
        return sign | 0x7c00;
    }
    if a < f32::powi(2.0, -14) {
        // Subnormal range: count units of 2^-24, ties to even.
        let units = a * f32::powi(2.0, 24);
        return sign | round_even(units) as u16;
    }
    let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    let man = bits & 0x7f_ffff;
    let mut h = ((exp as u32) << 10) | (man >> 13);
    let rest = man & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && h & 1 == 1) {
        h += 1; // may carry into the exponent, which is still correct
    }
    sign | h as u16
}

fn round_even(v: f32) -> u32 {
    let floor = v.floor();
    let frac = v - floor;
    let f = floor as u32;
    if frac > 0.5 || (frac == 0.5 && f % 2 == 1) {
        f + 1
    } else {
        f
    }
}

/// The byte-level BPE vocabulary whisper.cpp wants: the ordinary tokens that
/// precede `<|endoftext|>`, each turned back from GPT-2's printable stand-in
/// characters into raw bytes. Specials after it are named by the loader.
pub fn vocabulary(lines: &str) -> Result<Vec<Vec<u8>>, ModelError> {
    let table = byte_decoder();
    let mut out = Vec::new();
    for line in lines.lines() {
        if line == "<|endoftext|>" {
            return Ok(out);
        }
        let bytes = line
            .chars()
            .map(|c| table.get(&c).copied())
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| ModelError::format(format!("token {line:?} is not byte-level BPE")))?;
        out.push(bytes);
    }
    Err(ModelError::format("vocabulary has no <|endoftext|>"))
}

/// GPT-2's byte ↔ character map, reversed: printable Latin-1 bytes stand for
/// themselves; the others were shifted to U+0100 and up, in byte order.
fn byte_decoder() -> HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
    let mut shifted = 0u32;
    let mut map = HashMap::new();
    for b in 0..=255u8 {
        let c = if printable(b) {
            char::from(b)
        } else {
            shifted += 1;
            char::from_u32(255 + shifted).unwrap_or('\u{fffd}')
        };
        map.insert(c, b);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trips_and_known_values() {
        for (h, f) in [
            (0x3c00u16, 1.0f32),
            (0xc000, -2.0),
            (0x7bff, 65504.0),
            (0x0001, 5.960_464_5e-8),
            (0x3555, 0.333_251_95),
        ] {
            assert_eq!(f16_to_f32(h), f, "{h:#x}");
            assert_eq!(f32_to_f16(f), h, "{f}");
        }
        for h in (0..0x7c00u16).step_by(7) {
            assert_eq!(f32_to_f16(f16_to_f32(h)), h);
            assert_eq!(f32_to_f16(-f16_to_f32(h)), h | 0x8000);
        }
        assert_eq!(f32_to_f16(1e9), 0x7c00);
        assert!(f16_to_f32(f32_to_f16(f32::NAN)).is_nan());
        // 1 + 2^-11 is a tie between 1.0 and the next f16: goes to even (1.0).
        assert_eq!(f32_to_f16(1.0 + f32::powi(2.0, -11)), 0x3c00);
    }

    #[test]
    fn vocabulary_decodes_byte_level_tokens() {
        let v =
            vocabulary("!\nĠthe\nĊ\nhello\n<|endoftext|>\n<|startoftranscript|>\n").expect("ok");
        assert_eq!(
            v,
            vec![
                b"!".to_vec(),
                b" the".to_vec(),
                b"\n".to_vec(),
                b"hello".to_vec()
            ]
        );
        assert!(vocabulary("a\nb\n").is_err());
        assert!(vocabulary("\u{4e00}\n<|endoftext|>\n").is_err());
        assert_eq!(byte_decoder().len(), 256);
    }
}
