//! Glob patterns as Argo CD's directory sources use them (gobwas/glob without separators):
//! `*` matches any run of characters, `/` included; `?` one character; `[abc]`, `[a-z]`,
//! `[!a]` character classes; `{a,b}` alternatives, which may nest and contain wildcards.

/// Whether `text` matches `pattern`. An invalid pattern (unclosed `[` or `{`) matches
/// nothing rather than everything, so a typo in `include` shows as missing resources, and
/// in `exclude` excludes nothing.
pub fn matches(pattern: &str, text: &str) -> bool {
    let Some(tokens) = parse(&pattern.chars().collect::<Vec<_>>()) else {
        return false;
    };
    let text: Vec<char> = text.chars().collect();
    match_tokens(&tokens, &text)
}

#[derive(Debug, Clone)]
enum Token {
    Literal(char),
    Any,
    One,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Alternatives(Vec<Vec<Token>>),
}

/// Parses a whole pattern; `None` if it is malformed.
fn parse(chars: &[char]) -> Option<Vec<Token>> {
    let (tokens, rest) = parse_seq(chars, false)?;
    rest.is_empty().then_some(tokens)
}

/// Parses until the end, or inside braces until an unnested `,` or `}` (left in `rest`).
fn parse_seq(mut chars: &[char], in_braces: bool) -> Option<(Vec<Token>, &[char])> {
    let mut tokens = Vec::new();
    while let Some((&c, rest)) = chars.split_first() {
        match c {
            ',' | '}' if in_braces => return Some((tokens, chars)),
            '*' => {
                chars = rest;
                if !matches!(tokens.last(), Some(Token::Any)) {
                    tokens.push(Token::Any);
                }
            }
            '?' => {
                chars = rest;
                tokens.push(Token::One);
            }
            '\\' => {
                let (&escaped, rest) = rest.split_first()?;
                chars = rest;
                tokens.push(Token::Literal(escaped));
            }
            '[' => {
                let close = rest.iter().position(|&c| c == ']')?;
                let mut body = &rest[..close];
                chars = &rest[close + 1..];
                let negated = matches!(body.first(), Some('!' | '^'));
                if negated {
                    body = &body[1..];
                }
                let mut ranges = Vec::new();
                let mut i = 0;
                while i < body.len() {
                    if i + 2 < body.len() && body[i + 1] == '-' {
                        ranges.push((body[i], body[i + 2]));
                        i += 3;
                    } else {
                        ranges.push((body[i], body[i]));
                        i += 1;
                    }
                }
                tokens.push(Token::Class { negated, ranges });
            }
            '{' => {
                let mut alternatives = Vec::new();
                let mut rest = rest;
                loop {
                    let (alternative, after) = parse_seq(rest, true)?;
                    alternatives.push(alternative);
                    let (&sep, after) = after.split_first()?;
                    rest = after;
                    if sep == '}' {
                        break;
                    }
                }
                chars = rest;
                tokens.push(Token::Alternatives(alternatives));
            }
            _ => {
                chars = rest;
                tokens.push(Token::Literal(c));
            }
        }
    }
    if in_braces {
        // Ran out of input before the closing brace.
        return None;
    }
    Some((tokens, chars))
}

fn match_tokens(tokens: &[Token], text: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return text.is_empty();
    };
    match first {
        Token::Literal(c) => text.first() == Some(c) && match_tokens(rest, &text[1..]),
        Token::One => !text.is_empty() && match_tokens(rest, &text[1..]),
        Token::Class { negated, ranges } => match text.first() {
            Some(&c) => {
                let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                inside != *negated && match_tokens(rest, &text[1..])
            }
            None => false,
        },
        Token::Any => (0..=text.len()).any(|skip| match_tokens(rest, &text[skip..])),
        Token::Alternatives(alternatives) => alternatives.iter().any(|alternative| {
            let mut joined = alternative.clone();
            joined.extend_from_slice(rest);
            match_tokens(&joined, text)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn cases() {
        let cases = [
            ("*.yaml", "a.yaml", true),
            ("*.yaml", "sub/a.yaml", true),
            ("*.yaml", "a.yml", false),
            ("{a.yaml,b.yaml}", "b.yaml", true),
            ("{a.yaml,b.yaml}", "c.yaml", false),
            ("{*.yml,*.yaml}", "x/y.yml", true),
            ("config-?.json", "config-1.json", true),
            ("config-?.json", "config-12.json", false),
            ("[ab]*.yaml", "b1.yaml", true),
            ("[!ab]*.yaml", "b1.yaml", false),
            ("[a-c].yaml", "c.yaml", true),
            ("prod/{web,api}/*.yaml", "prod/api/deploy.yaml", true),
            ("prod/{web,{api,db}}.yaml", "prod/db.yaml", true),
            ("deploy.yaml", "deploy.yaml", true),
            ("deploy.yaml", "xdeploy.yaml", false),
            ("{a,b", "a", false),
            ("[ab", "a", false),
            ("", "", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(matches(pattern, text), expected, "{pattern} ~ {text}");
        }
    }
}
