//! `parse_mode` handling, reduced to what decides whether Telegram accepts a text and what its
//! plain text (the `Message.text` it answers with) is.
//!
//! Unescaped user input inside HTML or MarkdownV2 is the classic way a bot's message gets
//! refused with "can't parse entities", so the simulator must refuse the same texts. Where the
//! exact Telegram rule is uncertain the parser leans towards accepting.

/// Returns the plain text, or the part of the error description after
/// `Bad Request: can't parse entities: `.
pub(crate) fn plain_text(text: &str, parse_mode: Option<&str>) -> Result<String, MarkupError> {
    match parse_mode.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => Ok(text.to_owned()),
        Some("html") => html(text).map_err(MarkupError::Entities),
        Some("markdownv2") => markdown_v2(text).map_err(MarkupError::Entities),
        Some("markdown") => markdown_legacy(text).map_err(MarkupError::Entities),
        Some(_) => Err(MarkupError::UnsupportedMode),
    }
}

#[derive(Debug, PartialEq)]
pub(crate) enum MarkupError {
    UnsupportedMode,
    Entities(String),
}

const HTML_TAGS: &[&str] = &[
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
];

fn html(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut open: Vec<&'static str> = Vec::new();
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        let rest = &text[i..];
        match c {
            '<' => {
                let Some(end) = rest.find('>') else {
                    return Err(format!("Unclosed start tag at byte offset {i}"));
                };
                let inner = &rest[1..end];
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match open.pop() {
                        None => return Err(format!("Unexpected end tag at byte offset {i}")),
                        Some(expected) if !name.is_empty() && name != expected => {
                            return Err(format!(
                                "Unmatched end tag at byte offset {i}, expected \"</{expected}>\", found \"</{name}>\""
                            ))
                        }
                        Some(_) => {}
                    }
                } else {
                    let name = inner
                        .split(|c: char| c.is_ascii_whitespace())
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    let Some(tag) = HTML_TAGS.iter().find(|t| **t == name) else {
                        return Err(format!(
                            "Unsupported start tag \"{name}\" at byte offset {i}"
                        ));
                    };
                    open.push(tag);
                }
                i += end + 1;
            }
            '&' => match html_entity(rest) {
                Some((decoded, len)) => {
                    out.push(decoded);
                    i += len;
                }
                None => {
                    out.push('&');
                    i += 1;
                }
            },
            _ => {
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    match open.pop() {
        Some(tag) => Err(format!(
            "Can't find end tag corresponding to start tag \"{tag}\""
        )),
        None => Ok(out),
    }
}

/// Decodes the entities Telegram documents (`&lt; &gt; &amp; &quot;` and numeric ones).
fn html_entity(rest: &str) -> Option<(char, usize)> {
    let semi = rest.get(..12).unwrap_or(rest).find(';')?;
    let name = &rest[1..semi];
    let decoded = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        _ => {
            let code = if let Some(hex) = name.strip_prefix("#x").or(name.strip_prefix("#X")) {
                u32::from_str_radix(hex, 16).ok()?
            } else {
                name.strip_prefix('#')?.parse().ok()?
            };
            char::from_u32(code)?
        }
    };
    Some((decoded, semi + 1))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Entity {
    Bold,
    Italic,
    Underline,
    Strikethrough,
    Spoiler,
    TextUrl,
}

const MARKDOWN_V2_RESERVED: &str = "_*[]()~`>#+-=|{}.!";

fn markdown_v2(text: &str) -> Result<String, String> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |k: usize| chars.get(k).map(|&(_, c)| c);
    let mut out = String::with_capacity(text.len());
    let mut open: Vec<(Entity, usize)> = Vec::new();
    let mut k = 0;
    while let Some(&(i, c)) = chars.get(k) {
        let line_start = k == 0 || at(k - 1) == Some('\n');
        let next = at(k + 1);
        k += 1;
        match c {
            '\\' => match next {
                Some(n) if (1..=126).contains(&(n as u32)) => {
                    out.push(n);
                    k += 1;
                }
                _ => out.push('\\'),
            },
            '*' => toggle(&mut open, Entity::Bold, i)?,
            '_' if next == Some('_') => {
                toggle(&mut open, Entity::Underline, i)?;
                k += 1;
            }
            '_' => toggle(&mut open, Entity::Italic, i)?,
            '~' => toggle(&mut open, Entity::Strikethrough, i)?,
            '|' if next == Some('|') => {
                toggle(&mut open, Entity::Spoiler, i)?;
                k += 1;
            }
            '`' => {
                let pre = next == Some('`') && at(k + 1) == Some('`');
                let (entity, start) = if pre { ("Pre", k + 2) } else { ("Code", k) };
                let (content, after) = code_span(&chars, start, pre).ok_or_else(|| {
                    format!("Can't find end of {entity} entity at byte offset {i}")
                })?;
                out.push_str(&content);
                k = after;
            }
            '[' => open.push((Entity::TextUrl, i)),
            ']' if open.last().is_some_and(|(e, _)| *e == Entity::TextUrl) => {
                open.pop();
                if next == Some('(') {
                    k = url_end(&chars, k)
                        .ok_or_else(|| format!("Can't find end of a URL at byte offset {i}"))?;
                }
            }
            '>' if line_start => {}
            c if MARKDOWN_V2_RESERVED.contains(c) => {
                return Err(format!(
                    "Character '{c}' is reserved and must be escaped with the preceding '\\'"
                ))
            }
            c => out.push(c),
        }
    }
    match open.pop() {
        Some((entity, offset)) => Err(format!(
            "Can't find end of {entity:?} entity at byte offset {offset}"
        )),
        None => Ok(out),
    }
}

