//! Reading a received WhatsApp message into what the gateway keeps: its
//! text wherever the app put it (a plain conversation, the text of a message
//! that quotes another, an image's caption, inside a disappearing-message
//! wrapper), the id of the message it quotes, or — for a reaction — the id
//! of the message reacted to and the emoji. And the sender as a phone number
//! even when WhatsApp addressed it by LID: the stanza then carries the number
//! beside it (`sender_pn`, the library's `sender_alt`).

use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::Jid;

/// What the gateway keeps of a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub text: String,
    pub quoted: Option<String>,
    pub reaction_to: Option<String>,
}

/// Wrappers that carry another message inside (disappearing, view-once …).
fn unwrap(m: &wa::Message) -> &wa::Message {
    let mut m = m;
    for _ in 0..4 {
        let inner = m
            .ephemeral_message
            .as_option()
            .or_else(|| m.view_once_message.as_option())
            .or_else(|| m.view_once_message_v2.as_option())
            .or_else(|| m.document_with_caption_message.as_option())
            .and_then(|f| f.message.as_option());
        match inner {
            Some(i) => m = i,
            None => break,
        }
    }
    m
}

/// The content of `m`, or `None` for messages with nothing a clinic reads
/// (protocol messages, key shares, receipts of edits …).
pub fn read(m: &wa::Message) -> Option<Content> {
    let m = unwrap(m);
    if let Some(r) = m.reaction_message.as_option() {
        let target = r.key.as_option().and_then(|k| k.id.clone())?;
        return Some(Content {
            text: r.text.clone().unwrap_or_default(),
            quoted: None,
            reaction_to: Some(target),
        });
    }
    if let Some(t) = &m.conversation {
        return Some(Content {
            text: t.clone(),
            quoted: None,
            reaction_to: None,
        });
    }
    if let Some(x) = m.extended_text_message.as_option() {
        return Some(Content {
            text: x.text.clone().unwrap_or_default(),
            quoted: x.context_info.as_option().and_then(|c| c.stanza_id.clone()),
            reaction_to: None,
        });
    }
    let captioned = [
        m.image_message
            .as_option()
            .map(|i| (i.caption.clone(), i.context_info.as_option())),
        m.video_message
            .as_option()
            .map(|v| (v.caption.clone(), v.context_info.as_option())),
        m.document_message
            .as_option()
            .map(|d| (d.caption.clone(), d.context_info.as_option())),
    ];
    captioned
        .into_iter()
        .flatten()
        .next()
        .map(|(caption, ctx)| Content {
            text: caption.unwrap_or_default(),
            quoted: ctx.and_then(|c| c.stanza_id.clone()),
            reaction_to: None,
        })
}

/// The sender as (phone, LID): the phone from a PN jid, or from the number
/// WhatsApp sent beside a LID; the LID from a LID jid or from beside a PN.
pub fn sender(sender: &Jid, alt: Option<&Jid>) -> (String, Option<String>) {
    let user = |j: &Jid| j.user.to_string();
    if sender.is_lid() {
        let phone = alt.filter(|a| a.is_pn()).map(user);
        (phone.unwrap_or_else(|| user(sender)), Some(user(sender)))
    } else {
        (user(sender), alt.filter(|a| a.is_lid()).map(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        s.parse().unwrap()
    }

    #[test]
    fn a_lid_sender_is_named_by_the_number_beside_it() {
        assert_eq!(
            sender(
                &jid("123456@lid"),
                Some(&jid("573001112233@s.whatsapp.net"))
            ),
            ("573001112233".into(), Some("123456".into()))
        );
        assert_eq!(
            sender(&jid("123456@lid"), None),
            ("123456".into(), Some("123456".into()))
        );
        assert_eq!(
            sender(
                &jid("573001112233@s.whatsapp.net"),
                Some(&jid("123456@lid"))
            ),
            ("573001112233".into(), Some("123456".into()))
        );
        assert_eq!(
            sender(&jid("573001112233@s.whatsapp.net"), None),
            ("573001112233".into(), None)
        );
    }

    #[test]
    fn text_comes_from_wherever_the_app_put_it() {
        let plain = wa::Message {
            conversation: Some("SÍ".into()),
            ..Default::default()
        };
        assert_eq!(read(&plain).unwrap().text, "SÍ");
        let quoting = wa::Message {
            extended_text_message: buffa::MessageField::some(wa::message::ExtendedTextMessage {
                text: Some("SÍ, confirmo".into()),
                context_info: buffa::MessageField::some(wa::ContextInfo {
                    stanza_id: Some("3EB0AAAA".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = read(&quoting).unwrap();
        assert_eq!(
            (c.text.as_str(), c.quoted.as_deref()),
            ("SÍ, confirmo", Some("3EB0AAAA"))
        );
        let hidden = wa::Message {
            ephemeral_message: buffa::MessageField::some(wa::message::FutureProofMessage {
                message: buffa::MessageField::some(plain.clone()),
            }),
            ..Default::default()
        };
        assert_eq!(read(&hidden).unwrap().text, "SÍ");
        let reaction = wa::Message {
            reaction_message: buffa::MessageField::some(wa::message::ReactionMessage {
                key: buffa::MessageField::some(wa::MessageKey {
                    id: Some("3EB0BBBB".into()),
                    ..Default::default()
                }),
                text: Some("👍".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = read(&reaction).unwrap();
        assert_eq!(
            (c.text.as_str(), c.reaction_to.as_deref()),
            ("👍", Some("3EB0BBBB"))
        );
        assert_eq!(read(&wa::Message::default()), None);
    }
}
