//! Chat text rules (chat path, pure): trimming, control and bidi characters, the length limit,
//! the word filter (masking) and what a reaction may be. Text stays plain text: the pages never
//! interpret it as HTML, so nothing here escapes markup.

use std::collections::BTreeSet;

use super::ChatError;

/// Longest filter word, in characters.
pub const MAX_FILTER_WORD: usize = 32;
/// Longest reaction, in bytes (an emoji ZWJ sequence fits).
pub const MAX_EMOJI_BYTES: usize = 32;

/// Bidirectional embedding/override/isolate controls: they would garble the rest of the page.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Cleans a chat message: control characters become spaces, bidi controls are removed, then
/// the text is trimmed and its length (in characters) checked.
pub fn clean_text(raw: &str, max_chars: usize) -> Result<String, ChatError> {
    let cleaned: String = raw
        .chars()
        .filter(|c| !is_bidi_control(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = cleaned.trim();
    if trimmed.is_empty() {
        return Err(ChatError::bad_request("the message is empty"));
    }
    if trimmed.chars().count() > max_chars {
        return Err(ChatError::TooLong {
            max: max_chars,
            unit: "characters",
        });
    }
    Ok(trimmed.to_owned())
}

/// Checks a reaction: one short emoji (sequence), no letters, digits, spaces or controls.
pub fn clean_emoji(raw: &str) -> Result<String, ChatError> {
    let emoji = raw.trim();
    if emoji.is_empty() {
        return Err(ChatError::bad_request("the reaction is empty"));
    }
    if emoji.len() > MAX_EMOJI_BYTES {
        return Err(ChatError::TooLong {
            max: MAX_EMOJI_BYTES,
            unit: "bytes",
        });
    }
    let plausible = !emoji.is_ascii()
        && !emoji.chars().any(|c| {
            c.is_ascii_alphanumeric() || c.is_whitespace() || c.is_control() || is_bidi_control(c)
        });
    if !plausible {
        return Err(ChatError::bad_request("a reaction is one emoji"));
    }
    Ok(emoji.to_owned())
}

/// The room's word filter: whole words (runs of letters and digits), compared without case,
/// are replaced by as many `*` as they have characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordFilter {
    words: BTreeSet<String>,
}

impl WordFilter {
    /// Checks and normalises a filter word.
    pub fn normalise(word: &str) -> Result<String, ChatError> {
        let word = word.trim();
        if word.chars().count() > MAX_FILTER_WORD {
            return Err(ChatError::TooLong {
                max: MAX_FILTER_WORD,
                unit: "characters",
            });
        }
        if word.is_empty() || !word.chars().all(char::is_alphanumeric) {
            return Err(ChatError::bad_request(
                "a filter word is one word of letters and digits",
            ));
        }
        Ok(word.to_lowercase())
    }

    /// Adds a word (up to `max_words`); false when it was already there.
    pub fn add(&mut self, word: &str, max_words: usize) -> Result<bool, ChatError> {
        let word = Self::normalise(word)?;
        if self.words.contains(&word) {
            return Ok(false);
        }
        if self.words.len() >= max_words {
            return Err(ChatError::bad_request(format!(
                "the word filter is full ({max_words} words)"
            )));
        }
        Ok(self.words.insert(word))
    }

    /// Removes a word; false when it was not there.
    pub fn remove(&mut self, word: &str) -> Result<bool, ChatError> {
        let word = Self::normalise(word)?;
        Ok(self.words.remove(&word))
    }

    /// The filtered words, sorted.
    pub fn words(&self) -> Vec<String> {
        self.words.iter().cloned().collect()
    }

    /// `text` with every filtered word masked.
    pub fn mask(&self, text: &str) -> String {
        if self.words.is_empty() {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut word = String::new();
        for c in text.chars() {
            if c.is_alphanumeric() {
                word.push(c);
            } else {
                self.flush(&mut word, &mut out);
                out.push(c);
            }
        }
        self.flush(&mut word, &mut out);
        out
    }

    fn flush(&self, word: &mut String, out: &mut String) {
        if word.is_empty() {
            return;
        }
        if self.words.contains(&word.to_lowercase()) {
            out.extend(std::iter::repeat_n('*', word.chars().count()));
        } else {
            out.push_str(word);
        }
        word.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_cleaned_and_length_checked_in_characters() {
        assert_eq!(clean_text("  hi  ", 10).unwrap(), "hi");
        assert_eq!(clean_text("a\nb\tc\u{0}", 10).unwrap(), "a b c");
        assert_eq!(clean_text("x\u{202E}y\u{2066}", 10).unwrap(), "xy");
        assert_eq!(
            clean_text("<b>&</b>", 10).unwrap(),
            "<b>&</b>",
            "plain text"
        );
        assert_eq!(clean_text(" \n\t ", 10).unwrap_err().code(), "bad_request");
        assert_eq!(clean_text("", 10).unwrap_err().code(), "bad_request");
        assert_eq!(clean_text(&"é".repeat(10), 10).unwrap(), "é".repeat(10));
        assert_eq!(
            clean_text(&"é".repeat(11), 10).unwrap_err(),
            ChatError::TooLong {
                max: 10,
                unit: "characters"
            }
        );
        assert_eq!(
            clean_text(&format!("  {}  ", "a".repeat(10)), 10)
                .unwrap()
                .len(),
            10
        );
    }

    #[test]
    fn reactions_are_one_short_emoji() {
        assert_eq!(clean_emoji(" 🎉 ").unwrap(), "🎉");
        assert_eq!(clean_emoji("👨‍👩‍👧").unwrap(), "👨‍👩‍👧");
        assert_eq!(clean_emoji("❤️").unwrap(), "❤️");
        for bad in ["", "a", ":)", "🎉 🎉", "lol🎉", "\u{202E}🎉"] {
            assert_eq!(clean_emoji(bad).unwrap_err().code(), "bad_request", "{bad}");
        }
        assert_eq!(clean_emoji(&"🎉".repeat(9)).unwrap_err().code(), "too_long");
    }

    #[test]
    fn filter_masks_whole_words_without_case() {
        let mut f = WordFilter::default();
        assert_eq!(f.mask("anything"), "anything");
        assert_eq!(f.add("Darn", 10), Ok(true));
        assert_eq!(f.add("darn", 10), Ok(false));
        assert_eq!(f.add("heck", 10), Ok(true));
        assert_eq!(f.mask("DARN it, heck! darned"), "**** it, ****! darned");
        assert_eq!(f.mask("darn"), "****");
        assert_eq!(f.mask("Ärger darn"), "Ärger ****");
        assert_eq!(f.words(), vec!["darn".to_owned(), "heck".to_owned()]);
        assert_eq!(f.remove("DARN"), Ok(true));
        assert_eq!(f.remove("darn"), Ok(false));
        assert_eq!(f.mask("darn"), "darn");
        assert_eq!(f.add("two words", 10).unwrap_err().code(), "bad_request");
        assert_eq!(f.add("", 10).unwrap_err().code(), "bad_request");
        assert_eq!(f.add(&"x".repeat(33), 10).unwrap_err().code(), "too_long");
        assert_eq!(f.add("more", 1).unwrap_err().code(), "bad_request", "full");
    }
}
