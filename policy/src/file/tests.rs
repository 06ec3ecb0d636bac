use super::*;

pub(crate) const CLINIC: &str = r#"
[[purpose]]
name = "care"
description = "Treating patients"

[[purpose]]
name = "research.cardiology"

[[purpose]]
name = "stats"
personal = false

[retention]
health = "365d"
"health.heart_rate" = "30d"

[[dataset]]
name = "patients"
subject = "patient_id"
columns = { patient_id = "identity.id", name = "contact.name", heart_rate = "health.heart_rate" }

[[workflow]]
path = "/clinic/workflows/monitor"
purpose = "care"
basis = "contract"

[[workflow]]
path = "/clinic/workflows/study"
purpose = "research.cardiology"
basis = "consent"
redact = "patients"

[[portal]]
path = "/clinic/portals/lookup"
purpose = "care"
basis = "vital_interests"

[[export]]
path = "/clinic/workflows/study"
purpose = "research.cardiology"
basis = "consent"
"#;

#[test]
fn a_valid_policy_loads_whole() {
    let p = Policy::parse("policy.toml", CLINIC).unwrap();
    assert_eq!(p.purposes().len(), 3);
    assert!(!p.purpose(&Purpose::new("stats").unwrap()).unwrap().personal);
    assert!(p.knows_purpose(&Purpose::new("research").unwrap()));
    assert!(!p.knows_purpose(&Purpose::new("marketing").unwrap()));
    let c = |s: &str| Category::new(s).unwrap();
    assert_eq!(
        p.retention_of(&c("health.heart_rate.resting")),
        Some(30 * 86_400)
    );
    assert_eq!(p.retention_of(&c("health.weight")), Some(365 * 86_400));
    assert_eq!(p.retention_of(&c("contact.name")), None);
    let study = p.workflow("/clinic/workflows/study").unwrap();
    assert_eq!(
        (study.basis, study.redact.as_deref()),
        (LegalBasis::Consent, Some("patients"))
    );
    assert_eq!(
        p.portal("/clinic/portals/lookup").unwrap().basis,
        LegalBasis::VitalInterests
    );
    assert_eq!(p.dataset("patients").unwrap().columns.len(), 3);
    assert_eq!(p.source(), CLINIC);
}

#[test]
fn every_problem_is_reported_with_its_line_and_column() {
    let bad = r#"[[purpose]]
name = "care"

[[purpose]]
name = "care"

[retention]
health = "30"

[[dataset]]
name = "patients"
subject = "pid"
columns = { name = "Contact" }

[[workflow]]
path = "/clinic/workflows/monitor"
purpose = "marketing"
basis = "because"
redact = "people"
"#;
    let Err(PolicyError::Invalid { file, problems }) = Policy::parse("p.toml", bad) else {
        panic!("accepted a bad policy");
    };
    assert_eq!(file, "p.toml");
    let places: Vec<(usize, usize)> = problems.iter().map(|p| (p.line, p.column)).collect();
    assert_eq!(
        places,
        vec![
            (5, 8),
            (8, 10),
            (12, 11),
            (13, 20),
            (17, 11),
            (18, 9),
            (19, 10)
        ],
        "{problems:#?}"
    );
    assert!(problems[0].message.contains("declared twice"));
    assert!(problems[1].message.contains("no unit"));
    assert!(problems[2].message.contains("subject column `pid`"));
    assert!(problems[3].message.contains("not a valid category"));
    assert!(
        problems[4]
            .message
            .contains("purpose `marketing` is not declared")
    );
    assert!(
        problems[5]
            .message
            .contains("unknown legal basis `because`")
    );
    assert!(problems[6].message.contains("dataset `people`"));
}

#[test]
fn syntax_errors_and_unknown_keys_are_located() {
    let Err(PolicyError::Invalid { problems, .. }) =
        Policy::parse("p.toml", "[[purpose]]\nname = \"care\"\ncolour = 1\n")
    else {
        panic!("accepted an unknown key");
    };
    assert_eq!((problems[0].line, problems[0].column), (3, 1));
    assert!(problems[0].message.contains("colour"), "{problems:?}");
    let Err(PolicyError::Invalid { problems, .. }) = Policy::parse("p.toml", "[[purpose]\n") else {
        panic!("accepted broken TOML");
    };
    assert_eq!(problems[0].line, 1);
}
