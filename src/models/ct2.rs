//! Reader for CTranslate2's `model.bin`: a little-endian container of named,
//! typed tensors. Layout (binary version 6): `u32` version, the spec name and
//! `u32` spec revision, `u32` variable count, then per variable its name, a
//! `u8` rank, `rank` × `u32` dimensions, a `u8` data type, a `u32` byte count
//! and the bytes; finally `u32` alias count and (alias, target) name pairs.
//! Strings are a `u16` length (counting a trailing NUL) and the bytes.
//! Parsing borrows the file's bytes; it never panics on malformed input.

use std::collections::HashMap;

use super::ModelError;

/// The binary version this reader understands.
const SUPPORTED_VERSION: u32 = 6;

/// CTranslate2's element types, by their on-disk code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl DType {
    fn from_code(code: u8) -> Result<DType, ModelError> {
        Ok(match code {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::Bf16,
            other => {
                return Err(ModelError::format(format!(
                    "unknown data type code {other}"
                )))
            }
        })
    }

    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::Bf16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// One named tensor, borrowing its bytes from the file.
#[derive(Debug, Clone)]
pub struct Variable<'a> {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub data: &'a [u8],
}

impl Variable<'_> {
    /// The value of a scalar integer variable (head counts and the like).
    pub fn as_int(&self) -> Option<i64> {
        let d = self.data;
        match (self.dtype, d.len()) {
            (DType::I8, 1) => Some(i64::from(d[0] as i8)),
            (DType::I16, 2) => Some(i64::from(i16::from_le_bytes([d[0], d[1]]))),
            (DType::I32, 4) => Some(i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]]))),
            _ => None,
        }
    }
}

/// A parsed `model.bin`.
#[derive(Debug)]
pub struct Ct2Model<'a> {
    pub spec: String,
    pub variables: HashMap<String, Variable<'a>>,
}

impl<'a> Ct2Model<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Ct2Model<'a>, ModelError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u32()?;
        if version != SUPPORTED_VERSION {
            return Err(ModelError::format(format!(
                "CTranslate2 binary version {version} (this reader knows {SUPPORTED_VERSION})"
            )));
        }
        let spec = r.string()?;
        let _revision = r.u32()?;
        let count = r.u32()?;
        let mut variables = HashMap::new();
        for _ in 0..count {
            let (name, var) = r.variable()?;
            variables.insert(name, var);
        }
        let aliases = r.u32()?;
        for _ in 0..aliases {
            let alias = r.string()?;
            let target = r.string()?;
            let var = variables.get(&target).cloned().ok_or_else(|| {
                ModelError::format(format!("alias {alias} names missing {target}"))
            })?;
            variables.insert(alias, var);
        }
        Ok(Ct2Model { spec, variables })
    }

    pub fn get(&self, name: &str) -> Result<&Variable<'a>, ModelError> {
        self.variables
            .get(name)
            .ok_or_else(|| ModelError::format(format!("model.bin has no variable {name}")))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| ModelError::format("model.bin is truncated"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, ModelError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ModelError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, ModelError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Result<String, ModelError> {
        let len = usize::from(self.u16()?);
        let raw = self.take(len)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| ModelError::format("a name is not UTF-8"))
    }

    fn variable(&mut self) -> Result<(String, Variable<'a>), ModelError> {
        let name = self.string()?;
        let rank = self.u8()?;
        let shape = (0..rank)
            .map(|_| self.u32().map(|d| d as usize))
            .collect::<Result<Vec<_>, _>>()?;
        let dtype = DType::from_code(self.u8()?)?;
        let nbytes = self.u32()? as usize;
        let elements: usize = shape.iter().product();
        if elements.checked_mul(dtype.size()) != Some(nbytes) {
            return Err(ModelError::format(format!(
                "{name}: {nbytes} bytes for shape {shape:?} of {dtype:?}"
            )));
        }
        let data = self.take(nbytes)?;
        Ok((name, Variable { shape, dtype, data }))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a CTranslate2 container; tests build small synthetic models.
    pub(crate) fn encode(
        vars: &[(&str, &[usize], u8, Vec<u8>)],
        aliases: &[(&str, &str)],
    ) -> Vec<u8> {
        fn s(out: &mut Vec<u8>, v: &str) {
            out.extend_from_slice(&((v.len() + 1) as u16).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        let mut out = SUPPORTED_VERSION.to_le_bytes().to_vec();
        s(&mut out, "WhisperSpec");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
        for (name, shape, code, data) in vars {
            s(&mut out, name);
            out.push(shape.len() as u8);
            for d in *shape {
                out.extend_from_slice(&(*d as u32).to_le_bytes());
            }
            out.push(*code);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&(aliases.len() as u32).to_le_bytes());
        for (a, t) in aliases {
            s(&mut out, a);
            s(&mut out, t);
        }
        out
    }

    #[test]
    fn parses_variables_scalars_and_aliases() {
        let bytes = encode(
            &[
                ("enc/num_heads", &[], 2, 6i16.to_le_bytes().to_vec()),
                ("w", &[2, 3], 4, vec![0; 12]),
            ],
            &[("proj", "w")],
        );
        let m = Ct2Model::parse(&bytes).expect("parses");
        assert_eq!(m.spec, "WhisperSpec");
        assert_eq!(
            m.get("enc/num_heads").ok().and_then(|v| v.as_int()),
            Some(6)
        );
        let w = m.get("w").expect("w");
        assert_eq!(
            (w.shape.as_slice(), w.dtype, w.data.len()),
            (&[2, 3][..], DType::F16, 12)
        );
        assert_eq!(m.get("proj").expect("alias").shape, vec![2, 3]);
        assert!(m.get("missing").is_err());
    }

    #[test]
    fn rejects_truncation_bad_sizes_and_versions() {
        let good = encode(&[("w", &[4], 0, vec![0; 16])], &[]);
        for cut in [0, 3, 10, good.len() - 1] {
            assert!(Ct2Model::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let bad_size = encode(&[("w", &[4], 0, vec![0; 15])], &[]);
        assert!(Ct2Model::parse(&bad_size).is_err());
        let mut old = good.clone();
        old[0] = 5;
        assert!(Ct2Model::parse(&old).is_err());
        let dangling = encode(&[("w", &[4], 0, vec![0; 16])], &[("a", "nope")]);
        assert!(Ct2Model::parse(&dangling).is_err());
    }
}
