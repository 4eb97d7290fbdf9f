//! Two activities with one name: building a registry (as a worker does at start)
//! fails, naming both definitions with file and line.

use activity_core::{activity, registry::RegistryProblem, ActivityError, Registry};

mod billing {
    use super::*;

    #[activity(name = "send_invoice")]
    pub(crate) async fn send(to: String) -> Result<(), ActivityError> {
        let _ = to;
        Ok(())
    }
}

mod mailing {
    use super::*;

    #[activity]
    pub(crate) async fn send_invoice(to: String, copy: bool) -> Result<(), ActivityError> {
        let _ = (to, copy);
        Ok(())
    }
}

#[activity]
async fn unique() -> Result<(), ActivityError> {
    Ok(())
}

#[test]
fn two_activities_with_one_name_are_an_error_naming_both_definitions() {
    let err = Registry::from_inventory().unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    let RegistryProblem::DuplicateName {
        name,
        first,
        second,
    } = &err.problems[0]
    else {
        panic!("{err}")
    };
    assert_eq!(*name, "send_invoice");
    let mut modules = [first.module_path, second.module_path];
    modules.sort_unstable();
    assert_eq!(
        modules,
        ["duplicate_names::billing", "duplicate_names::mailing"]
    );
    let mut lines = [first.line, second.line];
    lines.sort_unstable();
    assert_eq!(
        lines,
        [9, 19],
        "the lines of the two #[activity] attributes"
    );
    let message = err.to_string();
    assert!(
        message.contains("two activities are named `send_invoice`"),
        "{message}"
    );
    assert!(message.contains("tests/duplicate_names.rs:9"), "{message}");
    assert!(message.contains("tests/duplicate_names.rs:19"), "{message}");
    assert!(message.contains("#[activity(name = "), "{message}");
}

#[test]
fn excluding_one_of_them_resolves_the_conflict() {
    let registry = Registry::builder().exclude("send_invoice").build().unwrap();
    assert_eq!(registry.names().collect::<Vec<_>>(), ["unique"]);
}
