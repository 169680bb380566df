//! Benches and load-generation tools for wss; see the crate README.
