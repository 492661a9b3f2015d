//! Splitting a YAML stream into documents (keeping each one's first line) and turning
//! `serde_yaml_ng` errors into positions in the whole stream.

use crate::Position;

/// One document of a stream: its text and the 0-based line it starts on.
pub(crate) struct Chunk<'a> {
    pub(crate) first_line: usize,
    pub(crate) text: &'a str,
}

/// Splits at `---` (directives end) and after `...` (document end) lines. These markers
/// cannot occur at column 0 inside a scalar, so a line-based split is exact; comments
/// before the first `---` stay with the document that follows.
pub(crate) fn split_documents(s: &str) -> Vec<Chunk<'_>> {
    fn is_marker(line: &str, marker: &str) -> bool {
        line.strip_prefix(marker)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
    }
    fn has_content(text: &str) -> bool {
        let t = text.trim();
        !t.is_empty() && !t.starts_with('#')
    }

    let mut chunks = Vec::new();
    let (mut start, mut start_line) = (0usize, 0usize);
    let (mut content, mut marker) = (false, false);
    let mut offset = 0usize;
    for (line_no, raw) in s.split_inclusive('\n').enumerate() {
        let line = raw.trim_end_matches(['\n', '\r']);
        if is_marker(line, "---") {
            if content || marker {
                chunks.push(Chunk {
                    first_line: start_line,
                    text: &s[start..offset],
                });
                (start, start_line) = (offset, line_no);
            }
            marker = true;
            content = has_content(&line[3..]);
        } else if is_marker(line, "...") {
            let end = offset + raw.len();
            if content || marker {
                chunks.push(Chunk {
                    first_line: start_line,
                    text: &s[start..end],
                });
            }
            (start, start_line) = (end, line_no + 1);
            (content, marker) = (false, false);
        } else if !line.starts_with('%') && has_content(line) {
            content = true;
        }
        offset += raw.len();
    }
    if content || marker {
        chunks.push(Chunk {
            first_line: start_line,
            text: &s[start..],
        });
    }
    chunks
}

/// Turns a `serde_yaml_ng` error on a chunk into a position and message for the whole
/// stream: line numbers, in the position and inside the message, are shifted by
/// `first_line`, and the trailing `at line L column C` is dropped (it is in the position).
pub(crate) fn yaml_error(
    err: &serde_yaml_ng::Error,
    first_line: usize,
) -> (Option<Position>, String) {
    let at = err.location().map(|l| Position {
        line: l.line() + first_line,
        column: l.column(),
    });
    let mut message = shift_lines(&err.to_string(), first_line);
    if let Some(pos) = at {
        let suffix = format!(" at line {} column {}", pos.line, pos.column);
        if let Some(idx) = message.find(&suffix) {
            message.replace_range(idx..idx + suffix.len(), "");
        }
    }
    (at, message)
}

fn shift_lines(message: &str, by: usize) -> String {
    if by == 0 {
        return message.to_owned();
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(idx) = rest.find("line ") {
        let (before, after) = rest.split_at(idx + 5);
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<(usize, &str)> {
        split_documents(s)
            .into_iter()
            .map(|c| (c.first_line, c.text))
            .collect()
    }

    #[test]
    fn splits_documents() {
        assert_eq!(split("a: 1\n"), vec![(0, "a: 1\n")]);
        assert_eq!(
            split("# c\n---\na: 1\n---\nb: 2\n"),
            vec![(0, "# c\n---\na: 1\n"), (3, "---\nb: 2\n")]
        );
        assert_eq!(
            split("---\n---\na: 1"),
            vec![(0, "---\n"), (1, "---\na: 1")]
        );
        assert_eq!(
            split("a: 1\n...\nb: 2\n"),
            vec![(0, "a: 1\n...\n"), (2, "b: 2\n")]
        );
        assert_eq!(
            split("a: |\n  ---x\n  y\n"),
            vec![(0, "a: |\n  ---x\n  y\n")]
        );
        assert_eq!(split("a: 1\n---\n# trailing\n").len(), 2);
        assert!(split("\n# only a comment\n").is_empty());
        assert_eq!(split("--- {a: 1}\n--- {b: 2}\n").len(), 2);
    }

    #[test]
    fn shifts_line_numbers() {
        assert_eq!(
            shift_lines(
                "did not find expected key at line 3 column 1, while parsing a block mapping at line 2 column 1",
                10
            ),
            "did not find expected key at line 13 column 1, while parsing a block mapping at line 12 column 1"
        );
    }
}
