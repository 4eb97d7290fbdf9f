use activity_core::ActivityError;

// `type` belongs on each variant of an enum.
#[derive(Debug, thiserror::Error, ActivityError)]
#[activity_error(type = "payments.Error")]
enum ChargeError {
    #[error("declined")]
    #[activity_error(type = "")]
    Declined,
    #[error("fraud")]
    #[activity_error(crate = "activity_core")]
    Fraud,
}

#[derive(Debug, thiserror::Error, ActivityError)]
#[error("refund failed")]
#[activity_error(type = 42)]
struct RefundError;

fn main() {}
