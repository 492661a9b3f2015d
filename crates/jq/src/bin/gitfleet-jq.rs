//! `gitfleet-jq`: the helper that evaluates jqPathExpressions for the services (see the
//! `gitfleet-jq` crate): caps its own address space, then answers JSON lines on stdin.

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    if let (Some(flag), Some(value)) = (args.next(), args.next())
        && flag == "--memory-bytes"
        && let Ok(bytes) = value.parse::<u64>()
    {
        rlimit::setrlimit(rlimit::Resource::AS, bytes, bytes)?;
    }
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    gitfleet_jq::serve(stdin, std::io::BufWriter::new(stdout))
}
