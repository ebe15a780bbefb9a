//! The sfkeep proxy: not built yet (see issue "sfkeep proxy").
#![forbid(unsafe_code)]
#![warn(missing_docs)]
