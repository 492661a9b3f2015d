# Thin wrappers around `cargo xtask`; see xtask/src/main.rs.

# Install tools, build, run the local stack in the foreground
up:
    cargo xtask up

# Install tools, check fmt and clippy, run the whole test suite (extra args go to nextest)
test *args:
    cargo xtask test {{args}}

# Install kubectl and nats-server into tools/
tools:
    cargo xtask tools

# Run the cluster-sim benchmark (extra args pass through)
bench *args:
    cargo xtask bench {{args}}

# Same as bench, for now
loadtest *args:
    cargo xtask loadtest {{args}}
