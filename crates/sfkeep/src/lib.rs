//! sfkeep core library.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
