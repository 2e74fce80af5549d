//! Criterion micro-benchmarks of the hot pure paths (issue 6): update normalisation, Heleket
//! webhook verification and request signing, callback-data tagging. Run with
//! `cargo bench -p shared --bench hot_paths`; the method and results are in BENCHMARKS.md.

mod cases;

use criterion::{criterion_group, criterion_main, Criterion};
use std::collections::BTreeMap;

fn hot_paths(c: &mut Criterion) {
    let inputs = cases::Inputs::new();
    cases::check(&inputs);
    let mut groups: BTreeMap<&str, Vec<&cases::Op>> = BTreeMap::new();
    for op in cases::OPS {
        groups.entry(op.group).or_default().push(op);
    }
    for (group, ops) in groups {
        let mut g = c.benchmark_group(group);
        for op in ops {
            g.bench_function(op.name, |b| b.iter(|| (op.run)(&inputs)));
        }
        g.finish();
    }
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
