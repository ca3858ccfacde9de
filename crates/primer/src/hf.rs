//! Hugging Face model directories: `config.json` and `model.safetensors`, read into and written from a flat
//! parameter buffer whose tensor names are Hugging Face's.

use crate::engine::params::{ParamLayout, ParamSpec};
use crate::error::{Error, Result};
use crate::train::atomic::write_atomic;
use safetensors::{Dtype, SafeTensors};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Reads and parses a JSON config; a missing field or a type error names the file, field, line and column.
pub fn read_config<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
    parse_json(path, &text)
}

/// Reads a JSON config as [`read_config`] does, or gives `T`'s default when there is no file at `path` (an
/// optional file such as `tokenizer_config.json` or `generation_config.json`).
pub fn read_optional_config<T: DeserializeOwned + Default>(path: &Path) -> Result<T> {
    if !path.is_file() {
        return Ok(T::default());
    }
    read_config(path)
}

/// Parses `text`, read from `path`; an error names the file, the field (`eos_token_id: invalid type …`), line
/// and column.
fn parse_json<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        // a field only for a value of the wrong kind: a syntax error or a cut-off file has none to name
        let data = inner.classify() == serde_json::error::Category::Data;
        match field.as_str() {
            "" | "." => Error::format(path, inner.to_string()),
            _ if !data => Error::format(path, inner.to_string()),
            _ => Error::format(path, format!("{field}: {inner}")),
        }
    })?;
    de.end().map_err(|e| Error::format(path, e.to_string()))?;
    Ok(value)
}

/// A token-id field of `config.json` or `generation_config.json` (`eos_token_id`, `bos_token_id`), which Hugging
/// Face writes as `null`, one id or a list of ids; written back the same way (none as `null`, one as a number).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenIds(pub Vec<u32>);

impl TokenIds {
    /// The id `id` when there is one, else none (written as `null`).
    pub fn one(id: Option<u32>) -> TokenIds {
        TokenIds(id.into_iter().collect())
    }
}

impl serde::Serialize for TokenIds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [] => s.serialize_none(),
            [one] => s.serialize_u32(*one),
            many => many.serialize(s),
        }
    }
}

impl<'de> serde::Deserialize<'de> for TokenIds {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> std::result::Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged, expecting = "a token id, a list of token ids or null")]
        enum Form {
            One(u32),
            Many(Vec<u32>),
        }
        Ok(match Option::<Form>::deserialize(de)? {
            None => TokenIds::default(),
            Some(Form::One(id)) => TokenIds(vec![id]),
            Some(Form::Many(ids)) => TokenIds(ids),
        })
    }
}

/// For `#[serde(deserialize_with)]`: a JSON `null` reads as the type's default, as a missing field does.
pub fn null_as_default<'de, D, T>(de: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// Refuses, as a model directory, a path that is not there, a file (`--model notes.txt`), and the directory of a
/// run that has not written a model yet: a run writes config.json with its first checkpoint, and
/// train_config.json before its first step.
pub fn check_model_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Err(Error::format(dir, "no such model directory"));
    }
    if dir.is_file() {
        return Err(Error::format(
            dir,
            "is a file, not a model directory (one holding config.json, model.safetensors and the tokenizer)",
        ));
    }
    if !dir.join("config.json").exists()
        && !dir.join("model.safetensors").exists()
        && dir.join("train_config.json").is_file()
    {
        return Err(Error::format(
            dir,
            "holds a run with no model yet (config.json and model.safetensors come with its first checkpoint): \
             let it reach one, or start a run stopped before then afresh with --overwrite",
        ));
    }
    Ok(())
}

/// Reads `dir/config.json` as [`read_config`] does, after checking that its `model_type` (when it has one) is
/// `model_type` — a BERT directory given where a GPT-2 one is needed is named as such, not reported as a field
/// that a GPT-2 config would have — and then checks it with `validate`; every error names the file. The text is
/// parsed twice (a loose look at `model_type` first) so that a parse error keeps its line and column.
pub fn read_model_config<T: DeserializeOwned>(
    dir: &Path,
    model_type: &str,
    validate: fn(&T) -> Result<()>,
) -> Result<T> {
    check_model_dir(dir)?;
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(Error::io(&path))?;
    let value: serde_json::Value = parse_json(&path, &text)?;
    if let Some(found) = value.get("model_type").and_then(|t| t.as_str()) {
        if found != model_type {
            return Err(Error::format(
                &path,
                format!("model_type is \"{found}\"; this needs a \"{model_type}\" model"),
            ));
        }
    }
    let config = parse_json(&path, &text)?;
    validate(&config).map_err(|e| Error::format(&path, e.to_string()))?;
    Ok(config)
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| Error::format(path, e.to_string()))?;
    write_atomic(path, text.as_bytes())
}

