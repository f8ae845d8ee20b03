//! The extended strings library (`charAt`, `indexOf`, `lastIndexOf`, `lowerAscii`,
//! `upperAscii`, `replace`, `split`, `substring`, `trim`, `join`): the cel crate's strings
//! extension provides all of them, with upstream's semantics (code-point indices).

use cel_rust::{DeclarationError, Env, extensions};

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_extension(extensions::strings)
}
