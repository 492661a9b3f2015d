//! `gitfleet`: parses arguments, runs the command, prints `error: ...` on failure.

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = gitfleet::Cli::parse();
    let mut stdout = std::io::stdout();
    let code = match gitfleet::run(&cli, &mut stdout).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            cli.error_exit_code()
        }
    };
    std::process::exit(code);
}
