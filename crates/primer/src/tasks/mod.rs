//! Labelled data for fine-tuning: readers for each task's file format, label sets, and the
//! task metrics.

pub mod datasets;
pub mod labels;
pub mod metrics;
