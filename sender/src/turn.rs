//! Everything a sender asks Redis before one Telegram call, in one script and one round
//! trip: sent already? chat blocked? flood control in force? a rate cell free, globally and
//! for the chat?

use shared::gcra::Rate;
use std::time::Duration;

const TAKE_TURN: &str = concat!(
    shared::gcra_lua_function!(),
    r"
-- KEYS: sent marker, blocked marker, flood marker, global rate, chat rate.
-- ARGV: check blocked (0/1), take a rate cell (0/1), then interval and tolerance (us) of the
-- global and of the chat rate. Returns {outcome, wait in us}.
if redis.call('EXISTS', KEYS[1]) == 1 then return {1, 0} end
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return {2, 0} end
local flood = redis.call('PTTL', KEYS[3])
if flood > 0 then return {3, flood * 1000} end
if ARGV[2] == '1' then
  local wait = gcra({KEYS[4], KEYS[5]}, {ARGV[3], ARGV[4], ARGV[5], ARGV[6]})
  if wait > 0 then return {4, wait} end
end
return {0, 0}
"
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    Go,
    AlreadySent,
    Blocked,
    /// Flood control or a rate limit: ask again after this long.
    Wait(Duration),
}

pub struct TurnKeys<'a> {
    pub sent: &'a str,
    pub blocked: &'a str,
    pub flood: &'a str,
    pub global_rate: &'a str,
    pub chat_rate: &'a str,
}

#[derive(Clone)]
pub struct TurnScript(redis::Script);

impl Default for TurnScript {
    fn default() -> Self {
        Self(redis::Script::new(TAKE_TURN))
    }
}

impl TurnScript {
    /// `writes_to_chat` is false for answers to button presses: they are not messages, so
    /// neither a block nor the rate limits hold them back (flood control does).
    pub async fn take(
        &self,
        conn: &mut redis::aio::ConnectionManager,
        keys: &TurnKeys<'_>,
        writes_to_chat: bool,
        global: Rate,
        chat: Rate,
    ) -> redis::RedisResult<Turn> {
        let [global_interval, global_tolerance] = global.args();
        let [chat_interval, chat_tolerance] = chat.args();
        let flag = |b: bool| if b { "1" } else { "0" };
        let (outcome, wait_us): (u8, u64) = self
            .0
            .key(keys.sent)
            .key(keys.blocked)
            .key(keys.flood)
            .key(keys.global_rate)
            .key(keys.chat_rate)
            .arg(flag(writes_to_chat))
            .arg(flag(writes_to_chat))
            .arg(global_interval)
            .arg(global_tolerance)
            .arg(chat_interval)
            .arg(chat_tolerance)
            .invoke_async(conn)
            .await?;
        Ok(match outcome {
            1 => Turn::AlreadySent,
            2 => Turn::Blocked,
            3 | 4 => Turn::Wait(Duration::from_micros(wait_us.max(1))),
            _ => Turn::Go,
        })
    }
}
