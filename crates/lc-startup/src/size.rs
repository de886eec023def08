//! Sizes on command lines (`--job-output-max 8MiB`, `--min-free-disk 1G`),
//! read by the `bytesize` crate: a number of bytes, or a number and a unit;
//! `K`/`KB`, `M`/`MB`, `G`/`GB` are powers of 1000 and `KiB`, `MiB`,
//! `GiB` powers of 1024 (case does not matter).

/// A size option's value in bytes, for clap's `value_parser`; the error
/// says what was expected.
pub fn parse_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|e| format!("{text:?} is not a size such as 1G, 512MiB or 4096 ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_documented() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1G"), Ok(1_000_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("8 MiB"), Ok(8 << 20));
        assert_eq!(parse_size("2k"), Ok(2000));
        for bad in ["", "G", "-1", "1 parsec", "1.5.5G"] {
            let err = parse_size(bad).expect_err(bad);
            assert!(err.contains("is not a size"), "{bad}: {err}");
        }
    }
}
