//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the
//! checks the fuzz targets run (`dockhook::fuzzing`), on stable: an input
//! that once made a parser panic or break a property fails `cargo test`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dockhook::fuzzing;
use dockhook::sources::ALL;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Runs `check` on every input of `target`'s corpus, which must have
/// some; a panic names the input.
fn replay<R>(target: &str, check: impl Fn(&[u8]) -> R + std::panic::RefUnwindSafe) -> Vec<R> {
    let dir = fuzz_dir().join("corpus").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let results: Vec<R> = entries
        .map(|entry| {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            std::panic::catch_unwind(|| check(&data))
                .unwrap_or_else(|_| panic!("{} failed its check", path.display()))
        })
        .collect();
    assert!(!results.is_empty(), "{} is empty", dir.display());
    results
}

/// Names in `dir` with `suffix` cut off, for those that have it.
fn names(dir: &Path, suffix: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(suffix).map(String::from)
        })
        .collect()
}

fn source_target(name: &str) -> String {
    format!("source_{name}")
}

#[test]
fn every_target_has_a_corpus_and_every_corpus_is_replayed() {
    let mut expected: BTreeSet<String> = ALL.iter().map(|s| source_target(s.name)).collect();
    expected.extend(["image_ref".to_string(), "tag_policy".to_string()]);
    let dir = fuzz_dir();
    assert_eq!(names(&dir.join("fuzz_targets"), ".rs"), expected);
    assert_eq!(names(&dir.join("corpus"), ""), expected);
}

#[test]
fn source_corpora_replay_and_reach_the_payload_parsers() {
    for source in ALL {
        let target = source_target(source.name);
        let results = replay(&target, |data| fuzzing::source(source.name, data));
        // Else the fuzzer would only ever see the authentication refuse.
        assert!(
            results
                .iter()
                .any(|result| result.as_ref().is_ok_and(|v| !v.events.is_empty())),
            "no input of {target} makes an event"
        );
    }
}

#[test]
fn image_ref_corpus_replays() {
    replay("image_ref", fuzzing::image_ref);
}

#[test]
fn tag_policy_corpus_replays() {
    replay("tag_policy", fuzzing::tag_policy);
}
