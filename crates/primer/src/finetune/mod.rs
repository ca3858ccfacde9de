//! Fine-tuning: a pretrained encoder plus a task head, trained on labelled data and scored with the task's
//! metric (see [`train`] for the loop and [`model`] for the heads).

pub mod data;
pub mod evaluate;
pub mod features;
pub mod load;
pub mod model;
pub mod predict;
pub mod train;
