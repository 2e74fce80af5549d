//! What [`crate::MtprotoUpdates::commit`] may persist: the update state up to the last update
//! handed to the caller, and never beyond it.
//!
//! grammers' own `sync_update_state` writes the state of everything its message box has
//! processed, including updates still buffered and not yet handed out; a crash after such a
//! commit would lose them for good. So the position of each handed-out update is kept per
//! sequence (pts, qts, per-channel pts) and only those are written.
//!
//! One exception: messages that come from a getDifference carry the state of the whole
//! difference, not their own (grammers builds them with `pts_count = 0`). Committing that
//! state after the first of them would skip the rest on a crash, so they record nothing; the
//! next live update of the same sequence moves the committed state past them. Until then a
//! restart replays them, which the workers' dedupe on update_id makes harmless.

use grammers_client::tl;
use grammers_session::types::UpdateState;
use grammers_session::updates::{MessageBox, State};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    Primary { pts: i32, date: i32, seq: i32 },
    Secondary { qts: i32 },
    Channel { id: i64, pts: i32 },
}

impl Position {
    /// `None` when the update is in no sequence (callback queries) or its state is not its own.
    pub(crate) fn of(update: &tl::enums::Update, state: &State) -> Option<Self> {
        if from_difference(update) {
            return None;
        }
        Some(match state.message_box? {
            MessageBox::Common { pts } => Position::Primary {
                pts,
                date: state.date,
                seq: state.seq,
            },
            MessageBox::Secondary { qts } => Position::Secondary { qts },
            MessageBox::Channel { channel_id, pts } => Position::Channel {
                id: channel_id,
                pts,
            },
        })
    }
}

fn from_difference(update: &tl::enums::Update) -> bool {
    use tl::enums::Update as U;
    match update {
        U::NewMessage(u) => u.pts_count == 0,
        U::NewChannelMessage(u) => u.pts_count == 0,
        U::NewEncryptedMessage(u) => u.qts == 0,
        _ => false,
    }
}

/// Positions handed out since the last commit, the latest per sequence (grammers hands out
/// each sequence in order).
#[derive(Debug, Default)]
pub(crate) struct Pending {
    primary: Option<(i32, i32, i32)>,
    secondary: Option<i32>,
    channels: BTreeMap<i64, i32>,
}

impl Pending {
    pub(crate) fn record(&mut self, position: Position) {
        match position {
            Position::Primary { pts, date, seq } => self.primary = Some((pts, date, seq)),
            Position::Secondary { qts } => self.secondary = Some(qts),
            Position::Channel { id, pts } => {
                self.channels.insert(id, pts);
            }
        }
    }

    /// What to write to the session, in no particular order: each touches its own columns.
    pub(crate) fn states(&self) -> Vec<UpdateState> {
        let primary = self
            .primary
            .map(|(pts, date, seq)| UpdateState::Primary { pts, date, seq });
        let secondary = self.secondary.map(|qts| UpdateState::Secondary { qts });
        let channels = self
            .channels
            .iter()
            .map(|(&id, &pts)| UpdateState::Channel { id, pts });
        primary
            .into_iter()
            .chain(secondary)
            .chain(channels)
            .collect()
    }

    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(message_box: Option<MessageBox>) -> State {
        State {
            date: 1_700_000_000,
            seq: 5,
            message_box,
        }
    }

    fn new_message(pts: i32, pts_count: i32) -> tl::enums::Update {
        tl::types::UpdateNewMessage {
            message: tl::types::MessageEmpty {
                id: 1,
                peer_id: None,
            }
            .into(),
            pts,
            pts_count,
        }
        .into()
    }

    #[test]
    fn live_updates_record_their_own_position() {
        assert_eq!(
            Position::of(
                &new_message(10, 1),
                &state(Some(MessageBox::Common { pts: 10 }))
            ),
            Some(Position::Primary {
                pts: 10,
                date: 1_700_000_000,
                seq: 5
            })
        );
        let stopped = tl::types::UpdateBotStopped {
            user_id: 1,
            date: 1,
            stopped: true,
            qts: 77,
        }
        .into();
        assert_eq!(
            Position::of(&stopped, &state(Some(MessageBox::Secondary { qts: 77 }))),
            Some(Position::Secondary { qts: 77 })
        );
    }

    #[test]
    fn messages_from_a_difference_and_sequenceless_updates_record_nothing() {
        assert_eq!(
            Position::of(
                &new_message(0, 0),
                &state(Some(MessageBox::Common { pts: 500 }))
            ),
            None
        );
        let callback = tl::types::UpdateBotCallbackQuery {
            query_id: 1,
            user_id: 1,
            peer: tl::types::PeerUser { user_id: 1 }.into(),
            msg_id: 1,
            chat_instance: 0,
            data: None,
            game_short_name: None,
        }
        .into();
        assert_eq!(Position::of(&callback, &state(None)), None);
    }

    #[test]
    fn pending_keeps_the_latest_per_sequence() {
        let mut pending = Pending::default();
        assert!(pending.states().is_empty());
        pending.record(Position::Primary {
            pts: 10,
            date: 1,
            seq: 1,
        });
        pending.record(Position::Secondary { qts: 3 });
        pending.record(Position::Primary {
            pts: 11,
            date: 2,
            seq: 1,
        });
        pending.record(Position::Channel { id: 7, pts: 40 });
        let states = pending.states();
        assert_eq!(states.len(), 3);
        assert!(matches!(
            states[0],
            UpdateState::Primary {
                pts: 11,
                date: 2,
                seq: 1
            }
        ));
        assert!(matches!(states[1], UpdateState::Secondary { qts: 3 }));
        assert!(matches!(states[2], UpdateState::Channel { id: 7, pts: 40 }));
        pending.clear();
        assert!(pending.states().is_empty());
    }
}
