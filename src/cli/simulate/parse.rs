//! The list flags of `allot simulate` (and `allot train`'s seeds): `--policy`, `--seeds`,
//! `--threads`, each checked as given, with a usage error naming the flag.

use super::super::usage::usage;
use crate::policy::PolicyKind;

/// `fgd,bestfit`, `paper` or `all`; duplicates are dropped, order kept.
pub fn parse_policies(text: &str) -> anyhow::Result<Vec<PolicyKind>> {
    let mut out: Vec<PolicyKind> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let kinds: Vec<PolicyKind> = match part {
            "all" => PolicyKind::ALL.to_vec(),
            "paper" => PolicyKind::PAPER.to_vec(),
            name => vec![name.parse()?],
        };
        for k in kinds {
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    if out.is_empty() {
        usage!("--policy is empty; name at least one policy");
    }
    Ok(out)
}

/// Most seeds one run accepts: a guard against a typo like `42-5100000`.
const MAX_SEEDS: usize = 10_000;

/// `--threads`: a count of at least 1.
pub(super) fn parse_threads(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => {
            Err("at least one thread is needed; leave --threads out to use one per core".into())
        }
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a whole number of threads")),
    }
}

/// `42-51`, `1,5,9`, or a mix; each seed once, in the order given. An error names the part
/// of the list that is wrong, as given.
pub fn parse_seeds(text: &str) -> anyhow::Result<Vec<u64>> {
    parse_seeds_for("--seeds", text)
}

/// [`parse_seeds`] for the flag `flag`, which errors name.
pub fn parse_seeds_for(flag: &str, text: &str) -> anyhow::Result<Vec<u64>> {
    let mut out: Vec<u64> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |s: &str| -> anyhow::Result<u64> {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                usage!("{flag}: {part:?} is not a non-negative integer or a range like 42-51");
            }
            match s.parse() {
                Ok(n) => Ok(n),
                Err(_) => usage!("{flag}: {part:?} is larger than a seed can be"),
            }
        };
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if lo > hi {
            usage!("{flag}: range {part:?} is empty (start > end)");
        }
        if hi - lo >= MAX_SEEDS as u64 || out.len() + ((hi - lo) as usize) >= MAX_SEEDS {
            usage!("{flag}: more than {MAX_SEEDS} seeds");
        }
        out.extend((lo..=hi).filter(|s| !out.contains(s)).collect::<Vec<_>>());
    }
    if out.is_empty() {
        usage!("{flag} is empty; give e.g. 42-51");
    }
    Ok(out)
}
