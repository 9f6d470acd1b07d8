//! Test-only code that needs `unsafe`.

pub mod counting_alloc;
