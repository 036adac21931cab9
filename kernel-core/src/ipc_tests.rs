//! Host tests of the IPC engine.
