//! Pure key logic shared by the key service and the scanner.
//!
//! Only the checksum lives here so far: the scanner needs it to tell a real
//! token from a look-alike offline, before any database lookup.

pub mod checksum;
