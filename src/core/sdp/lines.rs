//! Line splitting and size limits shared by the SDP offer and trickle-ICE fragment checks at the
//! WHIP/WHEP HTTP edge (RFC 8866 §5 line syntax). Pure, borrows the input.

use super::error::SdpError;

/// Largest accepted body, in bytes.
pub(crate) const MAX_BYTES: usize = 64 * 1024;
/// Largest accepted number of lines.
pub(crate) const MAX_LINES: usize = 4096;

/// One non-empty line, CR/LF removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawLine<'a> {
    /// 1-based line number in the body.
    pub number: usize,
    /// The line text.
    pub text: &'a str,
}

impl<'a> RawLine<'a> {
    /// Split `<type>=<value>` (RFC 8866 §5: one letter, `=`, no spaces around it).
    pub(crate) fn typed(&self) -> Result<(u8, &'a str), SdpError> {
        let bad = SdpError::BadLine { line: self.number };
        let bytes = self.text.as_bytes();
        match bytes {
            [kind, b'=', ..] if kind.is_ascii_alphabetic() => {
                let value = self.text.get(2..).ok_or(bad)?;
                Ok((*kind, value))
            }
            _ => Err(bad),
        }
    }
}

/// Check the size limits and return the non-empty lines (LF or CRLF endings).
pub(crate) fn split_lines(body: &str) -> Result<impl Iterator<Item = RawLine<'_>>, SdpError> {
    if body.trim().is_empty() {
        return Err(SdpError::Empty);
    }
    if body.len() > MAX_BYTES {
        return Err(SdpError::TooLarge);
    }
    let lines = body.matches('\n').count() + usize::from(!body.ends_with('\n'));
    if lines > MAX_LINES {
        return Err(SdpError::TooLarge);
    }
    Ok(body
        .split('\n')
        .enumerate()
        .map(|(i, line)| RawLine {
            number: i + 1,
            text: line.strip_suffix('\r').unwrap_or(line),
        })
        .filter(|line| !line.text.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lf_and_crlf_give_the_same_lines() {
        let lf: Vec<_> = split_lines("v=0\no=- 1 1 IN IP4 0.0.0.0\n\ns=-\n")
            .expect("ok")
            .map(|l| (l.number, l.text))
            .collect();
        let crlf: Vec<_> = split_lines("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n\r\ns=-\r\n")
            .expect("ok")
            .map(|l| (l.number, l.text))
            .collect();
        assert_eq!(
            lf,
            vec![(1, "v=0"), (2, "o=- 1 1 IN IP4 0.0.0.0"), (4, "s=-")]
        );
        assert_eq!(lf, crlf);
    }

    #[test]
    fn typed_lines() {
        let line = |text| RawLine { number: 3, text };
        assert_eq!(line("a=mid:0").typed(), Ok((b'a', "mid:0")));
        assert_eq!(line("s=").typed(), Ok((b's', "")));
        assert_eq!(line("a =x").typed(), Err(SdpError::BadLine { line: 3 }));
        assert_eq!(line("=x").typed(), Err(SdpError::BadLine { line: 3 }));
        assert_eq!(line("1=x").typed(), Err(SdpError::BadLine { line: 3 }));
        assert_eq!(line("é=x").typed(), Err(SdpError::BadLine { line: 3 }));
        assert_eq!(line("a").typed(), Err(SdpError::BadLine { line: 3 }));
    }

    #[test]
    fn limits() {
        assert_eq!(split_lines("").err(), Some(SdpError::Empty));
        assert_eq!(split_lines(" \r\n\t").err(), Some(SdpError::Empty));
        let exactly = "a=x\n".repeat(MAX_LINES);
        assert!(split_lines(&exactly).is_ok(), "4096 lines with a final LF");
        let over = format!("{exactly}a=x");
        assert_eq!(split_lines(&over).err(), Some(SdpError::TooLarge));
        let blank = "\n".repeat(MAX_LINES + 1);
        assert_eq!(
            split_lines(&format!("v=0{blank}")).err(),
            Some(SdpError::TooLarge)
        );
        let big = format!("v=0\na={}\n", "x".repeat(MAX_BYTES));
        assert_eq!(split_lines(&big).err(), Some(SdpError::TooLarge));
    }
}
