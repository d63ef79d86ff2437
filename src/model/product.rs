//! GPU product names, normalised: the one spelling of a product that the model catalogue
//! interns, whichever source wrote it.
//!
//! The same board reaches allot spelt three ways: NVML's name, which the agent reports
//! (`NVIDIA A100-SXM4-80GB`, `Tesla V100-SXM2-32GB`, `NVIDIA H100 80GB HBM3`); GPU feature
//! discovery's node label `nvidia.com/gpu.product`, which is that name with spaces turned into
//! '-' (`NVIDIA-A100-SXM4-80GB`, and `-SHARED` appended when NVIDIA's device plugin
//! time-slices the GPU); and what a person writes in `allot.dev/gpu-models` or a
//! ScheduleRequest's `gpuModels`. [`normalise`] maps all of them to one name:
//!
//! 1. surrounding whitespace is trimmed;
//! 2. words are separated by spaces or '-' (a run of them counts as one) and joined with one
//!    '-', as GFD joins NVML's words;
//! 3. leading `NVIDIA` and `Tesla` words are dropped: they are brand, not product (NVML put
//!    `Tesla` before older data-centre boards and puts `NVIDIA` before newer ones), so
//!    `Tesla T4` is the `T4` of the traces and a user may write `A100-SXM4-80GB`;
//! 4. trailing `SHARED` words are dropped: GFD's time-slicing mark, the hardware is the same;
//! 5. the result must be letters, digits, '-', '_' and '.', at most [`MAX_MODEL_NAME`] long.
//!
//! So `NVIDIA A100-SXM4-80GB`, `NVIDIA-A100-SXM4-80GB` and `A100-SXM4-80GB` are all
//! `A100-SXM4-80GB`; `NVIDIA H100 80GB HBM3` is `H100-80GB-HBM3`. Words 3 and 4 are dropped
//! only while another word remains. Names already in normal form, such as every trace model
//! (`V100M32`, `T4`, `G1`, `MISC`), are returned unchanged. Case is kept (the first spelling
//! the catalogue sees is the one it shows) but names compare ignoring ASCII case ([`same`]):
//! `A100-PCIE-40GB` and `A100-PCIe-40GB` are one product. A MIG profile GFD appends
//! (`A100-SXM4-40GB-MIG-1g.5gb`) is kept: a slice is not the whole GPU.

/// Longest normalised model name: the longest Kubernetes label value, so that every model
/// allot accepts can also be set as a node's `allot.dev/gpu-model`.
pub const MAX_MODEL_NAME: usize = 63;

/// Leading words that name the brand, not the product (compared ignoring ASCII case).
const BRAND_WORDS: [&str; 2] = ["NVIDIA", "Tesla"];
/// Trailing word GFD appends to `nvidia.com/gpu.product` on time-sliced GPUs.
const SHARED_WORD: &str = "SHARED";

/// Why a text is not a GPU model name. Messages name the value as it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    #[error("{0:?} is not a GPU model name (letters, digits, spaces, '-', '_', '.')")]
    BadName(String),
    #[error(
        "{given:?} is too long for a GPU model name ({len} characters as {normal:?}; at most \
         {MAX_MODEL_NAME})"
    )]
    TooLong {
        given: String,
        normal: String,
        len: usize,
    },
}

/// The normal form of a product name (see the module documentation), or why it has none.
pub fn normalise(text: &str) -> Result<String, ProductError> {
    let given = text.trim();
    let mut words: Vec<&str> = given.split([' ', '-']).filter(|w| !w.is_empty()).collect();
    let brand = |w: &str| BRAND_WORDS.iter().any(|b| w.eq_ignore_ascii_case(b));
    let leading = words.iter().take_while(|w| brand(w)).count();
    words.drain(..leading.min(words.len().saturating_sub(1)));
    while words.len() > 1
        && words
            .last()
            .is_some_and(|w| w.eq_ignore_ascii_case(SHARED_WORD))
    {
        words.pop();
    }
    let normal = words.join("-");
    if !valid_chars(&normal) {
        return Err(ProductError::BadName(given.to_string()));
    }
    let len = normal.len();
    if len > MAX_MODEL_NAME {
        return Err(ProductError::TooLong {
            given: given.to_string(),
            normal,
            len,
        });
    }
    Ok(normal)
}

