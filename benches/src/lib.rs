//! Benchmarks only: see `benches/ops.rs` (instruction counts per op family, CPython vs
//! tiered) and the Python scripts beside this crate (`compare.py`, `callgrind.py`).
