//! The `warrant` binary: everything lives in the library; this only hands over to the CLI.

/// mimalloc instead of glibc's allocator: under load, glibc's malloc and free took about a
/// fifth of warrant's CPU (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    warrant::cli::main()
}
