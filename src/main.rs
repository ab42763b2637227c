//! The `keyward` binary: argument parsing and error reporting around the
//! library. Everything that does real work lives in the library.

mod cli;

/// The verify path allocates a few small objects per request on two busy
/// threads, and hyper's read buffers made glibc's allocator consolidate
/// its free lists under load: mimalloc's thread-local heaps cost less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
