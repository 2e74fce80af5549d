//! The hot-path operations of `hot_paths`, each run a fixed number of times, so that
//! `valgrind --tool=callgrind` (instructions) and `--tool=dhat` (allocations) give exact,
//! load-independent counts per operation: `shared/benches/icount.sh` runs every operation at
//! two counts and divides the difference, which cancels start-up and first-call costs.
//!
//! `hot_paths_icount OP N` runs OP N times; `hot_paths_icount --list` names the operations;
//! without an operation (as `cargo bench` runs it) it checks every input once and exits.

mod cases;

use std::hint::black_box;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let inputs = cases::Inputs::new();
    cases::check(&inputs);
    match args.as_slice() {
        [flag] if flag == "--list" => {
            for op in cases::OPS {
                println!("{}/{}", op.group, op.name);
            }
        }
        [op, n] if !op.starts_with('-') => {
            let n: u64 = n.parse().expect("N is a count");
            let op = cases::OPS
                .iter()
                .find(|o| format!("{}/{}", o.group, o.name) == *op)
                .unwrap_or_else(|| panic!("no operation {op}; see --list"));
            let mut sink = 0usize;
            for _ in 0..n {
                sink = sink.wrapping_add((op.run)(black_box(&inputs)));
            }
            black_box(sink);
        }
        // `cargo bench` passes `--bench`: the inputs were checked, nothing to time here.
        _ => println!("hot_paths_icount: {} operations checked", cases::OPS.len()),
    }
}
