//! A small XML element tree for Bulk API 1.0 request bodies (`jobInfo`, `sObjects`): elements
//! by local name (any namespace prefix), their text with entities and character references
//! decoded. DTDs are refused and nesting is capped, whatever the input.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};

/// Escapes text for XML element content and attribute values: `& < > " '` by
/// `quick_xml::escape::escape`; characters that XML 1.0 cannot carry are replaced by U+FFFD and
/// `\r` is kept as `&#13;` (a parser would read a bare one as `\n`). The one escaper of the XML
/// the org writes (SOAP, Bulk API 1.0, the XML formats of REST).
pub fn xml_escape(s: &str) -> String {
    let carried: String = s
        .chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect();
    quick_xml::escape::escape(carried.as_str()).replace('\r', "&#13;")
}

/// Deepest nesting read (`sObjects/sObject/field` needs 3).
const MAX_DEPTH: usize = 16;

/// An element.
#[derive(Debug, Default, PartialEq)]
pub struct Node {
    /// Local name.
    pub name: String,
    /// Text directly inside it.
    pub text: String,
    /// Child elements in order.
    pub children: Vec<Node>,
}

impl Node {
    /// The text of the first child named `name`.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.children
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.text.trim())
    }
}

/// Why a body is not a usable XML document (the message names the place, never the content).
#[derive(Debug, PartialEq)]
pub struct XmlError(pub String);

/// Parses `body` into its root element.
pub fn parse(body: &[u8]) -> Result<Node, XmlError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| XmlError(format!("not UTF-8 (near byte {})", e.valid_up_to())))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let event = reader.read_event().map_err(|_| {
            XmlError(format!(
                "not well-formed XML (near byte {})",
                reader.error_position()
            ))
        })?;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(XmlError("content after the root element".into()));
            }
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError(format!(
                        "elements nest deeper than {MAX_DEPTH} levels"
                    )));
                }
                stack.push(Node {
                    name: e.local_name().into_inner().to_string(),
                    ..Node::default()
                });
            }
            Event::Empty(e) => {
                let node = Node {
                    name: e.local_name().into_inner().to_string(),
                    ..Node::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::End(_) => {
                let node = stack
                    .pop()
                    .ok_or_else(|| XmlError("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                let content = t.xml_content(XmlVersion::Implicit1_0);
                match stack.last_mut() {
                    Some(n) => n.text.push_str(&content),
                    None if content.trim().is_empty() => {}
                    None => return Err(XmlError("text outside the root element".into())),
                }
            }
            Event::CData(t) => match stack.last_mut() {
                Some(n) => n.text.push_str(&t.xml_content(XmlVersion::Implicit1_0)),
                None => return Err(XmlError("text outside the root element".into())),
            },
            Event::GeneralRef(r) => {
                let Some(n) = stack.last_mut() else {
                    return Err(XmlError("text outside the root element".into()));
                };
                if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => n.text.push(c),
                        _ => return Err(XmlError("an invalid character reference".into())),
                    }
                } else {
                    match resolve_predefined_entity(&r) {
                        Some(s) => n.text.push_str(s),
                        None => return Err(XmlError("an undefined entity".into())),
                    }
                }
            }
            Event::DocType(_) => return Err(XmlError("a DTD, which is not allowed".into())),
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError("the document ends inside an element".into()));
    }
    root.ok_or_else(|| XmlError("no root element".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_elements_by_local_name() {
        let n = parse(
            br#"<?xml version="1.0"?><sObjects xmlns="http://www.force.com/2009/06/asyncapi/dataload"><sObject><Name>A &amp; B</Name><Empty/></sObject></sObjects>"#,
        )
        .unwrap();
        assert_eq!(n.name, "sObjects");
        assert_eq!(n.children[0].child_text("Name"), Some("A & B"));
        assert_eq!(n.children[0].children[1].name, "Empty");
    }

    #[test]
    fn refuses_what_is_not_a_document() {
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<!DOCTYPE x [<!ENTITY e 'x'>]><a/>").is_err());
        assert!(parse(b"<a>&e;</a>").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"<a/><b/>").is_err());
        let deep = "<a>".repeat(20) + &"</a>".repeat(20);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
