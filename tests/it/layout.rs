//! The architecture rule DESIGN.md states: projections depend on events, never on actors or
//! HTTP. Checked on the source, so a stray `use` fails the build's tests.

#[test]
fn projections_never_depend_on_actors_or_http() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/projections");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        for forbidden in ["crate::actors", "crate::http", "crate::server", "actix"] {
            assert!(
                !source.contains(forbidden),
                "{} mentions `{forbidden}`",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} projection files found");
}
