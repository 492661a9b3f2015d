//! Glob patterns as Argo CD matches them (its `util/glob`, which is gobwas/glob), compiled
//! once and matched in time linear in the text. Argo CD uses the one matcher for
//! `ignoreDifferences` groups and kinds, directory `include`/`exclude` paths, sync windows,
//! and AppProject destinations; project source repositories match with `/` as a separator.
//!
//! Syntax: `*` matches any run of characters (without a separator: `/` included); `?` one
//! character; `[abc]`, `[a-z]`, `[!a]` (or `[^a]`) character classes; `{a,b}`
//! alternatives, which may nest and hold any of these; `\` makes the next character
//! literal. With a separator, `*` and `?` do not match it and `**` matches any run,
//! separators included. Anything else is literal.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A compiled glob. An invalid pattern (an unclosed `[` or `{`, a trailing `\`) matches
/// nothing rather than everything, as in Argo CD: a typo in an `include` shows as missing
/// resources, in an `exclude` or an `ignoreDifferences` rule it ignores nothing.
#[derive(Clone, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub struct Glob {
    pattern: String,
    /// `None` when the pattern is invalid.
    program: Option<Vec<Inst>>,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Self {
            pattern: pattern.to_owned(),
            program: compile(pattern, None),
        }
    }

    /// A pattern whose `*` and `?` stop at `separator` (gobwas's `glob.Compile(p, sep)`),
    /// as Argo CD matches project source repositories with `/`.
    pub fn with_separator(pattern: &str, separator: char) -> Self {
        Self {
            pattern: pattern.to_owned(),
            program: compile(pattern, Some(separator)),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `text` matches the whole pattern.
    ///
    /// The program is run as a Thompson NFA: every position the pattern could be at is
    /// tracked at once, so each character of `text` costs at most one step per instruction
    /// and a pattern like `a*a*a*b` cannot backtrack exponentially.
    pub fn matches(&self, text: &str) -> bool {
        let Some(program) = &self.program else {
            return false;
        };
        let mut current = States::new(program.len());
        let mut next = States::new(program.len());
        current.add(program, 0);
        for c in text.chars() {
            if current.list.is_empty() {
                return false;
            }
            next.clear();
            for &pc in &current.list {
                match &program[pc] {
                    Inst::Char(test) if test.accepts(c) => next.add(program, pc + 1),
                    Inst::Star => next.add(program, pc),
                    Inst::StarNot(sep) if c != *sep => next.add(program, pc),
                    _ => {}
                }
            }
            std::mem::swap(&mut current, &mut next);
        }
        current
            .list
            .iter()
            .any(|&pc| matches!(program[pc], Inst::Match))
    }
}

impl Default for Glob {
    /// The empty pattern: matches only the empty string.
    fn default() -> Self {
        Self::new("")
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for Glob {}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.pattern)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

impl From<&str> for Glob {
    fn from(pattern: &str) -> Self {
        Self::new(pattern)
    }
}

impl From<String> for Glob {
    fn from(pattern: String) -> Self {
        Self::new(&pattern)
    }
}

impl From<Glob> for String {
    fn from(glob: Glob) -> Self {
        glob.pattern
    }
}

/// One instruction; execution starts at 0 and goes on to the next one unless it says
/// otherwise.
#[derive(Debug, Clone)]
enum Inst {
    /// Consumes one character the test accepts.
    Char(CharTest),
    /// `*`: consumes any character and stays, or goes on without consuming.
    Star,
    /// `*` with a separator: as [`Inst::Star`], but never consumes the separator.
    StarNot(char),
    /// `{`: goes on at each of these (the starts of the alternatives) without consuming.
    Split(Vec<usize>),
    /// The end of an alternative: goes on after the `}` without consuming.
    Jump(usize),
    /// The end of the pattern.
    Match,
}

#[derive(Debug, Clone)]
enum CharTest {
    Literal(char),
    Any,
    AnyBut(char),
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl CharTest {
    fn accepts(&self, c: char) -> bool {
        match self {
            Self::Literal(l) => *l == c,
            Self::Any => true,
            Self::AnyBut(sep) => *sep != c,
            Self::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

/// An open `{`: where its `Split` is, where its alternatives start, and the `Jump`s at their
/// ends that go after its `}` once that is known.
struct Group {
    split: usize,
    starts: Vec<usize>,
    jumps: Vec<usize>,
}

/// Compiles a pattern (iteratively, so deep nesting cannot overflow the stack); `None` if it
/// is malformed.
fn compile(pattern: &str, separator: Option<char>) -> Option<Vec<Inst>> {
    let mut program = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => match separator {
                Some(_) if chars.as_str().starts_with('*') => {
                    chars.next();
                    program.push(Inst::Star);
                }
                Some(sep) => program.push(Inst::StarNot(sep)),
                None => program.push(Inst::Star),
            },
            '?' => program.push(Inst::Char(match separator {
                Some(sep) => CharTest::AnyBut(sep),
                None => CharTest::Any,
            })),
            '\\' => program.push(Inst::Char(CharTest::Literal(chars.next()?))),
            '[' => {
                let rest = chars.as_str();
                let close = rest.find(']')?;
                let mut body: Vec<char> = rest[..close].chars().collect();
                chars = rest[close + 1..].chars();
                let negated = matches!(body.first(), Some('!' | '^'));
                if negated {
                    body.remove(0);
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
                program.push(Inst::Char(CharTest::Class { negated, ranges }));
            }
            '{' => {
                groups.push(Group {
                    split: program.len(),
                    starts: vec![program.len() + 1],
                    jumps: Vec::new(),
                });
                program.push(Inst::Split(Vec::new()));
            }
            ',' if !groups.is_empty() => {
                let group = groups.last_mut()?;
                group.jumps.push(program.len());
                program.push(Inst::Jump(0));
                group.starts.push(program.len());
            }
            '}' if !groups.is_empty() => {
                let mut group = groups.pop()?;
                group.jumps.push(program.len());
                program.push(Inst::Jump(0));
                let end = program.len();
                for jump in group.jumps {
                    program[jump] = Inst::Jump(end);
                }
                program[group.split] = Inst::Split(group.starts);
            }
            _ => program.push(Inst::Char(CharTest::Literal(c))),
        }
    }
    if !groups.is_empty() {
        return None;
    }
    program.push(Inst::Match);
    Some(program)
}

/// The set of instructions the match could be at, in the order they were reached.
struct States {
    list: Vec<usize>,
    present: Vec<bool>,
    /// The work list of [`States::add`], kept to reuse its allocation.
    stack: Vec<usize>,
}

impl States {
    fn new(len: usize) -> Self {
        Self {
            list: Vec::with_capacity(len),
            present: vec![false; len],
            stack: Vec::new(),
        }
    }

    fn clear(&mut self) {
        for &pc in &self.list {
            self.present[pc] = false;
        }
        self.list.clear();
    }

    /// Adds `pc` and everything reachable from it without consuming a character.
    fn add(&mut self, program: &[Inst], pc: usize) {
        self.stack.push(pc);
        while let Some(pc) = self.stack.pop() {
            if self.present[pc] {
                continue;
            }
            self.present[pc] = true;
            self.list.push(pc);
            match &program[pc] {
                Inst::Star | Inst::StarNot(_) => self.stack.push(pc + 1),
                Inst::Split(starts) => self.stack.extend(starts.iter().rev()),
                Inst::Jump(to) => self.stack.push(*to),
                Inst::Char(_) | Inst::Match => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn cases() {
        let cases = [
            // ignoreDifferences groups and kinds
            ("*", "apps", true),
            ("*", "", true),
            ("", "", true),
            ("", "apps", false),
            ("*.k8s.io", "networking.k8s.io", true),
            ("*.k8s.io", "apps", false),
            ("apps", "apps", true),
            ("Deploy*", "Deployment", true),
            ("{Deployment,StatefulSet}", "StatefulSet", true),
            // directory include/exclude paths
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
            ("[^ab]*.yaml", "c1.yaml", true),
            ("[a-c].yaml", "c.yaml", true),
            ("[a-c].yaml", "d.yaml", false),
            ("prod/{web,api}/*.yaml", "prod/api/deploy.yaml", true),
            ("prod/{web,{api,db}}.yaml", "prod/db.yaml", true),
            ("prod/{web,{api,db}}.yaml", "prod/web.yaml", true),
            ("prod/{web,{api,db}}.yaml", "prod/dbx.yaml", false),
            ("{a,}b", "b", true),
            ("{a,}b", "ab", true),
            ("deploy.yaml", "deploy.yaml", true),
            ("deploy.yaml", "xdeploy.yaml", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("a,b}", "a,b}", true),
            ("naïve-*", "naïve-ü", true),
            // malformed: matches nothing
            ("{a,b", "a", false),
            ("[ab", "a", false),
            ("a\\", "a", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                Glob::new(pattern).matches(text),
                expected,
                "{pattern} ~ {text}"
            );
        }
    }

    #[test]
    fn pathological_patterns_do_not_backtrack() {
        let text = "a".repeat(5_000);
        assert!(!Glob::new("a*a*a*a*a*a*a*a*a*b").matches(&text));
        assert!(Glob::new("a*a*a*a*a*a*a*a*a*a").matches(&text));
        assert!(!Glob::new("{a*,*a}{a*,*a}{a*,*a}{a*,*a}b").matches(&text));
        let deep = format!("{}a{}", "{".repeat(10_000), "}".repeat(10_000));
        assert!(Glob::new(&deep).matches("a"));
    }

    #[test]
    fn a_separator_stops_single_stars_and_question_marks() {
        let cases = [
            (
                "https://github.com/org/*",
                "https://github.com/org/repo",
                true,
            ),
            (
                "https://github.com/org/*",
                "https://github.com/org/a/b",
                false,
            ),
            (
                "https://github.com/org/**",
                "https://github.com/org/a/b",
                true,
            ),
            (
                "https://github.com/*/repo",
                "https://github.com/org/repo",
                true,
            ),
            ("git@github.com:org/?", "git@github.com:org/a", true),
            ("a?b", "a/b", false),
            ("*", "https://github.com/org/repo", false),
            ("**", "https://github.com/org/repo", true),
            (
                "https://{github,gitlab}.com/org/*",
                "https://gitlab.com/org/x",
                true,
            ),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                Glob::with_separator(pattern, '/').matches(text),
                expected,
                "{pattern} ~ {text}"
            );
        }
        // Without a separator a single star crosses `/`.
        assert!(Glob::new("https://github.com/org/*").matches("https://github.com/org/a/b"));
    }

    #[test]
    fn serializes_as_the_pattern() {
        let glob: Glob = serde_json::from_str("\"*.k8s.io\"").unwrap();
        assert!(glob.matches("apps.k8s.io"));
        assert_eq!(serde_json::to_string(&glob).unwrap(), "\"*.k8s.io\"");
    }
}
