//! `lorry`: the mirror tool. Everything is in `lc_lorry`; this only exits
//! with its code.

fn main() {
    std::process::exit(lc_lorry::main());
}
