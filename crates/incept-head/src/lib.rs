//! Stage 2
