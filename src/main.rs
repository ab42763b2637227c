//! The `keyward` binary: argument parsing and error reporting around the
//! library. Everything that does real work lives in the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
