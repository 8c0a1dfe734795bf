//! Stage 3
