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
-- before Heleket is called, so no invoice exists that we do not know about. order_id is
-- derived from the Telegram update that asked for it, so a redelivered request finds its row
-- (and Heleket, given the same order_id, returns the same invoice).
CREATE TABLE IF NOT EXISTS payments (
    order_id      TEXT PRIMARY KEY CHECK (order_id ~ '^[A-Za-z0-9_-]{1,128}$'),
    user_id       BIGINT NOT NULL REFERENCES users (id),
    invoice_uuid  UUID UNIQUE,
    amount        NUMERIC(20, 2) NOT NULL CHECK (amount > 0),
    currency      TEXT NOT NULL DEFAULT 'USD',
    -- 'pending' until Heleket answered, then Heleket's own statuses; 'create_failed' when
    -- Heleket refused or never heard of it. Final states never change again.
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN (
                      'pending', 'create_failed', 'check', 'process', 'confirm_check',
                      'wrong_amount_waiting', 'paid', 'paid_over', 'wrong_amount', 'cancel',
                      'fail', 'system_fail', 'refund_process', 'refund_paid', 'refund_fail',
                      'locked')),
    url           TEXT,
    expires_at    TIMESTAMPTZ,
    credited      NUMERIC(20, 2),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS payments_user_created ON payments (user_id, created_at DESC);
CREATE INDEX IF NOT EXISTS payments_open ON payments (created_at)
    WHERE status IN ('pending', 'check', 'process', 'confirm_check', 'wrong_amount_waiting');

-- Every payment event we received (webhook or reconciler), verbatim: the audit trail.
-- Unique per invoice and status, as Heleket advises: a replay is a no-op, while
-- check -> paid still moves on. Events we could not apply are kept with the reason.
CREATE TABLE IF NOT EXISTS payment_events (
    id            BIGSERIAL PRIMARY KEY,
    invoice_uuid  UUID NOT NULL,
    order_id      TEXT NOT NULL,
    status        TEXT NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('webhook', 'reconciler')),
    outcome       TEXT NOT NULL CHECK (outcome IN (
                      'applied', 'credited', 'ignored_final', 'unknown_invoice', 'mismatch')),
    reason        TEXT,
    payload       JSONB NOT NULL,
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (invoice_uuid, status)
);
CREATE INDEX IF NOT EXISTS payment_events_parked ON payment_events (received_at)
    WHERE outcome IN ('unknown_invoice', 'mismatch');

-- Messages to send once their transaction committed (transactional outbox). Published to
-- the outbound stream by the payments role; the dedupe key makes a second publication
-- harmless.
CREATE TABLE IF NOT EXISTS outbox (
    id            BIGSERIAL PRIMARY KEY,
    dedupe_key    TEXT NOT NULL UNIQUE,
    chat_id       BIGINT NOT NULL,
    message       JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at  TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- The shop. Products with a stock sell one unique item (a key, a code) per purchase.
CREATE TABLE IF NOT EXISTS products (
    id           BIGSERIAL PRIMARY KEY,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    price        NUMERIC(20, 2) NOT NULL CHECK (price > 0),
    -- Without a stock the product is a service delivered by the text below.
    has_stock    BOOLEAN NOT NULL DEFAULT false,
    delivery     TEXT NOT NULL DEFAULT '',
    active       BOOLEAN NOT NULL DEFAULT true,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS orders (
    id           BIGSERIAL PRIMARY KEY,
    -- The request that bought it (the Telegram update), so a redelivery buys nothing twice.
    request_key  TEXT NOT NULL UNIQUE,
    user_id      BIGINT NOT NULL REFERENCES users (id),
    product_id   BIGINT NOT NULL REFERENCES products (id),
    price        NUMERIC(20, 2) NOT NULL CHECK (price > 0),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS stock_items (
    id          BIGSERIAL PRIMARY KEY,
    product_id  BIGINT NOT NULL REFERENCES products (id),
    payload     TEXT NOT NULL,
    order_id    BIGINT UNIQUE REFERENCES orders (id),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS stock_items_available ON stock_items (product_id, id)
    WHERE order_id IS NULL;

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