/// Whether two normalised names are the same product: equal ignoring ASCII case.
pub fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Non-empty, and only letters, digits, '-', '_' and '.'.
fn valid_chars(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real product strings (NVML's names and GFD's labels) and the trace models.
    #[test]
    fn normal_forms() {
        let cases = [
            // NVML form, GFD form and short form of one product: one name.
            ("NVIDIA A100-SXM4-80GB", "A100-SXM4-80GB"),
            ("NVIDIA-A100-SXM4-80GB", "A100-SXM4-80GB"),
            ("A100-SXM4-80GB", "A100-SXM4-80GB"),
            ("NVIDIA H100 80GB HBM3", "H100-80GB-HBM3"),
            ("NVIDIA-H100-80GB-HBM3", "H100-80GB-HBM3"),
            ("H100-80GB-HBM3", "H100-80GB-HBM3"),
            ("Tesla V100-SXM2-32GB", "V100-SXM2-32GB"),
            ("Tesla-V100-SXM2-32GB", "V100-SXM2-32GB"),
            ("Tesla T4", "T4"),
            ("Tesla-T4", "T4"),
            ("NVIDIA A100 80GB PCIe", "A100-80GB-PCIe"),
            ("NVIDIA-A100-80GB-PCIe", "A100-80GB-PCIe"),
            ("NVIDIA GeForce RTX 4090", "GeForce-RTX-4090"),
            ("NVIDIA RTX 6000 Ada Generation", "RTX-6000-Ada-Generation"),
            // GFD's time-slicing mark and MIG profile.
            ("Tesla-T4-SHARED", "T4"),
            (
                "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb",
                "A100-SXM4-40GB-MIG-1g.5gb",
            ),
            // Whitespace around, runs of separators, brand words in any case.
            ("  NVIDIA  A100--SXM4-80GB ", "A100-SXM4-80GB"),
            ("nvidia-tesla-v100", "v100"),
            // A brand word alone is kept: nothing else would name the product.
            ("NVIDIA", "NVIDIA"),
            ("Tesla", "Tesla"),
            ("SHARED", "SHARED"),
            // The trace models and allot's own names stay exactly as they are.
            ("V100M32", "V100M32"),
            ("V100M16", "V100M16"),
            ("P100", "P100"),
            ("T4", "T4"),
            ("A10", "A10"),
            ("G1", "G1"),
            ("G2", "G2"),
            ("G3", "G3"),
            ("MISC", "MISC"),
            ("unknown", "unknown"),
            ("a_b.c", "a_b.c"),
        ];
        for (given, want) in cases {
            assert_eq!(normalise(given).as_deref(), Ok(want), "{given:?}");
            assert_eq!(
                normalise(want).as_deref(),
                Ok(want),
                "idempotent on {want:?}"
            );
        }
    }

    #[test]
    fn bad_names_are_named() {
        let bad = |t: &str| Err(ProductError::BadName(t.to_string()));
        assert_eq!(normalise(""), bad(""));
        assert_eq!(normalise("   "), bad(""));
        assert_eq!(normalise(" - "), bad("-"));
        assert_eq!(normalise("A100\nH100"), bad("A100\nH100"));
        assert_eq!(normalise("A100!"), bad("A100!"));
        assert_eq!(normalise("a/b"), bad("a/b"));
        assert_eq!(
            normalise("A100!").unwrap_err().to_string(),
            "\"A100!\" is not a GPU model name (letters, digits, spaces, '-', '_', '.')"
        );
        let long = format!("NVIDIA {}", "X".repeat(64));
        assert_eq!(
            normalise(&long).unwrap_err().to_string(),
            format!(
                "{long:?} is too long for a GPU model name (64 characters as \"{}\"; at most 63)",
                "X".repeat(64)
            )
        );
        // The brand word does not count: 63 characters after it is fine.
        let at_cap = format!("NVIDIA {}", "X".repeat(63));
        assert_eq!(normalise(&at_cap).map(|n| n.len()), Ok(63));
    }

    #[test]
    fn case_is_kept_but_not_compared() {
        let a = normalise("NVIDIA A100-PCIE-40GB").unwrap();
        let b = normalise("a100-pcie-40gb").unwrap();
        assert_eq!(
            (a.as_str(), b.as_str()),
            ("A100-PCIE-40GB", "a100-pcie-40gb")
        );
        assert!(same(&a, &b));
        assert!(!same("V100M16", "V100M32"));
    }
}
