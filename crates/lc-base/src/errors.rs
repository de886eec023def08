//! An error's cause chain as one line of text.
//!
//! Many errors (reqwest's, io's inside them) say only the outermost
//! problem; the reason, such as which certificate check failed, is in
//! their `source()` chain.

use std::error::Error;

/// `err` and its causes, outermost first, joined by `": "`.
pub fn chain(err: &dyn Error) -> String {
    with_causes(err.to_string(), err)
}

/// `head` followed by the causes of `err` (not `err`'s own message), joined
/// by `": "`. A cause whose text is already said is left out: many errors
/// repeat their source's message.
pub fn with_causes(head: String, err: &dyn Error) -> String {
    let mut text = head;
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn Error + 'static))
        }
    }

    #[test]
    fn causes_are_joined_outermost_first_without_repeats() {
        let err = Layer(
            "request failed: connection refused",
            Some(Box::new(Layer(
                "connection refused",
                Some(Box::new(Layer("certificate expired", None))),
            ))),
        );
        assert_eq!(
            chain(&err),
            "request failed: connection refused: certificate expired"
        );
        assert_eq!(
            with_causes("GET /x".into(), &err),
            "GET /x: connection refused: certificate expired"
        );
        assert_eq!(with_causes(String::new(), &Layer("alone", None)), "");
        assert_eq!(chain(&Layer("alone", None)), "alone");
    }
}
