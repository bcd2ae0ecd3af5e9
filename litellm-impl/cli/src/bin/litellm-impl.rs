//! The `litellm-impl` command: see `litellm-impl --help`.

fn main() -> std::process::ExitCode {
    litellm_impl_cli::main()
}
