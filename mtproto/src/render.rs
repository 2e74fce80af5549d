//! An [`OutboundAction`] into what grammers sends. Kept apart from the sending so the result
//! can be inspected as TL in tests.

use grammers_client::message::{Button as TgButton, InputMessage, ReplyMarkup};
use grammers_client::tl;
use shared::outbound::{Button, DeliveryOutcome, Keyboard, OutboundAction};

/// Text and inline keyboard of a message to send or to edit into.
pub(crate) struct RenderedMessage {
    pub(crate) text: String,
    pub(crate) markup: Option<ReplyMarkup>,
}

impl RenderedMessage {
    /// Link previews off, as the Bot API transport sends them: payment links would otherwise
    /// unfurl into a large card under every message.
    pub(crate) fn into_input(self) -> InputMessage {
        let message = InputMessage::new().text(self.text).link_preview(false);
        match self.markup {
            Some(markup) => message.reply_markup(markup),
            None => message,
        }
    }
}

pub(crate) enum Rendered {
    Send(RenderedMessage),
    Edit {
        message_id: i32,
        message: RenderedMessage,
    },
    AnswerCallback(tl::functions::messages::SetBotCallbackAnswer),
}

/// `Err` holds the outcome for an action that can never be sent (retrying cannot fix it).
pub(crate) fn render(action: &OutboundAction) -> Result<Rendered, DeliveryOutcome> {
    match action {
        OutboundAction::SendMessage { text, keyboard } => {
            Ok(Rendered::Send(message(text, keyboard.as_ref())))
        }
        OutboundAction::EditMessage {
            message_id,
            text,
            keyboard,
        } => {
            let message_id = i32::try_from(*message_id).map_err(|_| {
                DeliveryOutcome::Rejected(format!("message_id {message_id} is not an MTProto id"))
            })?;
            Ok(Rendered::Edit {
                message_id,
                message: message(text, keyboard.as_ref()),
            })
        }
        OutboundAction::AnswerCallback { query_id, text } => {
            // The converter wrote the i64 query id in decimal; anything else did not come
            // from this transport.
            let query_id = query_id.parse::<i64>().map_err(|_| {
                DeliveryOutcome::Rejected(format!("query_id {query_id:?} is not an MTProto id"))
            })?;
            Ok(Rendered::AnswerCallback(
                tl::functions::messages::SetBotCallbackAnswer {
                    alert: false,
                    query_id,
                    message: text.clone(),
                    url: None,
                    cache_time: 0,
                },
            ))
        }
    }
}

fn message(text: &str, keyboard: Option<&Keyboard>) -> RenderedMessage {
    RenderedMessage {
        text: text.to_owned(),
        markup: keyboard.map(markup),
    }
}

fn markup(keyboard: &Keyboard) -> ReplyMarkup {
    let rows: Vec<Vec<TgButton>> = keyboard
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|button| match button {
                    Button::Callback { text, data } => {
                        TgButton::data(text.as_str(), data.as_bytes())
                    }
                    Button::Url { text, url } => TgButton::url(text.as_str(), url.as_str()),
                })
                .collect()
        })
        .collect();
    ReplyMarkup::from_buttons(&rows)
}

#[cfg(test)]
mod tests;
