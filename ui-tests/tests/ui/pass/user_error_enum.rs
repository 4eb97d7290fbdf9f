use activity_core::{activity, ActivityError, ErrorTypes};

#[derive(Debug, thiserror::Error, ActivityError)]
enum UploadError {
    #[error("file too large: {0} bytes")]
    #[activity_error(non_retryable)]
    TooLarge(u64),
    #[error("storage unavailable")]
    Unavailable,
    #[error("quota exceeded for {user}")]
    #[activity_error(type = "storage.Quota")]
    Quota { user: String },
}

#[activity(start_to_close = "1m", retry(non_retryable = [UploadError::Quota]))]
async fn upload(bytes: Vec<u8>) -> Result<String, UploadError> {
    if bytes.len() > 10 {
        return Err(UploadError::TooLarge(bytes.len() as u64));
    }
    Err(UploadError::Unavailable)
}

#[derive(Debug, thiserror::Error, ActivityError)]
#[error("invalid input")]
#[activity_error(non_retryable, type = "InvalidInput")]
struct InvalidInput;

fn main() {
    assert_eq!(UploadError::Quota { user: "u".into() }.error_type(), "storage.Quota");
    assert_eq!(InvalidInput.error_type(), "InvalidInput");
    let err: ActivityError = UploadError::TooLarge(11).into();
    assert!(err.to_string().contains("(non-retryable)"));
    let _ = upload(vec![]);
}
