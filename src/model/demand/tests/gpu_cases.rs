//! The GPU part of a demand, case by case: whole GPUs or a share (pods, JSON, snapshot files,
//! ScheduleRequests) and a trace's `num_gpu` / `gpu_milli` pair, each with what it parses to
//! or the error it gives.

use super::*;

/// Every GPU case `gpu_edge_cases` checks, with its outcome.
pub(super) fn cases() -> Vec<(Gpus<'static>, Want<GpuDemand>)> {
    use GpuDemand::{None as No, Shared, Whole};
    const MILLI: Field = Field::GpuMilli;
    const GPUS: Field = Field::Gpus;
    vec![
        // whole GPUs or a share (pods, JSON, snapshot files, ScheduleRequests)
        (ws(None, None), Ok(No)),
        (ws(Some("0"), None), Ok(No)),
        (ws(Some("1"), None), Ok(Whole { count: 1 })),
        (ws(Some("16"), None), Ok(Whole { count: 16 })),
        (
            ws(Some("17"), None),
            Err((
                GPUS,
                "TooManyGpus",
                "gpus: 17 GPUs exceed the 16 one node can hold",
            )),
        ),
        (
            ws(Some("1.5"), None),
            Err((
                GPUS,
                "InvalidQuantity",
                "gpus: \"1.5\" is not a whole number",
            )),
        ),
        (
            ws(Some("-1"), None),
            Err((GPUS, "InvalidQuantity", "\"-1\" is not a whole number >= 0")),
        ),
        (
            ws(Some("99999999999999999999999"), None),
            Err((GPUS, "InvalidQuantity", "is too large")),
        ),
        (ws(None, Some("1")), Ok(Shared { milli: 1 })),
        (ws(None, Some(" 999 ")), Ok(Shared { milli: 999 })),
        (
            ws(None, Some("0")),
            Err((
                MILLI,
                "InvalidGpuMilli",
                "gpuMilli: 0 is out of range; a share of one GPU is 1..999 milli (whole GPUs are asked for with gpus)",
            )),
        ),
        (
            ws(None, Some("1000")),
            Err((MILLI, "InvalidGpuMilli", "gpuMilli: 1000 is out of range")),
        ),
        (
            ws(None, Some("99999999999")),
            Err((MILLI, "InvalidGpuMilli", "99999999999 is out of range")),
        ),
        (
            ws(None, Some("abc")),
            Err((
                MILLI,
                "InvalidGpuMilli",
                "gpuMilli: \"abc\" is not a whole number",
            )),
        ),
        (
            ws(None, Some("250m")),
            Err((MILLI, "InvalidGpuMilli", "\"250m\" is not a whole number")),
        ),
        (
            ws(Some("1"), Some("500")),
            Err((
                MILLI,
                "GpuAndGpuMilli",
                "gpuMilli: 500 conflicts with gpus: 1; ask for a share of one GPU or for whole GPUs, not both",
            )),
        ),
        (
            ws(Some("0"), Some("500")),
            Err((MILLI, "GpuAndGpuMilli", "500 conflicts with gpus: 0")),
        ),
        (
            Gpus::WholeOrShare {
                whole: Some(Number::Value(2)),
                share: None,
            },
            Ok(Whole { count: 2 }),
        ),
        (
            Gpus::WholeOrShare {
                whole: None,
                share: Some(Number::Value(1000)),
            },
            Err((MILLI, "InvalidGpuMilli", "1000 is out of range")),
        ),
        // a trace's num_gpu / gpu_milli pair
        (pd("0", None), Ok(No)),
        (pd("0", Some("0")), Ok(No)),
        (pd("3", None), Ok(Whole { count: 3 })),
        (pd("8", Some("1000")), Ok(Whole { count: 8 })),
        (
            pd("17", Some("1000")),
            Err((GPUS, "TooManyGpus", "gpus: 17 GPUs exceed")),
        ),
        (pd("1", Some("460")), Ok(Shared { milli: 460 })),
        (
            pd("2", Some("500")),
            Err((
                MILLI,
                "InvalidGpuMilli",
                "gpuMilli: 500 milli is a share of one GPU, but gpus is 2",
            )),
        ),
        (
            pd("0", Some("500")),
            Err((
                MILLI,
                "InvalidGpuMilli",
                "gpuMilli: 500 milli per GPU, but gpus is 0",
            )),
        ),
        (
            pd("0", Some("1000")),
            Err((
                MILLI,
                "InvalidGpuMilli",
                "1000 milli per GPU, but gpus is 0",
            )),
        ),
        (
            pd("1", Some("0")),
            Err((MILLI, "InvalidGpuMilli", "gpuMilli: 0 is out of range")),
        ),
        (
            pd("1", Some("1500")),
            Err((MILLI, "InvalidGpuMilli", "1500 is out of range")),
        ),
        (
            pd("2", Some("1500")),
            Err((MILLI, "InvalidGpuMilli", "1500 is out of range")),
        ),
        (
            pd("x", None),
            Err((GPUS, "InvalidQuantity", "gpus: \"x\" is not a whole number")),
        ),
        (
            pd("1", Some("")),
            Err((
                MILLI,
                "InvalidGpuMilli",
                "gpuMilli: \"\" is not a whole number",
            )),
        ),
    ]
}
