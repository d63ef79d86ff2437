//! The learned-policy file loader: the bytes as a policy file's text, and, when they decode,
//! resealed with their own content hash so the checks behind the hash are reached too.
#![no_main]

use allot::policy::learned::{PolicyFile, PolicyFileError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = PolicyFile::parse("policy.json", text);
    // A file as `allot train` writes one: the hash of its content filled in. Loading it back
    // may fail its other checks, never on the hash.
    let Ok(mut file) = serde_json::from_str::<PolicyFile>(text) else {
        return;
    };
    file.hash = file.content_hash();
    let Ok(sealed) = serde_json::to_string_pretty(&file) else {
        return;
    };
    match PolicyFile::parse("sealed.json", &sealed) {
        Ok(back) => assert_eq!(back.hash, file.hash),
        Err(PolicyFileError::Invalid { problem, .. }) => {
            assert!(!problem.contains("does not match"), "{problem}\n{sealed}")
        }
        Err(e) => panic!("a sealed file does not load back: {e}\n{sealed}"),
    }
});
