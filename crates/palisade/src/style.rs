//! Terminal styling: colour only when stdout is a terminal.

use std::io::IsTerminal as _;

/// Whether to colour standard output.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    colour: bool,
}

impl Style {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset.
    #[must_use]
    pub fn detect() -> Self {
        Style { colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() }
    }

    /// No colour (tests, pipes).
    #[must_use]
    pub fn plain() -> Self {
        Style { colour: false }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    /// Green.
    #[must_use]
    pub fn good(self, text: &str) -> String {
        self.paint("32", text)
    }

    /// Red.
    #[must_use]
    pub fn bad(self, text: &str) -> String {
        self.paint("31", text)
    }

    /// Yellow.
    #[must_use]
    pub fn warn(self, text: &str) -> String {
        self.paint("33", text)
    }

    /// Bold.
    #[must_use]
    pub fn strong(self, text: &str) -> String {
        self.paint("1", text)
    }
}
