//! lab
pub mod netns;
