use activity_core::{activity, ActivityDefinition, ActivityError};

#[activity(name = "billing.v2.send_invoice", start_to_close = "1m")]
async fn send_invoice(to: String) -> Result<(), ActivityError> {
    let _ = to;
    Ok(())
}

fn main() {
    assert_eq!(<send_invoice as ActivityDefinition>::NAME, "billing.v2.send_invoice");
    assert_eq!(send_invoice::NAME, "billing.v2.send_invoice");
}
