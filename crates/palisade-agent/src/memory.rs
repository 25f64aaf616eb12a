//! Giving memory back to the system after a large input.
//!
//! Parsing a large manifest or a first list allocates and frees many small
//! objects; glibc's allocator keeps the freed pages in its heaps, so the
//! agent's resident memory stayed at its peak after the input was gone
//! (a 50 MB file: 209 MiB resident after its removal, with under 10 MB
//! live). `malloc_trim` returns those pages.

/// Inputs of at least this many bytes, or batches of at least this many
/// object changes, are large enough to trim after.
pub const LARGE_BYTES: u64 = 1 << 20;
/// See [`LARGE_BYTES`].
pub const LARGE_CHANGES: usize = 1_000;

/// Returns the free pages of the allocator's heaps to the system (glibc's
/// `malloc_trim`; elsewhere nothing).
#[allow(unsafe_code, reason = "malloc_trim has no safe wrapper; it takes a size and has no preconditions")]
pub fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases memory the allocator holds free; it
    // has no preconditions and touches no memory the program uses.
    unsafe {
        libc::malloc_trim(0);
    }
}
