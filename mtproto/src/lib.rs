//! Telegram over MTProto with grammers-client. The only crate that sees grammers types:
//! everything it exposes is ours (events, outbound actions, delivery outcomes).
