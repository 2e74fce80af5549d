-- paystream: the whole PostgreSQL schema. Applied by `worker migrate`, which takes an advisory
-- lock first, so several workers starting at once apply it one after another. Every statement
-- is idempotent. Money is NUMERIC, never floating point.

CREATE TABLE IF NOT EXISTS users (
    id             BIGINT PRIMARY KEY,              -- Telegram user id (= private chat id)
    username       TEXT,
    first_name     TEXT NOT NULL DEFAULT '',
    last_name      TEXT,
    language_code  TEXT,
    -- Set when Telegram says the user blocked the bot (403 or my_chat_member kicked);
    -- nothing is sent to them until they start the bot again.
    blocked_at     TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS balances (
    user_id     BIGINT PRIMARY KEY REFERENCES users (id),
    currency    TEXT NOT NULL DEFAULT 'USD',
    balance     NUMERIC(20, 2) NOT NULL DEFAULT 0 CHECK (balance >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Invoices we asked Heleket for. The row is written (status 'pending', our own order_id)
-- before Heleket is called, so no invoice exists that we do not know about.
CREATE TABLE IF NOT EXISTS payments (
    order_id      UUID PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users (id),
    invoice_uuid  UUID UNIQUE,
    amount        NUMERIC(20, 2) NOT NULL CHECK (amount > 0),
    currency      TEXT NOT NULL DEFAULT 'USD',
    status        TEXT NOT NULL DEFAULT 'pending',
    url           TEXT,
    expires_at    TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS payments_user_created ON payments (user_id, created_at DESC);
CREATE INDEX IF NOT EXISTS payments_pending ON payments (created_at) WHERE status = 'pending';

-- Every change of a balance, append-only. `reference` names the cause (an invoice uuid, a
-- purchase id) and is unique per kind, so a replayed cause cannot move money twice.
CREATE TABLE IF NOT EXISTS ledger (
    id             BIGSERIAL PRIMARY KEY,
    user_id        BIGINT NOT NULL REFERENCES users (id),
    kind           TEXT NOT NULL CHECK (kind IN ('topup', 'purchase', 'refund', 'adjustment')),
    amount         NUMERIC(20, 2) NOT NULL CHECK (amount <> 0),
    balance_after  NUMERIC(20, 2) NOT NULL CHECK (balance_after >= 0),
    currency       TEXT NOT NULL DEFAULT 'USD',
    reference      TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (kind, reference)
);
CREATE INDEX IF NOT EXISTS ledger_user_created ON ledger (user_id, created_at DESC, id DESC);
