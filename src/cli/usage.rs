//! Input the user must fix before anything can run: a bad flag value, a trace, snapshot,
//! policy file, policy folder or checkpoint that cannot be used. Such errors exit with 2, as
//! clap's own usage errors do; failures while running exit with 1 ([`exit_code`]).

use std::process::ExitCode;

/// A flag value allot refuses after clap has parsed it (a seed list, a policy list, a
/// hyperparameter out of range): the message names the flag and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Return early with a [`UsageError`] formatted like `format!`.
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::cli::usage::UsageError(format!($($arg)*))))
    };
}
pub(crate) use usage;

/// Make the directory `dir` that `flag` names, before the run it is for, so that a run never
/// ends in "cannot create" once its work is done: a path that cannot be one is bad input.
pub fn create_output_dir(flag: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        usage!("{flag} {}: cannot create it: {e}", dir.display());
    }
    Ok(())
}

/// The process exit code for `err`: 2 when it is bad input (anywhere in its chain), else 1.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    let bad_input = err.chain().any(|e| {
        #[cfg(feature = "k8s")]
        if e.is::<crate::extender::policies::PolicyDirError>() {
            return true;
        }
        e.is::<UsageError>()
            || e.is::<crate::sim::trace::TraceError>()
            || e.is::<crate::policy::learned::PolicyFileError>()
            || e.is::<crate::policy::UnknownPolicy>()
            || e.is::<crate::learn::checkpoint::CheckpointError>()
            || e.downcast_ref::<crate::learn::TrainError>()
                .is_some_and(|t| !matches!(t, crate::learn::TrainError::Checkpoint(_)))
    });
    if bad_input {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuse() -> anyhow::Result<()> {
        usage!("--seeds: {:?} is not a seed", "x");
    }

    #[test]
    fn usage_errors_exit_2_even_with_context_and_other_failures_exit_1() {
        let err = refuse().unwrap_err().context("reading the flags");
        assert_eq!(exit_code(&err), ExitCode::from(2));
        assert_eq!(
            format!("{:#}", err),
            "reading the flags: --seeds: \"x\" is not a seed"
        );
        assert_eq!(exit_code(&anyhow::anyhow!("disk full")), ExitCode::FAILURE);
    }
}
