//! The CEL environment every expression compiles and runs in: the standard library, the
//! cel crate's strings extension and Kubernetes' libraries, built once per process.

use std::sync::{Arc, LazyLock};

use cel_rust::{Env, Program};

use crate::library;

static ENV: LazyLock<Result<Arc<Env>, String>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    library::register(&mut env).map_err(|e| e.to_string())?;
    crate::instrument::register(&mut env).map_err(|e| e.to_string())?;
    Ok(Arc::new(env))
});

/// The shared environment; an error only if registering the libraries failed (a bug).
pub(crate) fn env() -> Result<&'static Arc<Env>, String> {
    ENV.as_ref().map_err(|e| format!("CEL environment: {e}"))
}

/// Parses `source`, with errors in cel-go's format (`ERROR: <input>:1:5: ...`).
pub(crate) fn parse(source: &str) -> Result<Program, String> {
    env()?.compile(source).map_err(|e| e.to_string())
}

/// The `line:column` of expression `id` in `program`, as cel-go prints it (1-based).
pub(crate) fn position(program: &Program, id: u64) -> String {
    let info = program.source_info();
    let Some((start, _)) = info.offset_for(id) else {
        return "1:1".to_owned();
    };
    let before: String = info.source.chars().take(start as usize).collect();
    let line = 1 + before.matches('\n').count();
    let col = 1 + before.rsplit('\n').next().map_or(0, |l| l.chars().count());
    format!("{line}:{col}")
}