fn toggle(open: &mut Vec<(Entity, usize)>, entity: Entity, offset: usize) -> Result<(), String> {
    match open.last() {
        Some((top, _)) if *top == entity => {
            open.pop();
            Ok(())
        }
        // Closing an outer entity while an inner one is still open is not nesting.
        Some((top, top_offset)) if open.iter().any(|(e, _)| *e == entity) => Err(format!(
            "Can't find end of {top:?} entity at byte offset {top_offset}"
        )),
        _ => {
            open.push((entity, offset));
            Ok(())
        }
    }
}

/// Scans a code or pre span starting after its opening backticks, where only `\` escapes.
/// Returns its text (without a pre block's language line) and the index after the closing
/// backticks.
fn code_span(chars: &[(usize, char)], start: usize, pre: bool) -> Option<(String, usize)> {
    let fence = if pre { 3 } else { 1 };
    let mut content = String::new();
    let mut k = start;
    loop {
        let c = chars.get(k)?.1;
        if c == '\\' {
            content.push(chars.get(k + 1)?.1);
            k += 2;
        } else if (0..fence).all(|d| chars.get(k + d).map(|x| x.1) == Some('`')) {
            let content = match content.split_once('\n') {
                Some((language, code)) if pre && !language.contains(char::is_whitespace) => {
                    code.to_owned()
                }
                _ => content,
            };
            return Some((content, k + fence));
        } else {
            content.push(c);
            k += 1;
        }
    }
}

/// Index after the `)` closing a link's URL that starts after `(` at `open`.
fn url_end(chars: &[(usize, char)], open: usize) -> Option<usize> {
    let mut k = open + 1;
    loop {
        match chars.get(k)?.1 {
            '\\' => k += 2,
            ')' => return Some(k + 1),
            _ => k += 1,
        }
    }
}

fn markdown_legacy(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        let rest = &text[i..];
        match c {
            '\\' if rest[1..].starts_with(['_', '*', '`', '[']) => {
                out.push_str(&rest[1..2]);
                i += 2;
            }
            '*' | '_' | '`' => {
                let fence = if rest.starts_with("```") {
                    "```"
                } else {
                    &rest[..1]
                };
                let Some(len) = rest[fence.len()..].find(fence) else {
                    return Err(format!(
                        "Can't find end of the entity starting at byte offset {i}"
                    ));
                };
                out.push_str(&rest[fence.len()..fence.len() + len]);
                i += 2 * fence.len() + len;
            }
            '[' => match legacy_link(rest) {
                Some((label, len)) => {
                    out.push_str(label);
                    i += len;
                }
                None => {
                    out.push('[');
                    i += 1;
                }
            },
            _ => {
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    Ok(out)
}

fn legacy_link(rest: &str) -> Option<(&str, usize)> {
    let close = rest.find("](")?;
    let end = close + rest[close..].find(')')?;
    Some((&rest[1..close], end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(text: &str) -> Result<String, MarkupError> {
        plain_text(text, Some("MarkdownV2"))
    }

    #[test]
    fn html_strips_tags_and_decodes_entities() {
        assert_eq!(
            plain_text("Pay <b>5 USD</b> &lt;now&gt; &amp; &#33;", Some("HTML")),
            Ok("Pay 5 USD <now> & !".to_owned())
        );
        assert_eq!(
            plain_text("<a href=\"https://x.y\">link</a>", Some("html")),
            Ok("link".to_owned())
        );
    }

    #[test]
    fn html_refuses_what_telegram_refuses() {
        let err = |t| match plain_text(t, Some("HTML")) {
            Err(MarkupError::Entities(e)) => e,
            other => panic!("accepted {t:?}: {other:?}"),
        };
        assert_eq!(
            err("a <foo> b"),
            "Unsupported start tag \"foo\" at byte offset 2"
        );
        assert_eq!(err("1 < 2"), "Unclosed start tag at byte offset 2");
        assert_eq!(
            err("<b>x"),
            "Can't find end tag corresponding to start tag \"b\""
        );
        assert!(err("<b>x</i>").starts_with("Unmatched end tag at byte offset 4"));
        assert_eq!(err("x</b>"), "Unexpected end tag at byte offset 1");
    }

    #[test]
    fn markdown_v2_needs_escapes() {
        assert_eq!(
            v2("*Balance:* 12\\.50 USD"),
            Ok("Balance: 12.50 USD".into())
        );
        assert_eq!(
            v2("Balance: 12.50"),
            Err(MarkupError::Entities(
                "Character '.' is reserved and must be escaped with the preceding '\\'".into()
            ))
        );
        assert_eq!(v2("[pay](https://x.y/a_b)"), Ok("pay".into()));
        assert_eq!(
            v2("`a.b` and ```rust\nlet x = 1;```"),
            Ok("a.b and let x = 1;".into())
        );
        assert_eq!(v2("__u__ ||s|| ~x~ _i_"), Ok("u s x i".into()));
        assert_eq!(v2("> quoted"), Ok(" quoted".into()));
        assert!(matches!(v2("*open"), Err(MarkupError::Entities(e)) if e.contains("Bold")));
        assert!(matches!(v2("`open"), Err(MarkupError::Entities(e)) if e.contains("Code")));
    }

    #[test]
    fn legacy_markdown_needs_closed_entities() {
        assert_eq!(
            plain_text("*bold* _it_ [a](http://b) `c_d`", Some("Markdown")),
            Ok("bold it a c_d".into())
        );
        assert!(plain_text("snake_case", Some("Markdown")).is_err());
        assert_eq!(
            plain_text("snake\\_case", Some("Markdown")),
            Ok("snake_case".into())
        );
    }

    #[test]
    fn unknown_parse_mode_is_refused() {
        assert_eq!(
            plain_text("x", Some("BBCode")),
            Err(MarkupError::UnsupportedMode)
        );
    }
}
