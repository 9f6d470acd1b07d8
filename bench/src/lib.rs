//! Shared helpers of the benchmarks live in the benches themselves.
