//! Telling a damaged credentials file from a machine in trouble. Only the
//! file's *content* (a wrong header, a failed `quick_check`, SQLite's
//! "corrupt"/"not a database", the library refusing the data) is corruption,
//! which moves the credentials aside. Everything else — out of descriptors,
//! disk full, permissions, I/O errors, anything unrecognised — leaves them
//! where they are: the org waits in state `error` and is retried.

use super::EngineError;

/// Is the process out of file descriptors right now?
pub fn descriptors_exhausted() -> bool {
    match std::fs::File::open("/dev/null") {
        Ok(_) => false,
        Err(e) => matches!(e.raw_os_error(), Some(23 | 24)), // ENFILE, EMFILE
    }
}

/// An I/O error reading the file: only a short read is the file's fault.
pub fn io(what: &str, e: &std::io::Error) -> EngineError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            if !descriptors_exhausted() =>
        {
            EngineError::Corrupt(format!("{what}: {e}"))
        }
        _ => EngineError::Unavailable(format!("{what}: {e}")),
    }
}

/// A SQLite error from our own checks: corrupt or not-a-database are the
/// content; every other code (cannot open, I/O, full, busy, no memory …)
/// is the machine.
pub fn sqlite(what: &str, e: &rusqlite::Error) -> EngineError {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::DatabaseCorrupt | C::NotADatabase) if !descriptors_exhausted() => {
            EngineError::Corrupt(format!("{what}: {e}"))
        }
        _ => EngineError::Unavailable(format!("{what}: {e}")),
    }
}

/// What the library's own words say about a file our checks passed: it is
/// corruption when the file existed before and the library calls the data
/// bad (malformed, undecodable); otherwise, and whenever descriptors are
/// exhausted, the machine is at fault.
pub fn library(what: &str, text: &str, existed: bool) -> EngineError {
    let t = text.to_ascii_lowercase();
    const MACHINE: [&str; 12] = [
        "too many open files",
        "unable to open",
        "no space",
        "disk i/o",
        "disk is full",
        "i/o error",
        "permission",
        "read-only",
        "readonly",
        "out of memory",
        "locked",
        "busy",
    ];
    const CONTENT: [&str; 6] = [
        "malformed",
        "not a database",
        "corrupt",
        "serializ",
        "deserializ",
        "validation",
    ];
    let machine = MACHINE.iter().any(|m| t.contains(m));
    let content = CONTENT.iter().any(|m| t.contains(m));
    if existed && content && !machine && !descriptors_exhausted() {
        EngineError::Corrupt(format!("{what}: {text}"))
    } else {
        EngineError::Unavailable(format!("{what}: {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_errors_are_never_corruption() {
        for errno in [1, 5, 11, 12, 13, 16, 23, 24, 28, 30, 122] {
            let e = std::io::Error::from_raw_os_error(errno);
            assert!(
                matches!(io("wa.db cannot be read", &e), EngineError::Unavailable(_)),
                "errno {errno}: {e}"
            );
        }
        let short = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert!(matches!(io("x", &short), EngineError::Corrupt(_)));
    }

    #[test]
    fn sqlite_codes_split_content_from_machine() {
        let err = |code: i32| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        use rusqlite::ffi as f;
        for code in [f::SQLITE_CORRUPT, f::SQLITE_NOTADB] {
            assert!(matches!(sqlite("x", &err(code)), EngineError::Corrupt(_)));
        }
        for code in [
            f::SQLITE_CANTOPEN,
            f::SQLITE_IOERR,
            f::SQLITE_FULL,
            f::SQLITE_PERM,
            f::SQLITE_NOMEM,
            f::SQLITE_BUSY,
            f::SQLITE_READONLY,
        ] {
            assert!(
                matches!(sqlite("x", &err(code)), EngineError::Unavailable(_)),
                "code {code}"
            );
        }
    }

    #[test]
    fn the_library_words_decide_and_unknown_means_keep() {
        assert!(matches!(
            library("x", "database disk image is malformed", true),
            EngineError::Corrupt(_)
        ));
        assert!(matches!(
            library("x", "serialization/deserialization error", true),
            EngineError::Corrupt(_)
        ));
        // A new file cannot be corrupt credentials.
        assert!(matches!(
            library("x", "database disk image is malformed", false),
            EngineError::Unavailable(_)
        ));
        for text in [
            "database connection error: unable to open database file",
            "Too many open files (os error 24)",
            "database or disk is full",
            "attempt to write a readonly database",
            "something nobody anticipated",
        ] {
            assert!(
                matches!(library("x", text, true), EngineError::Unavailable(_)),
                "{text}"
            );
        }
    }
}
