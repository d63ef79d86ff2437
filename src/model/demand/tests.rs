//! The demand parser's edge cases, tested once for every source.
use super::*;

mod gpu_cases;

const NAMES: FieldNames = FieldNames {
    cpu: "cpu",
    memory: "memory",
    gpus: "gpus",
    gpu_milli: "gpuMilli",
    models: "gpuModels",
};

fn parts(gpus: Gpus<'static>) -> DemandParts<'static> {
    DemandParts {
        names: NAMES,
        cpu: Amount::Quantity("1"),
        memory: Amount::Quantity("1Gi"),
        gpus,
        models: None,
    }
}

fn ws(whole: Option<&'static str>, share: Option<&'static str>) -> Gpus<'static> {
    Gpus::WholeOrShare {
        whole: whole.map(Number::Text),
        share: share.map(Number::Text),
    }
}

fn pd(num_gpu: &'static str, milli: Option<&'static str>) -> Gpus<'static> {
    Gpus::PerDevice {
        num_gpu: Number::Text(num_gpu),
        milli: milli.map(Number::Text),
    }
}

/// An expected error: the field, its reason label and a piece of its message.
type Want<T> = Result<T, (Field, &'static str, &'static str)>;

fn check<T: PartialEq + std::fmt::Debug>(
    case: &dyn std::fmt::Debug,
    got: Result<T, DemandError>,
    want: &Want<T>,
) {
    match (got, want) {
        (Ok(got), Ok(want)) => assert_eq!(&got, want, "{case:?}"),
        (Err(e), Err((field, reason, text))) => {
            assert_eq!((e.field, e.reason()), (*field, *reason), "{case:?}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(text), "{case:?}: {msg:?} lacks {text:?}");
        }
        (got, want) => panic!("{case:?}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn gpu_edge_cases() {
    let cases = gpu_cases::cases();
    let catalog = ModelCatalog::default();
    for (gpus, want) in &cases {
        let got = parse_demand(parts(*gpus), Catalog::Lookup(&catalog)).map(|d| d.gpu);
        check(gpus, got, want);
    }
}

#[test]
fn quantity_edge_cases() {
    const MIB: u64 = 1 << 20;
    let cpu: Vec<(Amount<'static>, Want<u64>)> = vec![
        (Amount::Quantity("500m"), Ok(500)),
        (Amount::Quantity("2"), Ok(2000)),
        (
            Amount::Quantity("-1"),
            Err((
                Field::Cpu,
                "InvalidQuantity",
                "cpu: quantity \"-1\" is negative",
            )),
        ),
        (
            Amount::Quantity("lots"),
            Err((Field::Cpu, "InvalidQuantity", "cpu: quantity \"lots\"")),
        ),
        (
            Amount::Units {
                text: "4000",
                unit: 1,
            },
            Ok(4000),
        ),
        (
            Amount::Units {
                text: "4000.5",
                unit: 1,
            },
            Err((
                Field::Cpu,
                "InvalidQuantity",
                "cpu: \"4000.5\" is not a whole number",
            )),
        ),
        (Amount::Value(7), Ok(7)),
    ];
    for (amount, want) in &cpu {
        let p = DemandParts {
            cpu: *amount,
            ..parts(ws(None, None))
        };
        let got = parse_demand(p, Catalog::Lookup(&ModelCatalog::default())).map(|d| d.cpu_milli);
        check(amount, got, want);
    }
    let memory: Vec<(Amount<'static>, Want<u64>)> = vec![
        (Amount::Quantity("64Gi"), Ok(64 << 30)),
        (
            Amount::Quantity("64GB"),
            Err((
                Field::Memory,
                "InvalidQuantity",
                "memory: quantity \"64GB\" has unknown suffix \"GB\"",
            )),
        ),
        (
            Amount::Quantity(""),
            Err((Field::Memory, "InvalidQuantity", "memory: empty quantity")),
        ),
        (
            Amount::Units {
                text: "1024",
                unit: MIB,
            },
            Ok(1 << 30),
        ),
        (
            Amount::Units {
                text: "99999999999999",
                unit: MIB,
            },
            Err((
                Field::Memory,
                "InvalidQuantity",
                "memory: \"99999999999999\" is too large",
            )),
        ),
        (Amount::Value(1), Ok(1)),
    ];
    for (amount, want) in &memory {
        let p = DemandParts {
            memory: *amount,
            ..parts(ws(None, None))
        };
        let got =
            parse_demand(p, Catalog::Lookup(&ModelCatalog::default())).map(|d| d.memory_bytes);
        check(amount, got, want);
    }
}

#[test]
fn model_edge_cases() {
    let list = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let (a100_list, empty_name, two) = (list(&["A100"]), list(&[""]), list(&["A100", "T4"]));
    let (nvml, long) = (list(&["Tesla T4"]), vec!["X".repeat(64)]);
    let mut known = ModelCatalog::default();
    let a100 = known.intern("A100").unwrap();
    let t4 = known.intern("T4").unwrap();
    const MODELS: Field = Field::Models;
    let cases: Vec<(Models<'_>, Want<ModelSet>)> = vec![
        (
            Models::Separated("A100, H100", ','),
            Ok(ModelSet::only(a100)),
        ),
        // a name no node has is valid and matches nothing
        (Models::Separated("H100", ','), Ok(ModelSet::EMPTY)),
        (Models::List(&two), Ok(ModelSet::only(a100).with(t4))),
        (
            Models::Separated(" , ", ','),
            Err((
                MODELS,
                "InvalidGpuModels",
                "gpuModels: \",\" names no GPU model",
            )),
        ),
        // Any spelling of a product (crate::model::product): NVML's, GFD's, any case.
        (
            Models::Separated("NVIDIA A100, nvidia-t4", ','),
            Ok(ModelSet::only(a100).with(t4)),
        ),
        (Models::List(&nvml), Ok(ModelSet::only(t4))),
        (
            Models::Separated("a!b", ','),
            Err((
                MODELS,
                "InvalidGpuModels",
                "gpuModels: \"a!b\" is not a GPU model name",
            )),
        ),
        (
            Models::List(&long),
            Err((
                MODELS,
                "InvalidGpuModels",
                "is too long for a GPU model name (64 characters",
            )),
        ),
        (
            Models::Separated("A100|a/b", '|'),
            Err((
                MODELS,
                "InvalidGpuModels",
                "\"a/b\" is not a GPU model name",
            )),
        ),
        (
            Models::List(&empty_name),
            Err((MODELS, "InvalidGpuModels", "\"\" is not a GPU model name")),
        ),
    ];
    for (models, want) in &cases {
        let p = DemandParts {
            models: Some(*models),
            ..parts(ws(Some("1"), None))
        };
        check(
            models,
            parse_demand(p, Catalog::Lookup(&known)).map(|d| d.models),
            want,
        );
    }

    // Only a pod that requests a GPU may name models.
    let p = DemandParts {
        models: Some(Models::List(&a100_list)),
        ..parts(ws(None, None))
    };
    let got = parse_demand(p, Catalog::Lookup(&known)).map(|d| d.models);
    let want = Err((
        MODELS,
        "InvalidGpuModels",
        "gpuModels: \"A100\" is set but no GPU is requested (set gpus or gpuMilli)",
    ));
    check(&p, got, &want);

    // Interning grows the catalog, up to MAX_MODELS names.
    let mut catalog = ModelCatalog::default();
    let p = DemandParts {
        models: Some(Models::Separated("V100M16|V100M32", '|')),
        ..parts(ws(None, Some("500")))
    };
    let d = parse_demand(p, Catalog::Intern(&mut catalog)).unwrap();
    assert_eq!(catalog.len(), 2);
    assert!(d.models.contains(catalog.lookup("V100M32").unwrap()));
    for i in catalog.len()..MAX_MODELS {
        catalog.intern(&format!("M{i}")).unwrap();
    }
    let p = DemandParts {
        models: Some(Models::List(&a100_list)),
        ..p
    };
    let got = parse_demand(p, Catalog::Intern(&mut catalog)).map(|d| d.models);
    check(
        &p,
        got,
        &Err((
            MODELS,
            "InvalidGpuModels",
            "more than 64 distinct GPU models",
        )),
    );
}

#[test]
fn the_first_bad_field_is_reported() {
    let p = DemandParts {
        cpu: Amount::Quantity("x"),
        memory: Amount::Quantity("y"),
        ..parts(ws(Some("99"), Some("0")))
    };
    let e = parse_demand(p, Catalog::Lookup(&ModelCatalog::default())).unwrap_err();
    assert_eq!((e.field, e.name), (Field::Cpu, "cpu"));
    let p = DemandParts {
        cpu: Amount::Value(1),
        ..p
    };
    let e = parse_demand(p, Catalog::Lookup(&ModelCatalog::default())).unwrap_err();
    assert_eq!((e.field, e.name), (Field::Memory, "memory"));
}
