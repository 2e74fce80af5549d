//! The MTProto gateway (`ingress mtproto`): one active copy per bot turns MTProto updates
//! into the same events the webhook produces and delivers the outbound stream over MTProto.
