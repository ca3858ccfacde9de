//! The flat parameter buffer: every named tensor of a model is an (offset, shape) view into one `Vec<f32>`.
//! Gradients and optimizer moments use the same layout, so the optimizer is one loop over one buffer.

use std::ops::Range;

/// One named tensor in the flat buffer. Names are Hugging Face's, so a checkpoint is one safetensors file.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
    /// Whether AdamW applies weight decay to it (2-D weights and embeddings, not biases or norms).
    pub decay: bool,
}

impl ParamSpec {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.numel()
    }
}

/// The list of tensors and their places in the flat buffer.
#[derive(Clone, Debug, Default)]
pub struct ParamLayout {
    specs: Vec<ParamSpec>,
    total: usize,
}

impl ParamLayout {
    /// Appends a tensor; decay follows nanoGPT's rule (tensors of two or more dimensions decay).
    pub fn push(&mut self, name: impl Into<String>, shape: &[usize]) -> Range<usize> {
        let spec = ParamSpec {
            name: name.into(),
            shape: shape.to_vec(),
            offset: self.total,
            decay: shape.len() >= 2,
        };
        self.total += spec.numel();
        let range = spec.range();
        self.specs.push(spec);
        range
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    pub fn specs_mut(&mut self) -> &mut [ParamSpec] {
        &mut self.specs
    }

    pub fn get(&self, name: &str) -> Option<&ParamSpec> {
        self.specs.iter().find(|s| s.name == name)
    }
}

/// Two disjoint mutable ranges of one buffer (a weight's gradient and its bias's, say).
pub fn split2(buf: &mut [f32], a: Range<usize>, b: Range<usize>) -> (&mut [f32], &mut [f32]) {
    if a.end <= b.start {
        let (lo, hi) = buf.split_at_mut(b.start);
        (&mut lo[a], &mut hi[..b.len()])
    } else {
        assert!(b.end <= a.start, "overlapping ranges {a:?} and {b:?}");
        let (lo, hi) = buf.split_at_mut(a.start);
        (&mut hi[..a.len()], &mut lo[b])
    }
}
