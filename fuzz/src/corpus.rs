//! Seed corpora and dictionaries on disk (test tooling, file I/O): `corpus/<target>/*` holds
//! inputs worth keeping (seeds and every crash ever fixed, as regressions) and
//! `dict/<target>.dict` the tokens the mutators splice in, in libFuzzer's dictionary format so
//! both runners read the same files.

use std::path::PathBuf;

/// The `fuzz/` directory.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every input of `corpus/<target>/`, sorted by file name; empty when the directory is missing.
pub fn load(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = root().join("corpus").join(target);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let bytes = std::fs::read(e.path()).ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), bytes))
        })
        .collect();
    inputs.sort();
    inputs
}

/// The tokens of `dict/<target>.dict`; empty when there is none.
pub fn dictionary(target: &str) -> Vec<Vec<u8>> {
    let path = root().join("dict").join(format!("{target}.dict"));
    std::fs::read_to_string(path)
        .map(|text| parse_dictionary(&text))
        .unwrap_or_default()
}

/// Parses libFuzzer's dictionary format: one `"token"` (optionally `name="token"`) per line,
/// `#` comments, escapes `\\`, `\"` and `\xNN`.
pub fn parse_dictionary(text: &str) -> Vec<Vec<u8>> {
    let mut tokens = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(start) = line.find('"') else {
            continue;
        };
        if !line.ends_with('"') || line.len() < start + 2 {
            continue;
        }
        let body = &line.as_bytes()[start + 1..line.len() - 1];
        let mut token = Vec::with_capacity(body.len());
        let mut i = 0;
        while i < body.len() {
            match body[i] {
                b'\\' if body.get(i + 1) == Some(&b'x') && i + 3 < body.len() + 1 => {
                    let hex = std::str::from_utf8(&body[i + 2..(i + 4).min(body.len())]).ok();
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            token.push(b);
                            i += 4;
                        }
                        None => {
                            token.push(b'\\');
                            i += 1;
                        }
                    }
                }
                b'\\' if i + 1 < body.len() => {
                    token.push(body[i + 1]);
                    i += 2;
                }
                b => {
                    token.push(b);
                    i += 1;
                }
            }
        }
        tokens.push(token);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_lines_unescape() {
        let text = "# comment\n\"a=ice-ufrag:\"\nkw=\"\\x0d\\x0a\"\n\"\\\"q\\\\\"\n\nbad\n";
        assert_eq!(
            parse_dictionary(text),
            vec![
                b"a=ice-ufrag:".to_vec(),
                b"\r\n".to_vec(),
                b"\"q\\".to_vec()
            ]
        );
    }
}