/// Writes the named tensors of `layout` from `params` as one safetensors file, atomically, with extra
/// `metadata` entries in its header.
pub fn save_safetensors(
    path: &Path,
    layout: &ParamLayout,
    params: &[f32],
    metadata: &[(&str, String)],
) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = layout
        .specs()
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                f32_bytes(&params[s.range()]),
                s.shape.clone(),
            )
        })
        .collect();
    save_raw(path, &bytes, metadata)
}

/// `v` as the little-endian bytes a safetensors F32 tensor holds, for [`save_raw`].
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes `(name, little-endian f32 bytes, shape)` triples as a safetensors file, atomically.
pub fn save_raw(
    path: &Path,
    tensors: &[(String, Vec<u8>, Vec<usize>)],
    metadata: &[(&str, String)],
) -> Result<()> {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(name, data, shape)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::format(path, format!("tensor {name}: {e}")))
        })
        .collect::<Result<_>>()?;
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    for (k, v) in metadata {
        meta.insert(k.to_string(), v.clone());
    }
    let out = safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::format(path, e.to_string()))?;
    write_atomic(
        path,
        &sorted_header(out).map_err(|e| Error::format(path, e))?,
    )
}

/// The same safetensors bytes with the header's entries in sorted order. `safetensors` writes the metadata from
/// a `HashMap`, whose order changes from run to run, so two identical runs would write checkpoints that differ
/// in their header; sorted, they are byte for byte the same. The offsets in the entries are explicit, so their
/// order in the header does not matter to any reader.
fn sorted_header(mut bytes: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    let size = bytes.get(..8).ok_or("no header size")?;
    let len = u64::from_le_bytes(size.try_into().map_err(|_| "no header size")?) as usize;
    let header = bytes.get(8..8 + len).ok_or("header past the end")?;
    let mut entries: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| e.to_string())?;
    if let Some(meta) = entries.get_mut("__metadata__") {
        let sorted: BTreeMap<String, String> =
            serde_json::from_value(meta.take()).map_err(|e| e.to_string())?;
        *meta = serde_json::to_value(sorted).map_err(|e| e.to_string())?;
    }
    // the same entries, compact as safetensors writes them, take the same bytes: rewritten in place (no copy of
    // the tensors), padded with spaces as safetensors pads its header to keep the data 8-aligned
    let json = serde_json::to_vec(&entries).map_err(|e| e.to_string())?;
    if json.len() > len {
        return Err("the sorted header is longer than the original".into());
    }
    bytes[8..8 + json.len()].copy_from_slice(&json);
    bytes[8 + json.len()..8 + len].fill(b' ');
    Ok(bytes)
}

/// An opened safetensors file (memory-mapped).
pub struct TensorFile {
    path: std::path::PathBuf,
    mmap: memmap2::Mmap,
}

impl TensorFile {
    /// Opens `path`; when it is a missing `model.safetensors` beside a checkpoint in a format primer does not
    /// read (sharded, or PyTorch's `.bin`), the error says so and how to convert it.
    pub fn open(path: &Path) -> Result<TensorFile> {
        if path.is_dir() {
            return Err(Error::format(
                path,
                "is a directory, not a safetensors file",
            ));
        }
        let file = std::fs::File::open(path)
            .map_err(|e| unreadable_checkpoint(path).unwrap_or_else(|| Error::io(path)(e)))?;
        // SAFETY: the file is only read; a concurrent writer would be a user error we cannot prevent.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(Error::io(path))?;
        let tf = TensorFile {
            path: path.to_path_buf(),
            mmap,
        };
        tf.parsed()?;
        Ok(tf)
    }

