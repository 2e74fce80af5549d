use super::*;
use shared::outbound::Keyboard;

/// A button as (text, kind, payload) read back from the TL that goes on the wire.
fn buttons(markup: &ReplyMarkup) -> Vec<Vec<(String, &'static str, Vec<u8>)>> {
    let tl::enums::ReplyMarkup::ReplyInlineMarkup(inline) = &markup.raw else {
        panic!("expected an inline keyboard, got {:?}", markup.raw);
    };
    assert!(!inline.force_reply);
    inline
        .rows
        .iter()
        .map(|tl::enums::KeyboardInlineButtonRow::Row(row)| {
            row.buttons
                .iter()
                .map(
                    |tl::enums::KeyboardInlineButton::Button(b)| match &b.r#type {
                        tl::enums::InlineButtonType::Callback(c) => {
                            assert!(!c.requires_password);
                            (b.text.clone(), "callback", c.data.clone())
                        }
                        tl::enums::InlineButtonType::Url(u) => {
                            (b.text.clone(), "url", u.url.clone().into_bytes())
                        }
                        other => panic!("unexpected button type {other:?}"),
                    },
                )
                .collect()
        })
        .collect()
}

fn keyboard() -> Keyboard {
    Keyboard {
        rows: vec![
            vec![
                Button::Callback {
                    text: "Pay 5".into(),
                    data: "pay:5".into(),
                },
                Button::Callback {
                    text: "Отмена".into(),
                    data: "cancel".into(),
                },
            ],
            vec![Button::Url {
                text: "Terms".into(),
                url: "https://example.com/terms".into(),
            }],
        ],
    }
}

fn expected_rows() -> Vec<Vec<(String, &'static str, Vec<u8>)>> {
    vec![
        vec![
            ("Pay 5".into(), "callback", b"pay:5".to_vec()),
            ("Отмена".into(), "callback", b"cancel".to_vec()),
        ],
        vec![("Terms".into(), "url", b"https://example.com/terms".to_vec())],
    ]
}

fn rendered(action: OutboundAction) -> Rendered {
    match render(&action) {
        Ok(r) => r,
        Err(outcome) => panic!("expected a rendering, got {outcome:?}"),
    }
}

#[test]
fn send_message_with_keyboard() {
    let Rendered::Send(message) = rendered(OutboundAction::SendMessage {
        text: "Choose an amount".into(),
        keyboard: Some(keyboard()),
    }) else {
        panic!("expected a send");
    };
    assert_eq!(message.text, "Choose an amount");
    assert_eq!(buttons(message.markup.as_ref().unwrap()), expected_rows());
    // Builds the InputMessage grammers sends (its fields are private to grammers).
    let _ = message.into_input();
}

#[test]
fn send_message_without_keyboard_has_no_markup() {
    let Rendered::Send(message) = rendered(OutboundAction::SendMessage {
        text: "Hi".into(),
        keyboard: None,
    }) else {
        panic!("expected a send");
    };
    assert!(message.markup.is_none());
}

#[test]
fn edit_targets_the_message_with_text_and_markup() {
    let Rendered::Edit {
        message_id,
        message,
    } = rendered(OutboundAction::EditMessage {
        message_id: 43,
        text: "Paid".into(),
        keyboard: Some(keyboard()),
    })
    else {
        panic!("expected an edit");
    };
    assert_eq!(message_id, 43);
    assert_eq!(message.text, "Paid");
    assert_eq!(buttons(message.markup.as_ref().unwrap()), expected_rows());
}

#[test]
fn edit_of_an_id_outside_i32_is_rejected() {
    assert!(matches!(
        render(&OutboundAction::EditMessage {
            message_id: i64::from(i32::MAX) + 1,
            text: "x".into(),
            keyboard: None,
        }),
        Err(DeliveryOutcome::Rejected(_))
    ));
}

#[test]
fn answer_callback_is_set_bot_callback_answer() {
    let Rendered::AnswerCallback(request) = rendered(OutboundAction::AnswerCallback {
        query_id: "-5123456789012345678".into(),
        text: Some("Cancelled".into()),
    }) else {
        panic!("expected a callback answer");
    };
    assert_eq!(
        request,
        tl::functions::messages::SetBotCallbackAnswer {
            alert: false,
            query_id: -5_123_456_789_012_345_678,
            message: Some("Cancelled".into()),
            url: None,
            cache_time: 0,
        }
    );
    let Rendered::AnswerCallback(silent) = rendered(OutboundAction::AnswerCallback {
        query_id: "7".into(),
        text: None,
    }) else {
        panic!("expected a callback answer");
    };
    assert_eq!(silent.message, None);
}

#[test]
fn unparsable_query_id_is_rejected() {
    // A Bot API style id that did not come from this transport.
    assert!(matches!(
        render(&OutboundAction::AnswerCallback {
            query_id: "4382bfdwdsb323b2d9".into(),
            text: None,
        }),
        Err(DeliveryOutcome::Rejected(_))
    ));
}
