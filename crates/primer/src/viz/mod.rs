//! Charts of training runs, written as PNG or SVG.

pub mod plot;
