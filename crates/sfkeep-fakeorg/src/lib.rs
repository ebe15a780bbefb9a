//! The simulated Salesforce org.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