    fn parsed(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.mmap).map_err(|e| self.invalid(e))
    }

    /// The error for a file that does not parse. One shorter than its header says (a copy or download that did
    /// not finish) is called truncated, with its size, before the parser's own words ("incomplete metadata").
    fn invalid(&self, e: safetensors::SafeTensorError) -> Error {
        use safetensors::SafeTensorError as E;
        let short = matches!(
            e,
            E::HeaderTooSmall | E::InvalidHeaderLength | E::MetadataIncompleteBuffer
        );
        let msg = if short {
            format!(
                "not a valid safetensors file: truncated or corrupt ({} bytes, fewer than its header says; the \
                 parser says: {e})",
                self.mmap.len()
            )
        } else {
            format!("not a valid safetensors file: {e}")
        };
        Error::format(&self.path, msg)
    }

    pub fn names(&self) -> Result<Vec<String>> {
        Ok(self
            .parsed()?
            .names()
            .into_iter()
            .map(|s| s.to_string())
            .collect())
    }

    /// A value of the file's header metadata.
    pub fn metadata(&self, key: &str) -> Result<Option<String>> {
        let (_, meta) = SafeTensors::read_metadata(&self.mmap).map_err(|e| self.invalid(e))?;
        Ok(meta.metadata().as_ref().and_then(|m| m.get(key).cloned()))
    }

    /// Refuses a file holding a layer past the `n_layer` that config.json's `field` names (a layer's tensors
    /// are named `….{marker}.{index}.…`, `marker` being `h` for GPT-2 or `layer` for BERT), which a loader
    /// would otherwise leave out without a word.
    pub fn check_layers(&self, marker: &str, n_layer: usize, field: &str) -> Result<()> {
        let deepest = self
            .names()?
            .iter()
            .filter_map(|name| {
                let parts: Vec<&str> = name.split('.').collect();
                let at = parts.iter().position(|p| *p == marker)?;
                parts.get(at + 1)?.parse::<usize>().ok()
            })
            .max();
        match deepest {
            Some(last) if last >= n_layer => Err(Error::format(
                &self.path,
                format!(
                    "holds {} layers, but config.json's {field} is {n_layer}: the two do not belong together",
                    last + 1
                ),
            )),
            _ => Ok(()),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.parsed().is_ok_and(|st| st.tensor(name).is_ok())
    }

    /// Whether the file holds a tensor under one of `head`'s names whose values differ from the tensor under the
    /// first of `embeddings`' names it holds: an output layer saved apart from the input embeddings although the
    /// config ties the two, which transformers then uses as it is, untied.
    pub fn separate_head(&self, head: &[String], embeddings: &[String]) -> Result<bool> {
        let find = |names: &[String]| names.iter().find(|n| self.contains(n)).cloned();
        let (Some(h), Some(e)) = (find(head), find(embeddings)) else {
            return Ok(false);
        };
        Ok(self.get_f32(&h)? != self.get_f32(&e)?)
    }

    /// A tensor converted to f32, with its shape. F32, F16 and BF16 are accepted.
    pub fn get_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let st = self.parsed()?;
        let t = st
            .tensor(name)
            .map_err(|_| Error::format(&self.path, format!("missing tensor `{name}`")))?;
        let d = t.data();
        let v: Vec<f32> = match t.dtype() {
            Dtype::F32 => d
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::BF16 => d
                .chunks_exact(2)
                .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                .collect(),
            Dtype::F16 => d
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            other => {
                return Err(Error::format(
                    &self.path,
                    format!("tensor `{name}` has dtype {other:?}; expected F32, F16 or BF16"),
                ))
            }
        };
        // a NaN or infinity would run through every output without a word (a damaged file, or one saved from a
        // run that diverged)
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::format(
                &self.path,
                format!(
                    "tensor `{name}` holds {} at index {i}: every output would be NaN; the checkpoint is damaged \
                     or comes from a run that diverged",
                    v[i]
                ),
            ));
        }
        Ok((v, t.shape().to_vec()))
    }

    /// A tensor of integers (I64 or I32) as i64, with its shape.
    pub fn get_i64(&self, name: &str) -> Result<(Vec<i64>, Vec<usize>)> {
        let st = self.parsed()?;
        let t = st
            .tensor(name)
            .map_err(|_| Error::format(&self.path, format!("missing tensor `{name}`")))?;
        let d = t.data();
        let v = match t.dtype() {
            Dtype::I64 => d
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                .collect(),
            Dtype::I32 => d
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect(),
            other => {
                return Err(Error::format(
                    &self.path,
                    format!("tensor `{name}` has dtype {other:?}; expected I64 or I32"),
                ))
            }
        };
        Ok((v, t.shape().to_vec()))
    }

    /// Fills every tensor of `layout` into `params`. `rename` maps a layout name to the names to try in the
    /// file, in order (e.g. with and without a `transformer.` prefix). Missing tensors and shape mismatches are
    /// errors naming the tensor.
    pub fn load_into(
        &self,
        layout: &ParamLayout,
        params: &mut [f32],
        rename: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<()> {
        for spec in layout.specs() {
            if !self.load_spec(spec, params, rename)? {
                return Err(Error::format(
                    &self.path,
                    format!("checkpoint is missing tensor `{}`", spec.name),
                ));
            }
        }
        Ok(())
    }

    /// Copies the first of `rename(spec.name)` the file has into `spec`'s range of `params`; `false` when the
    /// file has none of them. A shape differing from the spec's is an error naming the tensor.
    pub fn load_spec(
        &self,
        spec: &ParamSpec,
        params: &mut [f32],
        rename: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<bool> {
        let candidates = rename(&spec.name);
        let Some(found) = candidates.iter().find(|n| self.contains(n)) else {
            return Ok(false);
        };
        let (data, shape) = self.get_f32(found)?;
        if shape != spec.shape {
            return Err(Error::format(
                &self.path,
                format!(
                    "tensor `{found}` has shape {shape:?}; the config implies {:?}",
                    spec.shape
                ),
            ));
        }
        params[spec.range()].copy_from_slice(&data);
        Ok(true)
    }

    /// The file's path, for error messages.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Checkpoint files transformers writes that primer does not read, with what they are.
const UNREADABLE_CHECKPOINTS: [(&str, &str); 3] = [
    ("model.safetensors.index.json", "a sharded checkpoint"),
    (
        "pytorch_model.bin.index.json",
        "a sharded PyTorch checkpoint",
    ),
    ("pytorch_model.bin", "a PyTorch .bin checkpoint"),
];

/// For a missing `DIR/model.safetensors`: an error naming the unreadable checkpoint DIR holds, if any.
fn unreadable_checkpoint(path: &Path) -> Option<Error> {
    let dir = path.parent()?;
    if path.file_name()? != "model.safetensors" {
        return None;
    }
    let (name, what) = UNREADABLE_CHECKPOINTS
        .iter()
        .find(|(name, _)| dir.join(name).is_file())?;
    Some(Error::format(
        dir,
        format!(
            "has {name} ({what}) and no model.safetensors; primer reads only a single model.safetensors: \
             convert it in transformers with \
             save_pretrained(OUT, safe_serialization=True, max_shard_size=\"1000GB\")"
        ),
    ))
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // subnormal: normalise
            let shift = m.leading_zeros() - 21;
            sign | ((127 - 15 + 1 - shift) << 23) | ((m << shift) & 0x3ff) << 13
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Hugging Face's `id2label` (ids as strings) and `label2id` maps of the label names `names`.
pub fn label_maps(names: &[String]) -> (BTreeMap<String, String>, BTreeMap<String, usize>) {
    let id2label = names
        .iter()
        .enumerate()
        .map(|(i, n)| (i.to_string(), n.clone()))
        .collect();
    let label2id = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect();
    (id2label, label2id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same tensors and metadata give the same bytes every time (safetensors alone orders the metadata by a
    /// randomly seeded hash), and the file still reads back.
    #[test]
    fn saved_files_are_byte_identical() {
        let dir = crate::testutil::scratch_dir("hf", "identical");
        let tensors = [
            ("b".to_string(), f32_bytes(&[1.0, 2.0, 3.0]), vec![3]),
            ("a".to_string(), f32_bytes(&[4.0, 5.0]), vec![1, 2]),
        ];
        let meta = [("step", "7".to_string()), ("kind", "test".to_string())];
        let mut first = None;
        for i in 0..16 {
            let path = dir.join(format!("{i}.safetensors"));
            super::save_raw(&path, &tensors, &meta).unwrap();
            let got = std::fs::read(&path).unwrap();
            assert_eq!(&got, first.get_or_insert_with(|| got.clone()), "save {i}");
            let f = super::TensorFile::open(&path).unwrap();
            assert_eq!(f.metadata("step").unwrap().as_deref(), Some("7"));
            assert_eq!(f.get_f32("a").unwrap().0, vec![4.0, 5.0]);
        }
    }

    #[test]
    fn sharded_and_bin_checkpoints_are_named_with_how_to_convert() {
        for (name, what) in UNREADABLE_CHECKPOINTS {
            let dir = crate::testutil::scratch_dir("hf", name);
            std::fs::write(dir.join(name), "{}").unwrap();
            let err = TensorFile::open(&dir.join("model.safetensors"))
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.contains(name) && err.contains(what) && err.contains("save_pretrained"),
                "{err}"
            );
        }
        let dir = crate::testutil::scratch_dir("hf", "empty");
        let err = TensorFile::open(&dir.join("model.safetensors"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("model.safetensors: No such file"), "{err}");
    }

    #[test]
    fn f16_conversion() {
        for (h, f) in [
            (0x3c00u16, 1.0f32),
            (0xc000, -2.0),
            (0x3555, 0.333_251_95),
            (0x0001, 5.960_464_5e-8),
            (0x7bff, 65504.0),
        ] {
            assert_eq!(f16_to_f32(h), f, "{h:#x}");
        }
    }
}
