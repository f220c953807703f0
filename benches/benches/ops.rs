//! Instruction counts (callgrind, through iai-callgrind) of one kernel per op family, run
//! by plain CPython and by tiered: stable numbers on a noisy machine, to compare the two
//! and to see a change's effect per family. Each benchmark runs
//! `python benches/workloads.py FAMILY MODE`; callgrind collects only inside
//! `functools_reduce`, which the script calls around one warmed-up run of the kernel.
//!
//! ```text
//! cargo install iai-callgrind-runner --version 0.16.1
//! cargo bench -p tiered-benches          # with tiered installed in the active python
//! ```
//!
//! `TIERED_BENCH_PYTHON` names another interpreter. Not a test: nothing asserts a speed.

use iai_callgrind::{
    binary_benchmark, binary_benchmark_group, main, BinaryBenchmarkConfig, Callgrind,
};

/// One kernel run by CPython or tiered.
fn kernel(family: &str, mode: &str) -> iai_callgrind::Command {
    let python = std::env::var("TIERED_BENCH_PYTHON").unwrap_or_else(|_| "python".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/workloads.py");
    iai_callgrind::Command::new(python)
        .arg(script)
        .arg(family)
        .arg(mode)
        .build()
}

/// Per op family: a benchmark with a CPython and a tiered run, in a group of its own.
macro_rules! families {
    ($($name:ident in $group:ident => $family:literal),* $(,)?) => {
        $(
            #[binary_benchmark]
            #[bench::cpython("cpython")]
            #[bench::tiered("tiered")]
            fn $name(mode: &str) -> iai_callgrind::Command {
                kernel($family, mode)
            }
            binary_benchmark_group!(name = $group; benchmarks = $name);
        )*
        main!(
            config = BinaryBenchmarkConfig::default()
                .tool(Callgrind::with_args(["--toggle-collect=functools_reduce"]))
                .pass_through_envs(["PATH", "VIRTUAL_ENV", "PYTHONPATH", "TIERED_BENCH_PYTHON"]);
            binary_benchmark_groups = $($group),*
        );
    };
}

families! {
    arith in arith_ops => "arith",
    compare in compare_ops => "compare",
    globals in globals_ops => "globals",
    calls in calls_ops => "calls",
    iter in iter_ops => "iter",
    subscr in subscr_ops => "subscr",
    attrs in attrs_ops => "attrs",
    build in build_ops => "build",
}
