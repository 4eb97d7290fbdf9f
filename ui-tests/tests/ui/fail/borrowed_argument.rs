use std::borrow::Cow;

use activity_core::{activity, ActivityError};

#[activity]
async fn greet(name: &str) -> Result<String, ActivityError> {
    Ok(name.to_owned())
}

#[activity]
async fn shout<'a>(text: Cow<'static, str>, suffix: Cow<'a, str>) -> Result<String, ActivityError> {
    Ok(format!("{text}{suffix}"))
}

fn main() {}
