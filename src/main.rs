//! The `warrant` binary: everything lives in the library; this only hands over to the CLI.

/// mimalloc instead of glibc's allocator: under load, glibc's malloc and free took about a
/// fifth of warrant's CPU (see BENCHMARKS.md). Built without transparent huge pages
/// (`no_thp`): mimalloc would otherwise ask for them on its large OS allocations, and each
/// 2 MiB page is resident as soon as one byte of it is touched (16 MiB more at start, about
/// 30 MiB more after the load benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    warrant::cli::main()
}
