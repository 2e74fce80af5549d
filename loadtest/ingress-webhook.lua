-- wrk script: POSTs realistic Telegram updates (a /balance command, unique update_id, one of
-- 10,000 users) to the ingress with the webhook secret. Used by loadtest/ingress-bench.
local counter = 0
local secret = os.getenv("TELEGRAM_WEBHOOK_SECRET") or "bench_secret"
local thread_id = 0

function setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  counter = thread_id * 1000000000
end

request = function()
  counter = counter + 1
  local user = 100000 + (counter % 10000)
  local body = string.format(
    '{"update_id":%d,"message":{"message_id":%d,"date":1767225600,' ..
    '"from":{"id":%d,"is_bot":false,"first_name":"Load","language_code":"en"},' ..
    '"chat":{"id":%d,"type":"private","first_name":"Load"},' ..
    '"text":"/balance","entities":[{"type":"bot_command","offset":0,"length":8}]}}',
    counter, counter, user, user)
  return wrk.format("POST", "/telegram/webhook", {
    ["Content-Type"] = "application/json",
    ["X-Telegram-Bot-Api-Secret-Token"] = secret,
  }, body)
end

local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
