//! Tokenizer for drbd.conf: words (bare or "quoted"), `{`, `}`, `;`, `#` comments.

use std::fmt;
use std::rc::Rc;

/// A position in a config file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    /// The file name as it is shown in messages.
    pub file: Rc<str>,
    /// Line, from 1.
    pub line: u32,
    /// Column (characters), from 1.
    pub col: u32,
}

impl Pos {
    /// A position that points nowhere in particular (generated objects).
    pub fn none() -> Pos {
        Pos {
            file: Rc::from(""),
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// Token kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A bare word.
    Word(String),
    /// A "quoted" string (without the quotes, escapes resolved).
    Quoted(String),
    /// `{`
    Open,
    /// `}`
    Close,
    /// `;`
    Semi,
    /// End of input.
    Eof,
}

impl Tok {
    /// The text of a word or a quoted string.
    pub fn text(&self) -> Option<&str> {
        match self {
            Tok::Word(s) | Tok::Quoted(s) => Some(s),
            _ => None,
        }
    }

    /// How the token is shown in error messages.
    pub fn shown(&self) -> String {
        match self {
            Tok::Word(s) => s.clone(),
            Tok::Quoted(s) => format!("\"{s}\""),
            Tok::Open => "{".into(),
            Tok::Close => "}".into(),
            Tok::Semi => ";".into(),
            Tok::Eof => "end of file".into(),
        }
    }
}

/// A token with its position.
#[derive(Debug, Clone)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Where it starts.
    pub pos: Pos,
}

/// Lexical error: where and what.
#[derive(Debug, Clone)]
pub struct LexError {
    /// Position of the offending character.
    pub pos: Pos,
    /// Description.
    pub msg: String,
}

/// Splits `text` into tokens; the last one is [`Tok::Eof`].
pub fn tokenize(file: &Rc<str>, text: &str) -> Result<Vec<Token>, LexError> {
    let mut out = Vec::new();
    let mut line = 1u32;
    let mut col = 1u32;
    let mut it = text.chars().peekable();
    let pos = |line, col| Pos {
        file: file.clone(),
        line,
        col,
    };
    while let Some(&c) = it.peek() {
        match c {
            '\n' => {
                it.next();
                line += 1;
                col = 1;
            }
            c if c.is_whitespace() => {
                it.next();
                col += 1;
            }
            '#' => {
                while let Some(&c) = it.peek() {
                    if c == '\n' {
                        break;
                    }
                    it.next();
                }
            }
            '{' | '}' | ';' => {
                it.next();
                let tok = match c {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    _ => Tok::Semi,
                };
                out.push(Token {
                    tok,
                    pos: pos(line, col),
                });
                col += 1;
            }
            '"' => {
                let start = pos(line, col);
                it.next();
                col += 1;
                let mut s = String::new();
                loop {
                    match it.next() {
                        None => {
                            return Err(LexError {
                                pos: start,
                                msg: "unterminated quoted string".into(),
                            })
                        }
                        Some('"') => {
                            col += 1;
                            break;
                        }
                        Some('\\') => {
                            col += 1;
                            match it.next() {
                                Some('\n') => {
                                    line += 1;
                                    col = 1;
                                }
                                Some(e) => {
                                    col += 1;
                                    s.push(e);
                                }
                                None => {
                                    return Err(LexError {
                                        pos: start,
                                        msg: "unterminated quoted string".into(),
                                    })
                                }
                            }
                        }
                        Some('\n') => {
                            return Err(LexError {
                                pos: start,
                                msg: "quoted string runs past the end of the line".into(),
                            })
                        }
                        Some(ch) => {
                            col += 1;
                            s.push(ch);
                        }
                    }
                }
                out.push(Token {
                    tok: Tok::Quoted(s),
                    pos: start,
                });
            }
            _ => {
                let start = pos(line, col);
                let mut s = String::new();
                while let Some(&c) = it.peek() {
                    if c.is_whitespace() || matches!(c, '{' | '}' | ';' | '"' | '#') {
                        break;
                    }
                    s.push(c);
                    it.next();
                    col += 1;
                }
                out.push(Token {
                    tok: Tok::Word(s),
                    pos: start,
                });
            }
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: pos(line, col),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_quotes_comments_positions() {
        let f: Rc<str> = Rc::from("t.res");
        let t = tokenize(&f, "resource \"r 0\" { # c\n  disk /dev/sda;\n}").unwrap();
        let toks: Vec<_> = t.iter().map(|t| t.tok.clone()).collect();
        assert_eq!(
            toks,
            vec![
                Tok::Word("resource".into()),
                Tok::Quoted("r 0".into()),
                Tok::Open,
                Tok::Word("disk".into()),
                Tok::Word("/dev/sda".into()),
                Tok::Semi,
                Tok::Close,
                Tok::Eof
            ]
        );
        assert_eq!((t[3].pos.line, t[3].pos.col), (2, 3));
        assert_eq!((t[5].pos.line, t[5].pos.col), (2, 16));
    }

    #[test]
    fn unterminated_quote() {
        let f: Rc<str> = Rc::from("t.res");
        let e = tokenize(&f, "x \"abc").unwrap_err();
        assert_eq!((e.pos.line, e.pos.col), (1, 3));
    }
}
