// Generated code can name activity-core through a re-export.
mod framework {
    pub use activity_core as core_reexport;
}

use framework::core_reexport::{activity, ActivityDefinition, ActivityError};

#[activity(crate = "framework::core_reexport", start_to_close = "1s")]
async fn echo(text: String) -> Result<String, ActivityError> {
    Ok(text)
}

fn main() {
    assert_eq!(<echo as ActivityDefinition>::NAME, "echo");
}
