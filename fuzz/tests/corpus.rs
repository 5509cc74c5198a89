//! Regression replay (test tooling): every checked-in corpus input of every fuzz target runs
//! without a panic, including the inputs of every crash found and fixed so far.

use onair_fuzz::{TARGETS, corpus};

#[test]
fn every_corpus_input_runs_clean() {
    for (name, target) in TARGETS {
        let inputs = corpus::load(name);
        assert!(!inputs.is_empty(), "corpus/{name}/ has seeds");
        for (file, input) in inputs {
            let ok = std::panic::catch_unwind(|| target(&input)).is_ok();
            assert!(ok, "fuzz target {name} panics on corpus/{name}/{file}");
        }
    }
}
