//! Start-up refusals of a SQLite file (docs/semantics.md §5): a file that cannot be
//! the engine's database is refused when the engine opens, naming the file and
//! what to do, and is left as it was; it never becomes a fresh, empty engine and
//! never fails later, at its first write.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use activity_core::{
    options::ActivityOptions, payload::Payload, protocol::ScheduleActivityRequest,
};
use activity_engine::{store::StoreError, Engine, EngineConfig, EngineError};

fn store_error(result: Result<Engine, EngineError>) -> StoreError {
    match result {
        Ok(_) => panic!("the engine opened a file it must refuse"),
        Err(EngineError::Store(err)) => err,
        Err(other) => panic!("expected a store error, got {other}"),
    }
}

fn assert_names(err: &StoreError, path: &Path, words: &[&str]) {
    let message = err.to_string();
    assert!(
        message.contains(&format!("`{}`", path.display())),
        "the error names the file: {message}"
    );
    for word in words {
        assert!(message.contains(word), "`{word}` in: {message}");
    }
}

/// A database written by the engine, closed (its log checkpointed into the file).
async fn engine_file(dir: &Path) -> PathBuf {
    let path = dir.join("engine.db");
    let engine = Engine::open(EngineConfig::file(&path)).await.unwrap();
    for i in 0..50 {
        let request = ScheduleActivityRequest::new(
            "work",
            vec![Payload::json(&i).unwrap()],
            ActivityOptions::new()
                .task_queue("q")
                .start_to_close(Duration::from_secs(5)),
        )
        .with_activity_id(format!("a-{i}"));
        engine.protocol().schedule_activity(request).await.unwrap();
    }
    engine.close().await;
    drop(engine);
    path
}

#[tokio::test]
async fn an_empty_file_is_refused_and_left_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("engine.db");
    std::fs::write(&path, b"").unwrap();

    let err = store_error(Engine::open(EngineConfig::file(&path)).await);
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert_names(&err, &path, &["empty (0 bytes)", "remove it"]);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        0,
        "nothing written"
    );

    // A path that does not exist yet is a new engine.
    let fresh = dir.path().join("new.db");
    let engine = Engine::open(EngineConfig::file(&fresh)).await.unwrap();
    engine.close().await;
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let text = "these are not the pages of a database\n".repeat(200);
    std::fs::write(&path, &text).unwrap();

    let err = store_error(Engine::open(EngineConfig::file(&path)).await);
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert_names(&err, &path, &["is not a SQLite database"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "untouched");
}

#[tokio::test]
async fn a_database_with_damaged_pages_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = engine_file(dir.path()).await;
    // The engine's own file opens again.
    let engine = Engine::open(EngineConfig::file(&path)).await.unwrap();
    engine.close().await;
    drop(engine);

    // Overwrite every page but the first (the header and the schema): the tables'
    // pages are garbage now.
    let mut bytes = std::fs::read(&path).unwrap();
    let page = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    assert!(bytes.len() >= 3 * page, "the file has table pages");
    for (i, byte) in bytes[page..].iter_mut().enumerate() {
        *byte = (i % 251) as u8 ^ 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();

    let err = store_error(Engine::open(EngineConfig::file(&path)).await);
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert_names(&err, &path, &["restore it from a backup"]);
    assert!(!err.is_retryable());
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "left as it was");
}

/// A read-only mount needs a tmpfs mounted by this (root) process; where mounting
/// is not allowed the test says so and checks nothing else.
#[tokio::test]
async fn a_read_only_mount_is_named_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("ro");
    std::fs::create_dir(&mount).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new("mount")
            .args(args)
            .output()
            .is_ok_and(|out| out.status.success())
    };
    let target = mount.to_str().unwrap();
    if !run(&["-t", "tmpfs", "-o", "size=16m", "tmpfs", target]) {
        eprintln!("skipped: this process may not mount a tmpfs");
        return;
    }
    struct Unmount<'a>(&'a str);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(target);
    let path = engine_file(&mount).await;
    assert!(
        run(&["-o", "remount,ro", target]),
        "remounting read-only works where mounting does"
    );

    let err = store_error(Engine::open(EngineConfig::file(&path)).await);
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_names(&err, &path, &["read-only"]);
}
